"""Sweeps in Redis: the record, the trial queue, concurrency, results and pruning data.

Layout (under the ``trainapi:`` prefix):

- ``sweep:{id}`` hash: the record (status, normalized request, trial ids and
  their parameters as JSON).
- ``sweeps:{tenant}`` sorted set: the tenant's sweeps by creation sequence.
- ``sweeps:running`` set: sweeps that still have trials to run or finish.
- ``sweep:{id}:pending`` list: trials not yet sent to the workers, in order.
- ``sweep:{id}:active`` set: trials sent and not yet finished; its size is
  the sweep's concurrency, whatever worker runs them.
- ``sweep:{id}:finished`` list (+ ``:finished_set``): trials in the order they
  ended, each once; the sweep's event stream reads it.
- ``sweep:{id}:best`` hash: trial -> its best objective so far (JSON).
- ``sweep:{id}:curve:{epoch}`` / ``sweep:{id}:rung:{epoch}`` hashes: trial ->
  objective at that epoch, for the median and ASHA pruners.
- ``sweeps:importance`` set: sweeps with a newly succeeded trial, whose
  parameter importance the maintenance thread recomputes.
- ``sweeps:finished`` sorted set: ended sweeps by the time they ended, for
  retention (:meth:`SweepStore.finished_before`, :meth:`SweepStore.purge`).

A ``tpe`` sweep has no pending list: its trials are created when a slot frees
up, by whoever frees it (the API for the first slots, the runner when a trial
ends, the maintenance thread's reconcile). Its record counts ``to_ask``
(trials not yet reserved) and ``next_slot``, and two hashes hold the slots:

- ``sweep:{id}:reserved``: slot -> reservation expiry (Unix seconds). A
  script reserves slot numbers while ``|active| + |reserved|`` is below the
  concurrency, so no two processes ask for the same slot; a reservation not
  filled in time (its process died) is taken over by the next dispatch.
- ``sweep:{id}:slots``: slot -> ``{"trial", "parameters"}`` (JSON). The
  reserving process asks ``store.search.ask`` for the slot's parameters,
  creates the trial's job, and fills the slot with a second script: the first
  fill wins (a loser deletes its job), and a sweep no longer running takes
  none.

Dispatching and ending trials are Lua scripts, so any number of API
processes and workers may call them concurrently: a trial is sent once per
dispatch, ends once, and the sweep completes once.
"""

from __future__ import annotations

import builtins
import json
import logging
import time
import uuid
from typing import Any

import pydantic
import redis

from engine.errors import EngineError
from store import search
from store.errors import Conflict, NotFound
from store.jobs import UNSENT, JobStore
from store.jobspec import JobSpec
from store.outbox import EMIT_LUA, outbox_keys
from store.redis import key, now_iso, plausible_id
from store.statuses import SWEEP_TERMINAL, TERMINAL

log = logging.getLogger(__name__)
_JSON_FIELDS = ("spec", "trials", "parameters", "objective", "pruning", "dataset", "importance")
#: Ended sweeps by the time they ended (Unix seconds), for retention.
FINISHED = key("sweeps", "finished")
#: A tpe slot reserved this long ago and still not filled is asked again by another process.
RESERVATION_SECONDS = 30.0
#: At most this many tpe slots are asked in one dispatch, so that no caller (the maintenance
#: thread, which also beats the worker's heartbeat) is held for long; later dispatches ask the rest.
ASK_BATCH = 16

# KEYS: sweep, pending, active, unsent. ARGV: max_concurrent, now. Returns the trial ids to send now.
_DISPATCH = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return {} end
local out = {}
local limit = tonumber(ARGV[1])
while redis.call('SCARD', KEYS[3]) < limit do
  local trial = redis.call('LPOP', KEYS[2])
  if not trial then break end
  redis.call('SADD', KEYS[3], trial)
  redis.call('ZADD', KEYS[4], ARGV[2], trial)
  table.insert(out, trial)
