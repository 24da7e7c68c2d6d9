"""Job records, metrics and status transitions in Redis.

Layout (every key under the ``trainapi:`` prefix):

- ``job:{id}`` hash: the record. Scalars as strings, structures as JSON.
- ``job:{id}:metrics`` list: one JSON record per epoch, in epoch order, while
  the job runs. Once it has finished the list moves to storage as one object
  (``jobs/{id}/metrics.json``) and the record notes ``metrics_archived`` (the
  number of epochs), so Redis keeps active jobs and finished jobs' summaries.
- ``jobs:{tenant}`` sorted set: the tenant's job ids by creation sequence.
- ``active:{tenant}`` set: the tenant's queued and running jobs (the quota).
- ``idem:{tenant}:{key}``: the job an ``Idempotency-Key`` created and the fingerprint of its
  normalized spec, ``"{job_id} {sha256 hex}"`` (24 h).
- ``finished`` sorted set: finished jobs outside sweeps, by the time they
  finished (every script that ends a job adds it), so that retention
  (``TRAINAPI_RETENTION_DAYS``) finds the expired ones without a scan.

The record in Redis, not Celery's broker, is the truth about a job. Each
attempt a worker makes gets a fresh token; the writes of a running job
(metrics, finish) are Lua scripts that first check the token, so an attempt
that lost its lease can no longer change anything, and the metrics list takes
epoch ``e`` only when it holds exactly ``e - 1`` records, so a retried epoch
is never recorded twice.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast, get_args

import redis

from store.artifacts import Artifacts
from store.errors import (
    Conflict,
    IdempotencyKeyReused,
    NotFound,
    QuotaExceeded,
    StaleAttempt,
    StorageFull,
    StoreError,
)
from store.metrics import QUEUE_ORDER, STATUS_COUNTS, STATUS_KEYS, STATUS_LUA
from store.outbox import EMIT_LUA, outbox_keys
from store.redis import key, now_iso, plausible_id
from store.statuses import TERMINAL, TERMINAL_LUA, ClaimOutcome
from store.storage import StorageUnavailable

log = logging.getLogger(__name__)
IDEMPOTENCY_TTL = 24 * 3600
#: A quota 429's Retry-After (seconds) when no active job of the tenant has an ETA, and its upper bound.
QUOTA_RETRY_AFTER = 30
#: Jobs that are to be sent to the workers and whose message is not known to be out yet: job id -> the
#: Unix time the need arose. The step that makes a job sendable (creation, a sweep's dispatch, a reaped
#: lease, a hand-back) adds it in the same transaction; :func:`store.queue.send_run_job` removes it once
#: the broker has the message. An entry older than a lease was lost with its sender (a crash between the
#: two steps): the maintenance thread sends the job again (:meth:`JobStore.take_unsent`).
UNSENT = key("unsent")
_JSON_FIELDS = (
    "spec",
    "dataset",
    "error",
    "latest",
    "best",
    "test_metrics",
    "tags",
    "checkpoint",
    "path",
    "path_progress",
)


# Every script that starts, extends or ends a lease keeps the ``leases`` sorted set
# (job id -> lease expiry) in step, so the reaper finds expired attempts without a scan.

# Prepended to the scripts that end a job: index it for retention unless it is a sweep's trial (its sweep keeps it).
_FINISHED_LUA = """
local function mark_finished(finished, record)
  if (redis.call('HGET', record, 'sweep_id') or '') == '' then
    redis.call('ZADD', finished, redis.call('TIME')[1], redis.call('HGET', record, 'id'))
  end