end
return out
"""

# tpe: reserve slot numbers to ask for. KEYS: sweep, active, reserved. ARGV: now, expiry (Unix s), at most.
# Returns the slots this caller must fill: expired reservations it took over, then new ones.
_RESERVE = """
local status = redis.call('HGET', KEYS[1], 'status')
local out = {}
local held = redis.call('HGETALL', KEYS[3])
for i = 1, #held, 2 do
  if tonumber(held[i + 1]) <= tonumber(ARGV[1]) and #out < tonumber(ARGV[3]) then
    if status == 'running' then
      redis.call('HSET', KEYS[3], held[i], ARGV[2])
      table.insert(out, held[i])
    else
      redis.call('HDEL', KEYS[3], held[i])
    end
  end
end
if status ~= 'running' then return out end
local limit = tonumber(redis.call('HGET', KEYS[1], 'max_concurrent'))
local left = tonumber(redis.call('HGET', KEYS[1], 'to_ask') or '0')
local slot = tonumber(redis.call('HGET', KEYS[1], 'next_slot') or '0')
while left > 0 and #out < tonumber(ARGV[3])
      and redis.call('SCARD', KEYS[2]) + redis.call('HLEN', KEYS[3]) < limit do
  redis.call('HSET', KEYS[3], tostring(slot), ARGV[2])
  table.insert(out, tostring(slot))
  slot = slot + 1
  left = left - 1
end
redis.call('HSET', KEYS[1], 'to_ask', left, 'next_slot', slot)
return out
"""

# tpe: fill a reserved slot with its trial. KEYS: sweep, active, reserved, slots, unsent.
# ARGV: slot, trial id, slot entry JSON, now. Returns 1 if this trial now holds the slot.
_FILL = """
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[2])
return 1
"""

# KEYS: sweep. ARGV: succeeded trials counted, importance JSON. Keeps the figure from the most trials.
_IMPORTANCE = """
if tonumber(redis.call('HGET', KEYS[1], 'importance_trials') or '-1') >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'importance', ARGV[2], 'importance_trials', ARGV[1])
return 1
"""

# KEYS: sweep, active, finished list, finished set, pending, running set, reserved, slots, then the outbox's
# (webhooks), then the ended sweeps (retention).
# ARGV: trial id ('' to only check for completion), now_iso, sweep id, job key prefix.
# Returns the sweep's status after. Whether every trial failed is decided here, when the
# sweep completes, from the trials' own records: a caller's earlier look could be out of date.
_TRIAL_END = """
if ARGV[1] ~= '' then
  redis.call('SREM', KEYS[2], ARGV[1])
  if redis.call('SADD', KEYS[4], ARGV[1]) == 1 then redis.call('RPUSH', KEYS[3], ARGV[1]) end
end
local status = redis.call('HGET', KEYS[1], 'status')
if (status == 'running' or status == 'cancelling')
   and redis.call('LLEN', KEYS[5]) == 0 and redis.call('SCARD', KEYS[2]) == 0
   and redis.call('HLEN', KEYS[7]) == 0
   and (status == 'cancelling' or tonumber(redis.call('HGET', KEYS[1], 'to_ask') or '0') == 0) then
  if status == 'cancelling' then status = 'cancelled'
  else
    local trials = cjson.decode(redis.call('HGET', KEYS[1], 'trials') or '[]')
    for _, entry in ipairs(redis.call('HVALS', KEYS[8])) do table.insert(trials, cjson.decode(entry)['trial']) end
    status = 'failed'
    if #trials == 0 then status = 'succeeded' end
    for _, trial in ipairs(trials) do
      if redis.call('HGET', ARGV[4] .. trial, 'status') ~= 'failed' then
        status = 'succeeded'
        break
      end
    end
  end
  redis.call('HSET', KEYS[1], 'status', status, 'finished_at', ARGV[2])
  redis.call('SREM', KEYS[6], ARGV[3])
  outbox_emit(KEYS[9], KEYS[10], 'sweep.' .. status, KEYS[1])
  redis.call('ZADD', KEYS[11], redis.call('TIME')[1], ARGV[3])
end
return status
"""


class SweepStore:
    """Sweeps of every tenant and the bookkeeping of their trials."""

    def __init__(self, client: redis.Redis, jobs: JobStore) -> None:
        # redis-py's return types are unions of every reply shape; replies here are str.
        self.r: Any = client
        self.jobs = jobs
        self._dispatch = client.register_script(_DISPATCH)
        self._trial_end = client.register_script(EMIT_LUA + _TRIAL_END)
        self._reserve = client.register_script(_RESERVE)
        self._fill = client.register_script(_FILL)
        self._importance = client.register_script(_IMPORTANCE)

    # -- API side ------------------------------------------------------------

    def create(
        self,
        tenant: str,
        spec: dict[str, Any],
        trials: builtins.list[tuple[dict[str, Any], dict[str, Any]]],
        dataset: dict[str, Any],
    ) -> dict[str, Any]:
        """Create the sweep and one queued job per trial; ``trials`` is (parameters, job spec) pairs.

        A ``tpe`` sweep is created with no trials: :meth:`dispatch` asks them.
        """
        sweep_id = "swp_" + uuid.uuid4().hex
        ids = []
        for _params, job_spec in trials:
            record, _ = self.jobs.create(tenant, job_spec, dataset, max_active=0, sweep_id=sweep_id, quota=False)
            ids.append(record["id"])
        seq = self.r.incr(key("seq"))
        record = {
            "id": sweep_id,
            "tenant": tenant,
            "name": spec.get("name") or sweep_id,
            "status": "running",
            "created_at": now_iso(),
            "seq": seq,
            "max_concurrent": spec["max_concurrent_trials"],
            "spec": json.dumps(spec),
            "trials": json.dumps(ids),
            "parameters": json.dumps([params for params, _ in trials]),
            "objective": json.dumps(spec["objective"]),
            "pruning": json.dumps(spec.get("early_stopping")),
            "strategy": spec.get("strategy", "grid"),
            "dataset": json.dumps(dataset),
        }
        if record["strategy"] == "tpe":
            record.update(to_ask=spec["max_trials"], next_slot=0)
        pipe = self.r.pipeline()
        pipe.hset(key("sweep", sweep_id), mapping=record)
        if ids:
            pipe.rpush(key("sweep", sweep_id, "pending"), *ids)
        pipe.zadd(key("sweeps", tenant), {sweep_id: seq})
        pipe.sadd(key("sweeps", "running"), sweep_id)
        pipe.execute()
        return self._decode(record)

    def get(self, tenant: str, sweep_id: str) -> dict[str, Any]:
        sweep = self._load(sweep_id) if plausible_id(sweep_id, "swp_") else None
        if sweep is None or sweep.get("tenant") != tenant:
            raise NotFound("sweep", sweep_id)
        return sweep

    def list(self, tenant: str, limit: int = 50) -> builtins.list[dict[str, Any]]:
        ids = self.r.zrevrange(key("sweeps", tenant), 0, limit - 1)
        pipe = self.r.pipeline()
        for sweep_id in ids:
            pipe.hgetall(key("sweep", sweep_id))
            pipe.hgetall(key("sweep", sweep_id, "slots"))
        replies = pipe.execute()
        return [self._decode(raw, slots) for raw, slots in zip(replies[::2], replies[1::2], strict=True) if raw]

    def _load(self, sweep_id: str) -> dict[str, Any] | None:
        """The record by id alone, with a tpe sweep's trials so far."""
        pipe = self.r.pipeline()
        pipe.hgetall(key("sweep", sweep_id))
        pipe.hgetall(key("sweep", sweep_id, "slots"))
        raw, slots = pipe.execute()
        return self._decode(raw, slots) if raw else None

    def trial_states(self, sweep: dict[str, Any]) -> builtins.list[dict[str, Any]]:
        """Per trial, in creation order: id, index, parameters, status, times, and its best objective."""
        pipe = self.r.pipeline()
        for trial in sweep["trials"]:
            pipe.hmget(key("job", trial), "status", "started_at", "finished_at", "epochs_done", "error")
        pipe.hgetall(key("sweep", sweep["id"], "best"))
        *states, best = pipe.execute()
        out = []
        indexes = sweep.get("slots") or range(len(sweep["trials"]))
        rows = zip(indexes, sweep["trials"], sweep["parameters"], states, strict=True)
        for index, trial, params, state in rows:
            status, started, finished, epochs, error = state
            out.append(
                {
                    "trial_id": trial,
                    "index": index,
                    "parameters": params,
                    "status": status or "deleted",
                    "started_at": started or None,
                    "finished_at": finished or None,
                    "epochs_run": int(epochs or 0),
                    "error": json.loads(error) if error else None,
                    "best": json.loads(best[trial]) if trial in best else None,
                }
            )
        return out

    def finished(self, sweep_id: str, start: int = 0) -> builtins.list[str]:
        """Trials in the order they ended, from position ``start``."""
        return list(self.r.lrange(key("sweep", sweep_id, "finished"), start, -1))

    def request_cancel(self, tenant: str, sweep_id: str) -> builtins.list[str]:
        """Stop dispatching, cancel queued trials, ask running ones to stop; returns trials now ended."""
        sweep = self.get(tenant, sweep_id)
        if sweep["status"] in SWEEP_TERMINAL:
            raise Conflict(f"the sweep already {sweep['status']}")
        self.r.hset(key("sweep", sweep_id), mapping={"status": "cancelling", "cancel_requested": "1"})
        pending = self.r.lrange(key("sweep", sweep_id, "pending"), 0, -1)
        self.r.delete(key("sweep", sweep_id, "pending"))
        ended = []
        trials = [*pending, *self.r.smembers(key("sweep", sweep_id, "active"))]
        for trial, status in zip(trials, self._statuses(trials), strict=True):
            if status in TERMINAL or self.jobs.request_cancel(tenant, trial) != "cancelling":
                ended.append(trial)
        for trial in ended:
            self.trial_ended(sweep_id, trial)
        if not ended and not pending:
            self.trial_ended(sweep_id, "")  # nothing active: complete the cancel now
        return ended

    # -- scheduling (API and workers) ----------------------------------------

    def dispatch(self, sweep_id: str) -> builtins.list[str]:
        """Move trials from pending to active up to the sweep's concurrency; returns those to send.

        A ``tpe`` sweep's trials are asked and created here (:meth:`_ask_trials`).
        """
        raw = self.r.hmget(key("sweep", sweep_id), "max_concurrent", "strategy")
        if raw[0] is None:
            return []
        if raw[1] == "tpe":
            return self._ask_trials(sweep_id)
        return list(
            self._dispatch(
                keys=[
                    key("sweep", sweep_id),
                    key("sweep", sweep_id, "pending"),
                    key("sweep", sweep_id, "active"),
                    UNSENT,
                ],
                args=[int(raw[0]), time.time()],
            )
        )

    def trial_ended(self, sweep_id: str, trial_id: str) -> str:
        """Record that ``trial_id`` reached a terminal status; completes the sweep after its last trial.

        ``trial_id`` may be "" to only complete a sweep with nothing left to run. A
        sweep whose every trial failed ends ``failed``.
        """
        return str(
            self._trial_end(
                keys=[
                    key("sweep", sweep_id),
                    key("sweep", sweep_id, "active"),
                    key("sweep", sweep_id, "finished"),
                    key("sweep", sweep_id, "finished_set"),
                    key("sweep", sweep_id, "pending"),
                    key("sweeps", "running"),
                    key("sweep", sweep_id, "reserved"),
                    key("sweep", sweep_id, "slots"),
                    *outbox_keys(),
                    FINISHED,
                ],
                args=[trial_id, now_iso(), sweep_id, key("job", "")],
            )
        )

    def reconcile(self) -> builtins.list[str]:
        """For every running sweep: end trials that finished unnoticed, then dispatch; returns trials to send."""
        send: builtins.list[str] = []
        for sweep_id in self.r.smembers(key("sweeps", "running")):
            active = list(self.r.smembers(key("sweep", sweep_id, "active")))
            for trial, status in zip(active, self._statuses(active), strict=True):
                if status in (*TERMINAL, None):
                    self.trial_ended(sweep_id, trial)
            send += self.dispatch(sweep_id)  # tpe: also takes over reservations whose process died
            if not self.r.scard(key("sweep", sweep_id, "active")) and not self.r.llen(
                key("sweep", sweep_id, "pending")
            ):
                self.trial_ended(sweep_id, "")
        return send

    # -- adaptive search (tpe) -----------------------------------------------

    def _ask_trials(self, sweep_id: str) -> builtins.list[str]:
        """Reserve free slots, ask each one's parameters, create and fill its trial; returns the trials to send."""
        now = time.time()
        reserved = self._reserve(
            keys=[key("sweep", sweep_id), key("sweep", sweep_id, "active"), key("sweep", sweep_id, "reserved")],
            args=[now, now + RESERVATION_SECONDS, ASK_BATCH],
        )
        slots = sorted(int(s) for s in reserved)
        sweep = self._load(sweep_id) if slots else None
        if sweep is None:
            return []
        try:
            asked = search.ask(sweep["spec"], self.trial_states(sweep), slots)
        except (ValueError, TypeError, ArithmeticError, RuntimeError) as exc:
            # The reservations stay and run out: a dispatch after that asks again.
            log.error("sweep %s slots %s: asking for parameters failed: %s", sweep_id, slots, exc)
            return []
        send = []
        for slot, parameters in zip(slots, asked, strict=True):
            trial = self._fill_slot(sweep, slot, parameters)
            if trial is not None:
                send.append(trial)
        if len(send) < len(slots):
            self.trial_ended(sweep_id, "")  # a cancel may have been waiting for a reserved slot
        return send

    def _fill_slot(self, sweep: dict[str, Any], slot: int, parameters: dict[str, Any]) -> str | None:
        """Create the trial of ``slot`` with ``parameters`` and fill the slot; None if the slot was taken."""
        sweep_id, spec = sweep["id"], sweep["spec"]
        job_spec = search.apply(spec["base"], parameters)
        job_spec["name"] = f"{spec.get('name') or 'sweep'}/trial-{slot}"
        try:
            job_spec = JobSpec.model_validate(job_spec).normalized()
        except (pydantic.ValidationError, EngineError) as exc:
            # Kept as asked: the runner fails the trial as an invalid spec, and TPE is told it failed.
            log.warning("sweep %s slot %d: asked parameters give an invalid job: %s", sweep_id, slot, exc)
        record, _ = self.jobs.create(
            sweep["tenant"], job_spec, sweep["dataset"] or {}, max_active=0, sweep_id=sweep_id, quota=False
        )
        entry = json.dumps({"trial": record["id"], "parameters": parameters})
        filled = self._fill(
            keys=[
                key("sweep", sweep_id),
                key("sweep", sweep_id, "active"),
                key("sweep", sweep_id, "reserved"),
                key("sweep", sweep_id, "slots"),
                UNSENT,
            ],
            args=[slot, record["id"], entry, time.time()],
        )
        if filled == 1:
            return str(record["id"])
        self.jobs.discard(sweep["tenant"], record["id"], None)
        return None

    def importance_due(self, sweep_id: str) -> None:
        """A trial of the sweep succeeded: its importance is to be recomputed (:meth:`update_importance`)."""
        self.r.sadd(key("sweeps", "importance"), sweep_id)

    def update_importance(self) -> None:
        """Recompute the importance of every sweep with newly succeeded trials (the maintenance thread's job).

        Off the trials' path: Optuna's importance module loads in seconds. A
        sweep whose trial succeeds meanwhile is marked due again.
        """
        for sweep_id in self.r.smembers(key("sweeps", "importance")):
            self.r.srem(key("sweeps", "importance"), sweep_id)
            sweep = self._load(sweep_id)
            if sweep is None or not sweep["spec"]:
                continue
            trials = self.trial_states(sweep)
            succeeded = sum(t["status"] == "succeeded" for t in trials)
            if succeeded < search.IMPORTANCE_MIN_TRIALS:
                continue
            try:
                shares = search.importance(sweep["spec"], trials)
            except (ValueError, TypeError, ArithmeticError, RuntimeError) as exc:
                log.warning("sweep %s: parameter importance failed: %s", sweep_id, exc)
                continue
            if shares is not None:
                self._importance(keys=[key("sweep", sweep_id)], args=[succeeded, json.dumps(shares)])

    # -- retention -----------------------------------------------------------

    def finished_before(self, cutoff: float, limit: int = 100) -> builtins.list[str]:
        """Up to ``limit`` sweeps that ended before ``cutoff`` (Unix seconds), oldest first."""
        return list(self.r.zrangebyscore(FINISHED, "-inf", cutoff, start=0, num=limit))

    def trial_ids(self, sweep_id: str) -> builtins.list[str]:
        """Every trial job of the sweep (a tpe sweep's asked so far); [] for a sweep that is gone."""
        sweep = self._load(sweep_id)
        return list(sweep["trials"] or []) if sweep else []

    def purge(self, sweep_id: str) -> None:
        """Remove an ended sweep's record and keys (the caller removed its trials first). Idempotent."""
        sweep = self._load(sweep_id)
        if sweep is not None:
            epochs = int(((sweep.get("spec") or {}).get("base") or {}).get("training", {}).get("epochs", 0))
            pipe = self.r.pipeline()
            parts = ("active", "best", "finished", "finished_set", "pending", "reserved", "slots")
            tables = [key("sweep", sweep_id, t, str(e)) for t in ("curve", "rung") for e in range(1, epochs + 1)]
            pipe.delete(*(key("sweep", sweep_id, part) for part in parts), *tables)
            pipe.zrem(key("sweeps", sweep["tenant"]), sweep_id)
            pipe.srem(key("sweeps", "importance"), sweep_id)
            pipe.srem(key("sweeps", "running"), sweep_id)
            pipe.delete(key("sweep", sweep_id))
            pipe.execute()
        self.r.zrem(FINISHED, sweep_id)

    # -- trial progress (workers) --------------------------------------------

    def record_best(self, sweep_id: str, trial_id: str, best: dict[str, Any]) -> None:
        self.r.hset(key("sweep", sweep_id, "best"), trial_id, json.dumps(best))

    def report(self, sweep_id: str, trial_id: str, table: str, epoch: int, value: float) -> dict[str, float]:
        """Record the trial's objective at ``epoch`` in ``table`` (curve or rung); return everyone's there."""
        name = key("sweep", sweep_id, table, str(epoch))
        pipe = self.r.pipeline()
        pipe.hset(name, trial_id, repr(value))
        pipe.hgetall(name)
        _, values = pipe.execute()
        return {trial: float(v) for trial, v in values.items()}

    def config(self, sweep_id: str) -> dict[str, Any] | None:
        raw = self.r.hmget(key("sweep", sweep_id), "objective", "pruning")
        if raw[0] is None:
            return None
        return {"objective": json.loads(raw[0]), "pruning": json.loads(raw[1]) if raw[1] else None}

    # -- helpers -------------------------------------------------------------

    def _statuses(self, job_ids: builtins.list[str]) -> builtins.list[str | None]:
        """The status of each job (None for one that no longer exists), in one round trip."""
        pipe = self.r.pipeline()
        for job_id in job_ids:
            pipe.hget(key("job", job_id), "status")
        return [str(status) if status else None for status in pipe.execute()]

    @staticmethod
    def _decode(raw: dict[str, Any], slots: dict[str, str] | None = None) -> dict[str, Any]:
        out = dict(raw)
        for name in _JSON_FIELDS:
            value = out.get(name)
            out[name] = json.loads(value) if isinstance(value, str) and value else None
        if out.get("strategy") == "tpe":
            entries = sorted((int(slot), json.loads(entry)) for slot, entry in (slots or {}).items())
            out["slots"] = [slot for slot, _ in entries]
            out["trials"] = [entry["trial"] for _, entry in entries]
            out["parameters"] = [entry["parameters"] for _, entry in entries]
        out["max_concurrent"] = int(out.get("max_concurrent") or 1)
        out["seq"] = int(out.get("seq") or 0)
        return out

    #: A record as stored -> as the store returns it (the webhook outbox keeps raw records).
    decode = _decode