end
"""

# KEYS: job, active set, leases, then the outbox's (webhooks), finished. ARGV: token, now_iso, lease_expires,
# max_attempts, now_epoch, worker, pid.
_CLAIM = (
    TERMINAL_LUA
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if TERMINAL[status] then
  return {'terminal', status}
end
local id = redis.call('HGET', KEYS[1], 'id')
if status == 'cancelling' or redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then
  moved(KEYS[1], status, 'cancelled')
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[2], 'lease_token', '')
  redis.call('SREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  outbox_emit(KEYS[4], KEYS[5], 'job.cancelled', KEYS[1])
  mark_finished(KEYS[6], KEYS[1])
  return {'cancelled'}
end
if status == 'running' then
  local expires = tonumber(redis.call('HGET', KEYS[1], 'lease_expires') or '0')
  if expires > tonumber(ARGV[5]) then return {'leased', tostring(expires - tonumber(ARGV[5]))} end
end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
if attempt > tonumber(ARGV[4]) then
  moved(KEYS[1], status, 'failed')
  redis.call('HSET', KEYS[1], 'status', 'failed', 'finished_at', ARGV[2], 'lease_token', '',
    'attempt', attempt - 1,
    'error', cjson.encode({type='attempts_exhausted',
      message='the job was interrupted ' .. (attempt - 1) .. ' times (worker lost or killed); ' ..
              'giving up after max_attempts'}))
  redis.call('SREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  outbox_emit(KEYS[4], KEYS[5], 'job.failed', KEYS[1])
  mark_finished(KEYS[6], KEYS[1])
  return {'exhausted'}
end
moved(KEYS[1], status, 'running')
redis.call('HSET', KEYS[1], 'status', 'running', 'lease_token', ARGV[1], 'lease_expires', ARGV[3],
  'worker', ARGV[6], 'worker_pid', ARGV[7])
redis.call('ZADD', KEYS[3], ARGV[3], id)
if not redis.call('HGET', KEYS[1], 'started_at') then
  redis.call('HSET', KEYS[1], 'started_at', ARGV[2])
  outbox_emit(KEYS[4], KEYS[5], 'job.started', KEYS[1])
end
return {'ok', tostring(attempt)}
"""
)

# KEYS: job, metrics, leases, then the outbox's (webhooks). ARGV: token, epoch, record json, lease_expires,
# best json or '', checkpoint json or '', job id, recent epoch seconds or ''.
_APPEND_METRIC = """
if redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'lease_expires', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[7])
local epoch = tonumber(ARGV[2])
local n = redis.call('LLEN', KEYS[2])
if n >= epoch then return 0 end
if n ~= epoch - 1 then return -2 end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], 'latest', ARGV[3], 'epochs_done', epoch)
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'best', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'checkpoint', ARGV[6]) end
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'epoch_seconds_recent', ARGV[8]) end
outbox_emit(KEYS[4], KEYS[5], 'job.epoch', KEYS[1])
return 1
"""

# KEYS: job, leases. ARGV: token, lease_expires, job id.
_RENEW = """
if redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'lease_expires', ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'path_progress', ARGV[4]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# KEYS: job, active set, leases, then the outbox's (webhooks), finished. ARGV: token, job id, then field/value pairs.
_FINISH = """
if redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[1] then return -1 end
local old = redis.call('HGET', KEYS[1], 'status')
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
moved(KEYS[1], old, redis.call('HGET', KEYS[1], 'status'))
redis.call('HSET', KEYS[1], 'lease_token', '')
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
outbox_emit(KEYS[4], KEYS[5], 'job.' .. redis.call('HGET', KEYS[1], 'status'), KEYS[1])
mark_finished(KEYS[6], KEYS[1])
return 1
"""

# Give a job back to the queue (worker shutting down). KEYS: job, leases, unsent. ARGV: token, job id, now.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[1] then return -1 end
moved(KEYS[1], redis.call('HGET', KEYS[1], 'status'), 'queued')
redis.call('HSET', KEYS[1], 'status', 'queued', 'lease_token', '', 'lease_expires', '0')
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return 1
"""

# Recover a job whose attempt stopped renewing its lease.
# KEYS: job, active set, leases, then the outbox's (webhooks), finished, unsent. ARGV: now_epoch, now_iso, job id.
_REAP = """
local status = redis.call('HGET', KEYS[1], 'status')
local expires = tonumber(redis.call('HGET', KEYS[1], 'lease_expires') or '0')
if status ~= 'running' and status ~= 'cancelling' then
  redis.call('ZREM', KEYS[3], ARGV[3])
  return ''
end
if expires > tonumber(ARGV[1]) then return '' end
redis.call('ZREM', KEYS[3], ARGV[3])
if status == 'cancelling' then
  moved(KEYS[1], status, 'cancelled')
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[2], 'lease_token', '')
  redis.call('SREM', KEYS[2], ARGV[3])
  outbox_emit(KEYS[4], KEYS[5], 'job.cancelled', KEYS[1])
  mark_finished(KEYS[6], KEYS[1])
  return 'cancelled'
end
moved(KEYS[1], status, 'queued')
redis.call('HSET', KEYS[1], 'status', 'queued', 'lease_token', '')
redis.call('ZADD', KEYS[7], ARGV[1], ARGV[3])
return 'requeued'
"""

# Take an unsent job whose sender is presumed lost. KEYS: job, unsent. ARGV: job id, cutoff, now.
# Returns 1 if the caller is to send it (the entry is re-armed, so no other caller takes it meanwhile).
_TAKE_UNSENT = """
local since = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not since or tonumber(since) > tonumber(ARGV[2]) then return 0 end
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""

# Remove a job; its status leaves the counts once, however many deletes race.
# KEYS: job, metrics, the tenant's jobs, active set, finished, then STATUS_KEYS. ARGV: job id.
_DELETE = """
redis.call('ZREM', KEYS[5], ARGV[1])
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
redis.call('HINCRBY', KEYS[#KEYS - 3], status, -1)
redis.call('ZREM', KEYS[#KEYS - 1], ARGV[1])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
return 1
"""

# KEYS: job, active set, then the outbox's (webhooks), finished. ARGV: now_iso, job id. Returns the resulting status.
_CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return '' end
if status == 'queued' then
  moved(KEYS[1], status, 'cancelled')
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[1], 'cancel_requested', '1')
  redis.call('SREM', KEYS[2], ARGV[2])
  outbox_emit(KEYS[3], KEYS[4], 'job.cancelled', KEYS[1])
  mark_finished(KEYS[5], KEYS[1])
  return 'cancelled'
end
if status == 'running' then
  moved(KEYS[1], status, 'cancelling')
  redis.call('HSET', KEYS[1], 'status', 'cancelling', 'cancel_requested', '1')
  return 'cancelling'
end
return status
"""


# Move a finished job's metrics to storage: the caller stored the list's ARGV[1] records as one object.
# KEYS: job, metrics. The list of a finished job no longer changes (every append needs a live token).
_ARCHIVE_METRICS = (
    TERMINAL_LUA
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not TERMINAL[status] then return 0 end
if redis.call('LLEN', KEYS[2]) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'metrics_archived', ARGV[1])
redis.call('DEL', KEYS[2])
return 1
"""
)


@dataclass(frozen=True)
class Claim:
    """Outcome of a worker's attempt to start a job: ``ok`` with the attempt, or why not."""

    outcome: ClaimOutcome
    attempt: int = 0
    token: str = ""
    retry_after: float = 0.0  # leased: seconds until the other attempt's lease runs out


class JobStore:
    """Job records of every tenant; every read and write names the tenant or the attempt's token."""

    def __init__(self, client: redis.Redis, artifacts: Artifacts | None = None) -> None:
        # redis-py's return types are unions of every reply shape; replies here are str.
        self.r: Any = client
        # Where finished jobs' metrics are kept (None: they stay in Redis).
        self.artifacts = artifacts
        # Reads on the event loop (store.redis.PipelinedReads): the API's lifespan sets it.
        self.ar: Any = None
        # Scripts that change a job's status emit its webhook events (store.outbox, EMIT_LUA), index finished
        # jobs for retention (_FINISHED_LUA) and keep the counts of store.metrics (STATUS_LUA; STATUS_KEYS last).
        self._claim = client.register_script(EMIT_LUA + _FINISHED_LUA + STATUS_LUA + _CLAIM)
        self._append = client.register_script(EMIT_LUA + _APPEND_METRIC)
        self._renew = client.register_script(_RENEW)
        self._finish = client.register_script(EMIT_LUA + _FINISHED_LUA + STATUS_LUA + _FINISH)
        self._cancel = client.register_script(EMIT_LUA + _FINISHED_LUA + STATUS_LUA + _CANCEL)
        self._release = client.register_script(STATUS_LUA + _RELEASE)
        self._take_unsent = client.register_script(_TAKE_UNSENT)
        self._reap = client.register_script(EMIT_LUA + _FINISHED_LUA + STATUS_LUA + _REAP)
        self._delete = client.register_script(_DELETE)
        self._archive = client.register_script(_ARCHIVE_METRICS)

    # -- API side ------------------------------------------------------------

    def create(
        self,
        tenant: str,
        spec: dict[str, Any],
        dataset: dict[str, Any],
        *,
        max_active: int,
        idempotency_key: str | None = None,
        sweep_id: str | None = None,
        quota: bool = True,
    ) -> tuple[dict[str, Any], bool]:
        """Create a queued job; returns ``(record, created)``.

        With an ``idempotency_key`` already used by this tenant for the same
        ``spec`` the earlier job is returned and ``created`` is False; used for
        another spec, IdempotencyKeyReused. Sweep trials (``quota=False``) do
        not count against the active-job quota: their sweep limits them.
        """
        job_id = "job_" + uuid.uuid4().hex
        idem = key("idem", tenant, idempotency_key) if idempotency_key else None
        fingerprint = spec_fingerprint(spec)
        if idem is not None and not self.r.set(idem, f"{job_id} {fingerprint}", nx=True, ex=IDEMPOTENCY_TTL):
            existing = self.r.get(idem)
            if existing:
                existing_id, _, existing_fingerprint = existing.partition(" ")
                # A key stored before fingerprints were (a bare job id) matches any spec.
                if existing_fingerprint and existing_fingerprint != fingerprint:
                    raise IdempotencyKeyReused(cast(str, idempotency_key), existing_id)
                return self.get(tenant, existing_id), False
        active = key("active", tenant)
        if quota and self.r.scard(active) >= max_active:
            if idem is not None:
                self.r.delete(idem)
            raise QuotaExceeded(max_active, retry_after=self._quota_retry_after(active))
        seq = self.r.incr(key("seq"))
        record = {
            "id": job_id,
            "tenant": tenant,
            "name": spec.get("name") or job_id,
            "status": "queued",
            "created_at": now_iso(),
            "attempt": 0,
            "epochs_done": 0,
            "seq": seq,
            "sweep_id": sweep_id or "",
            "spec": json.dumps(spec),
            "dataset": json.dumps(dataset),
            "tags": json.dumps(spec.get("tags", {})),
            "model": str(spec.get("model", {}).get("type", "unknown")),  # the label of store.metrics.FINISHED
        }
        pipe = self.r.pipeline()
        pipe.hset(key("job", job_id), mapping=record)
        pipe.hincrby(STATUS_COUNTS, "queued", 1)
        pipe.zadd(QUEUE_ORDER, {job_id: seq})
        pipe.zadd(key("jobs", tenant), {job_id: seq})
        if quota:
            pipe.sadd(active, job_id)
        if not sweep_id:  # a sweep's trial is sent when the sweep dispatches it
            pipe.zadd(UNSENT, {job_id: time.time()})
        pipe.execute()
        return self._decode(record), True

    def _quota_retry_after(self, active: str) -> int:
        """Seconds until the tenant's first active job should end (1 to 30): its running jobs' soonest ETA.

        :data:`QUOTA_RETRY_AFTER` when none is running with an estimate yet.
        """
        pipe = self.r.pipeline(transaction=False)
        for job_id in self.r.smembers(active):
            pipe.hgetall(key("job", job_id))
        estimates = [eta for raw in pipe.execute() if raw and (eta := eta_seconds(self._decode(raw))) is not None]
        if not estimates:
            return QUOTA_RETRY_AFTER
        return min(QUOTA_RETRY_AFTER, max(1, math.ceil(min(estimates))))

    def get(self, tenant: str, job_id: str) -> dict[str, Any]:
        """The record, or NotFound (also when it belongs to another tenant).

        A queued job's record has ``queue_position``: 1 + the jobs queued before it that still wait.
        """
        raw = self.r.hgetall(key("job", job_id)) if plausible_id(job_id, "job_") else {}
        record = self._owned(tenant, job_id, raw)
        if record["status"] == "queued":
            record["queue_position"] = _position(self.r.zrank(QUEUE_ORDER, job_id))
        return record

    async def get_async(self, tenant: str, job_id: str) -> dict[str, Any]:
        """:meth:`get` on the event loop: the status path polled by many clients at once.

        Without an asyncio client (an app used outside its lifespan) it falls back to :meth:`get`.
        """
        if self.ar is None:
            return self.get(tenant, job_id)
        raw = await self.ar.hgetall(key("job", job_id)) if plausible_id(job_id, "job_") else {}
        record = self._owned(tenant, job_id, raw)
        if record["status"] == "queued":  # a second read, for queued jobs only
            record["queue_position"] = _position(await self.ar.zrank(QUEUE_ORDER, job_id))
        return record

    def _owned(self, tenant: str, job_id: str, raw: dict[str, str]) -> dict[str, Any]:
        """The decoded record ``raw`` of ``job_id``, or NotFound when there is none or another tenant owns it."""
        if not raw or raw.get("tenant") != tenant:
            raise NotFound("job", job_id)
        return self._decode(raw)

    def list(
        self, tenant: str, *, status: str | None = None, limit: int = 50, cursor: int | None = None
    ) -> tuple[builtins.list[dict[str, Any]], int | None]:
        """Newest first; ``cursor`` continues after the last job of the previous page."""
        top = f"({cursor}" if cursor is not None else "+inf"
        out: builtins.list[dict[str, Any]] = []
        next_cursor: int | None = None
        while len(out) < limit:
            ids = self.r.zrevrangebyscore(key("jobs", tenant), top, "-inf", start=0, num=limit * 2, withscores=True)
            if not ids:
                break
            pipe = self.r.pipeline()
            for job_id, _ in ids:
                pipe.hgetall(key("job", job_id))
            for (_job_id, score), raw in zip(ids, pipe.execute(), strict=True):
                top = f"({int(score)}"
                if raw and (status is None or raw.get("status") == status):
                    out.append(self._decode(raw))
                    if len(out) == limit:
                        next_cursor = int(score)
                        break
        if next_cursor is not None and not self.r.zrevrangebyscore(
            key("jobs", tenant), f"({next_cursor}", "-inf", start=0, num=1
        ):
            next_cursor = None
        queued = [record for record in out if record["status"] == "queued"]
        if queued:
            pipe = self.r.pipeline(transaction=False)
            for record in queued:
                pipe.zrank(QUEUE_ORDER, record["id"])
            for record, rank in zip(queued, pipe.execute(), strict=True):
                record["queue_position"] = _position(rank)
        return out, next_cursor

    def metrics(self, tenant: str, job_id: str, since_epoch: int = 0) -> builtins.list[dict[str, Any]]:
        """Metrics records of epochs after ``since_epoch``: from the list in Redis, or a finished job's object."""
        if not plausible_id(job_id, "job_"):
            raise NotFound("job", job_id)
        pipe = self.r.pipeline()  # MULTI: the record and the list as of one moment
        pipe.hgetall(key("job", job_id))
        pipe.lrange(key("job", job_id, "metrics"), since_epoch, -1)
        raw, items = pipe.execute()
        self._owned(tenant, job_id, raw)
        if raw.get("metrics_archived"):
            assert self.artifacts is not None, "a job's metrics were moved to storage; open the store with it"
            return list(json.loads(self.artifacts.storage.get(self.artifacts.metrics_key(job_id)))[since_epoch:])
        return [json.loads(item) for item in items]

    async def progress_async(
        self, tenant: str, job_id: str, since_epoch: int = 0
    ) -> tuple[dict[str, Any], builtins.list[dict[str, Any]]]:
        """The record, then the metrics records after ``since_epoch``, on the event loop (batched reads).

        The record is read first: a job records its last epoch before it turns terminal, so a record that
        is terminal comes with every epoch. An archived list is read from storage in a thread. Without an
        asyncio client, the sync reads.
        """
        if self.ar is None:
            return self.get(tenant, job_id), self.metrics(tenant, job_id, since_epoch)
        if not plausible_id(job_id, "job_"):
            raise NotFound("job", job_id)
        raw = await self.ar.hgetall(key("job", job_id))
        record = self._owned(tenant, job_id, raw)
        if raw.get("metrics_archived"):
            return record, await asyncio.to_thread(self.metrics, tenant, job_id, since_epoch)
        items = await self.ar.lrange(key("job", job_id, "metrics"), since_epoch, -1)
        if not items and record["status"] in TERMINAL:
            # Archived between the two reads: the list has moved to storage.
            raw = await self.ar.hgetall(key("job", job_id))
            if raw.get("metrics_archived"):
                return record, await asyncio.to_thread(self.metrics, tenant, job_id, since_epoch)
        return record, [json.loads(item) for item in items]

    def archive_metrics(self, job_id: str) -> bool:
        """Move a finished job's metrics list into storage (one object); False when nothing was moved.

        Safe to repeat and to run concurrently: the object's bytes follow from the list, which no longer
        changes once the job has finished, and the script moves it only if it still holds what was stored.
        If the storage fails the list stays in Redis, where every reader still finds it.
        """
        if self.artifacts is None:
            return False
        pipe = self.r.pipeline()
        pipe.hmget(key("job", job_id), "status", "metrics_archived")
        pipe.lrange(key("job", job_id, "metrics"), 0, -1)
        (status, archived), items = pipe.execute()
        if status not in TERMINAL or archived or not items:
            return False
        try:
            self.artifacts.storage.put(self.artifacts.metrics_key(job_id), ("[" + ",".join(items) + "]").encode())
        except (StorageUnavailable, StorageFull) as exc:
            log.warning("job %s: metrics stay in Redis, storage failed: %s", job_id, exc)
            return False
        return bool(self._archive(keys=[key("job", job_id), key("job", job_id, "metrics")], args=[len(items)]) == 1)

    def request_cancel(self, tenant: str, job_id: str) -> str:
        """Cancel a queued job now, or ask the running attempt to stop; returns the new status."""
        self.get(tenant, job_id)
        status = str(
            self._cancel(
                keys=[key("job", job_id), key("active", tenant), *outbox_keys(), key("finished"), *STATUS_KEYS],
                args=[now_iso(), job_id],
            )
        )
        if status in TERMINAL and status != "cancelled":
            raise Conflict(f"the job already {status}")
        if status == "cancelled":  # a queued job handed back earlier may have epochs
            self.archive_metrics(job_id)
        return status

    @staticmethod
    def check_deletable(record: dict[str, Any]) -> None:
        """Conflict unless the job has finished."""
        if record["status"] not in TERMINAL:
            raise Conflict(f"the job is {record['status']}; cancel it first")

    def delete(self, tenant: str, job_id: str) -> None:
        """Remove a finished job's record and metrics (the caller removes its stored objects first)."""
        self.check_deletable(self.get(tenant, job_id))
        self.purge(job_id)

    def discard(self, tenant: str, job_id: str, idempotency_key: str | None) -> None:
        """Undo :meth:`create` for a job that could not be queued."""
        pipe = self.r.pipeline()
        pipe.delete(key("job", job_id))
        pipe.hincrby(STATUS_COUNTS, "queued", -1)  # created queued a moment ago, in this request
        pipe.zrem(QUEUE_ORDER, job_id)
        pipe.zrem(key("jobs", tenant), job_id)
        pipe.srem(key("active", tenant), job_id)
        if idempotency_key:
            pipe.delete(key("idem", tenant, idempotency_key))
        pipe.execute()

    # -- worker side ---------------------------------------------------------

    def load(self, job_id: str) -> dict[str, Any] | None:
        """The record by id alone, for the worker that was handed the id."""
        raw = self.r.hgetall(key("job", job_id))
        return self._decode(raw) if raw else None

    def max_runtime_seconds(self, job_id: str) -> float | None:
        """The job's own time limit (``training.max_runtime_seconds``), None when the record is gone."""
        spec = self.r.hget(key("job", job_id), "spec")
        return float(json.loads(spec)["training"]["max_runtime_seconds"]) if spec else None

    def claim(
        self, job_id: str, tenant: str, *, lease_seconds: float, max_attempts: int, worker: str = "", pid: int = 0
    ) -> Claim:
        """Start a new attempt: running, attempt + 1, a fresh token, a lease."""
        token = uuid.uuid4().hex
        now = time.time()
        result = self._claim(
            keys=[
                key("job", job_id),
                key("active", tenant),
                key("leases"),
                *outbox_keys(),
                key("finished"),
                *STATUS_KEYS,
            ],
            args=[token, now_iso(), now + lease_seconds, max_attempts, now, worker, pid],
        )
        outcome = str(result[0])
        if outcome == "ok":
            return Claim("ok", int(result[1]), token)
        if outcome == "leased":
            return Claim("leased", retry_after=float(result[1]))
        if outcome not in get_args(ClaimOutcome):
            raise StoreError(f"the claim script answered {outcome!r}")
        return Claim(cast(ClaimOutcome, outcome))

    def append_metric(
        self,
        job_id: str,
        token: str,
        record: dict[str, Any],
        *,
        lease_seconds: float,
        best: dict[str, Any] | None = None,
        checkpoint: dict[str, Any] | None = None,
        epoch_seconds_recent: float | None = None,
    ) -> bool:
        """Record one epoch, the best epoch so far and where its checkpoint lies, and renew the lease.

        ``epoch_seconds_recent`` (the median of the last few epochs' durations) is what the job's ETA
        is computed from.

        Returns False when the epoch was already recorded. Raises StaleAttempt.
        """
        result = self._append(
            keys=[key("job", job_id), key("job", job_id, "metrics"), key("leases"), *outbox_keys()],
            args=[
                token,
                record["epoch"],
                json.dumps(record),
                time.time() + lease_seconds,
                json.dumps(best) if best else "",
                json.dumps(checkpoint) if checkpoint else "",
                job_id,
                "" if epoch_seconds_recent is None else repr(float(epoch_seconds_recent)),
            ],
        )
        if result == -1:
            raise StaleAttempt(f"attempt no longer owns job {job_id}")
        if result == -2:
            raise StaleAttempt(f"epoch {record['epoch']} of job {job_id} does not follow the recorded ones")
        return bool(result == 1)

    def renew(self, job_id: str, token: str, *, lease_seconds: float, progress: dict[str, Any] | None = None) -> None:
        """Extend the lease (and record a path job's ``progress``); raises StaleAttempt if the attempt lost the job."""
        expires = time.time() + lease_seconds
        args: builtins.list[str | float] = [token, expires, job_id, json.dumps(progress) if progress else ""]
        if self._renew(keys=[key("job", job_id), key("leases")], args=args) == -1:
            raise StaleAttempt(f"attempt no longer owns job {job_id}")

    def stop_requested(self, job_id: str, worker: str) -> str | None:
        """``"cancelled"`` if the job was cancelled, ``"shutdown"`` if its worker is draining, else None."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hget(key("job", job_id), "cancel_requested")
        pipe.exists(key("draining", worker))
        cancel, draining = pipe.execute()
        if cancel == "1":
            return "cancelled"
        return "shutdown" if draining else None

    def drain(self, worker: str, seconds: float = 600.0) -> None:
        """Tell the attempts running on ``worker`` to checkpoint and hand their jobs back."""
        self.r.set(key("draining", worker), "1", ex=int(seconds))

    def undrain(self, worker: str) -> None:
        """A (re)started worker takes jobs again."""
        self.r.delete(key("draining", worker))

    def release(self, job_id: str, token: str) -> None:
        """Put a running job back in the queue (its last checkpoint stays); raises StaleAttempt."""
        keys = [key("job", job_id), key("leases"), UNSENT, *STATUS_KEYS]
        if self._release(keys=keys, args=[token, job_id, time.time()]) == -1:
            raise StaleAttempt(f"attempt no longer owns job {job_id}")

    def finish(self, job_id: str, tenant: str, token: str, status: str, **fields: Any) -> None:
        """Set a terminal status and fields (structures as JSON); raises StaleAttempt."""
        values: dict[str, Any] = {"status": status, "finished_at": now_iso(), **fields}
        args: builtins.list[Any] = [token, job_id]
        for name, value in values.items():
            args += [name, json.dumps(value) if name in _JSON_FIELDS else _scalar(value)]
        keys = [key("job", job_id), key("active", tenant), key("leases"), *outbox_keys(), key("finished"), *STATUS_KEYS]
        if self._finish(keys=keys, args=args) == -1:
            raise StaleAttempt(f"attempt no longer owns job {job_id}")

    # -- recovery ------------------------------------------------------------

    def reap_expired(self) -> builtins.list[str]:
        """Requeue jobs whose attempt's lease expired; returns the ids to send to the workers again.

        Safe to run from every worker at once: each job is taken by one caller.
        """
        now = time.time()
        requeue: builtins.list[str] = []
        for job_id in self.r.zrangebyscore(key("leases"), "-inf", now):
            record = self.r.hget(key("job", job_id), "tenant")
            tenant = record or ""
            outcome = self._reap(
                keys=[
                    key("job", job_id),
                    key("active", tenant),
                    key("leases"),
                    *outbox_keys(),
                    key("finished"),
                    UNSENT,
                    *STATUS_KEYS,
                ],
                args=[now, now_iso(), job_id],
            )
            if outcome == "requeued":
                requeue.append(job_id)
            elif outcome == "cancelled":
                self.archive_metrics(job_id)
        return requeue

    def sent(self, job_id: str) -> None:
        """The broker has ``job_id``'s message: it leaves :data:`UNSENT`.

        Never raises: with Redis away the entry stays, and the job is sent once more later, which
        the claim makes harmless.
        """
        try:
            self.r.zrem(UNSENT, job_id)
        except redis.RedisError as exc:
            log.warning("job %s: sent, but could not record it: %s", job_id, exc)

    def take_unsent(self, older_than: float, limit: int = 100) -> builtins.list[str]:
        """Queued jobs that were to be sent more than ``older_than`` seconds ago and still are not.

        Their sender died between making them sendable and sending them. Each one
        is returned to one caller only (its entry is re-armed for another
        ``older_than``); an entry of a job no longer queued is dropped.
        """
        now = time.time()
        taken: builtins.list[str] = []
        for job_id in self.r.zrangebyscore(UNSENT, "-inf", now - older_than, start=0, num=limit):
            if self._take_unsent(keys=[key("job", job_id), UNSENT], args=[job_id, now - older_than, now]) == 1:
                taken.append(job_id)
        return taken

    # -- retention -----------------------------------------------------------

    def finished_before(self, cutoff: float, limit: int = 100) -> builtins.list[str]:
        """Up to ``limit`` jobs outside sweeps that finished before ``cutoff`` (epoch seconds), oldest first."""
        return list(self.r.zrangebyscore(key("finished"), "-inf", cutoff, start=0, num=limit))

    def purge(self, job_id: str) -> None:
        """Remove a finished job's record, metrics and index entries (the caller removed its objects first)."""
        tenant = self.r.hget(key("job", job_id), "tenant") or ""
        self._delete(
            keys=[
                key("job", job_id),
                key("job", job_id, "metrics"),
                key("jobs", tenant),
                key("active", tenant),
                key("finished"),
                *STATUS_KEYS,
            ],
            args=[job_id],
        )

    # -- decoding ------------------------------------------------------------

    @staticmethod
    def _decode(raw: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = dict(raw)
        for name in _JSON_FIELDS:
            value = out.get(name)
            out[name] = json.loads(value) if isinstance(value, str) and value else None
        for name in ("attempt", "epochs_done", "seq"):
            out[name] = int(out.get(name) or 0)
        out["stopped_early"] = out.get("stopped_early") == "1"
        out["sweep_id"] = out.get("sweep_id") or None
        out["cancel_requested"] = out.get("cancel_requested") == "1"
        return out

    #: A record as stored -> as the store returns it (the webhook outbox keeps raw records).
    decode = _decode


def eta_seconds(record: dict[str, Any]) -> float | None:
    """Seconds until a running job's last epoch, from a decoded record; None when there is no estimate yet.

    The median of the last few epochs' durations (the runner records it), so
    that one slow epoch does not make the estimate jump; the last epoch's
    duration for records written before it did.
    """
    latest = record.get("latest")
    if record.get("status") not in ("running", "cancelling") or not latest or not latest.get("epoch_seconds"):
        return None
    epochs = int(((record.get("spec") or {}).get("training") or {}).get("epochs", 0))
    per_epoch = float(record.get("epoch_seconds_recent") or latest["epoch_seconds"])
    return round(per_epoch * max(epochs - int(record.get("epochs_done") or 0), 0), 3)


def spec_fingerprint(spec: dict[str, Any]) -> str:
    """SHA-256 of a spec as canonical JSON (sorted keys): equal for equal specs whatever their key order."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _position(rank: int | None) -> int | None:
    """A 0-based rank in the queue order as a 1-based position (None: not in the queue)."""
    return None if rank is None else int(rank) + 1


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
