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

Dispatching and ending trials are Lua scripts, so any number of API
processes and workers may call them concurrently: a trial is sent once per
dispatch, ends once, and the sweep completes once.
"""

from __future__ import annotations

import builtins
import json
import uuid
from typing import Any

import redis

from store.errors import Conflict, NotFound
from store.jobs import TERMINAL, JobStore, now_iso
from store.redis import key, plausible_id

SWEEP_TERMINAL = ("succeeded", "failed", "cancelled")
_JSON_FIELDS = ("spec", "trials", "parameters", "objective", "pruning")

# KEYS: sweep, pending, active. ARGV: max_concurrent. Returns the trial ids to send now.
_DISPATCH = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return {} end
local out = {}
local limit = tonumber(ARGV[1])
while redis.call('SCARD', KEYS[3]) < limit do
  local trial = redis.call('LPOP', KEYS[2])
  if not trial then break end
  redis.call('SADD', KEYS[3], trial)
  table.insert(out, trial)
end
return out
"""

# KEYS: sweep, active, finished list, finished set, pending, running set.
# ARGV: trial id ('' to only check for completion), now_iso, sweep id, all_failed ('1' or '0').
# Returns the sweep's status after.
_TRIAL_END = """
if ARGV[1] ~= '' then
  redis.call('SREM', KEYS[2], ARGV[1])
  if redis.call('SADD', KEYS[4], ARGV[1]) == 1 then redis.call('RPUSH', KEYS[3], ARGV[1]) end
end
local status = redis.call('HGET', KEYS[1], 'status')
if (status == 'running' or status == 'cancelling')
   and redis.call('LLEN', KEYS[5]) == 0 and redis.call('SCARD', KEYS[2]) == 0 then
  if status == 'cancelling' then status = 'cancelled'
  elseif ARGV[4] == '1' then status = 'failed'
  else status = 'succeeded' end
  redis.call('HSET', KEYS[1], 'status', status, 'finished_at', ARGV[2])
  redis.call('SREM', KEYS[6], ARGV[3])
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
        self._trial_end = client.register_script(_TRIAL_END)

    # -- API side ------------------------------------------------------------

    def create(
        self,
        tenant: str,
        spec: dict[str, Any],
        trials: builtins.list[tuple[dict[str, Any], dict[str, Any]]],
        dataset: dict[str, Any],
    ) -> dict[str, Any]:
        """Create the sweep and one queued job per trial; ``trials`` is (parameters, job spec) pairs."""
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
        }
        pipe = self.r.pipeline()
        pipe.hset(key("sweep", sweep_id), mapping=record)
        pipe.rpush(key("sweep", sweep_id, "pending"), *ids)
        pipe.zadd(key("sweeps", tenant), {sweep_id: seq})
        pipe.sadd(key("sweeps", "running"), sweep_id)
        pipe.execute()
        return self._decode(record)

    def get(self, tenant: str, sweep_id: str) -> dict[str, Any]:
        raw = self.r.hgetall(key("sweep", sweep_id)) if plausible_id(sweep_id, "swp_") else {}
        if not raw or raw.get("tenant") != tenant:
            raise NotFound("sweep", sweep_id)
        return self._decode(raw)

    def list(self, tenant: str, limit: int = 50) -> builtins.list[dict[str, Any]]:
        ids = self.r.zrevrange(key("sweeps", tenant), 0, limit - 1)
        pipe = self.r.pipeline()
        for sweep_id in ids:
            pipe.hgetall(key("sweep", sweep_id))
        return [self._decode(raw) for raw in pipe.execute() if raw]

    def trial_states(self, sweep: dict[str, Any]) -> builtins.list[dict[str, Any]]:
        """Per trial, in creation order: id, index, parameters, status, times, and its best objective."""
        pipe = self.r.pipeline()
        for trial in sweep["trials"]:
            pipe.hmget(key("job", trial), "status", "started_at", "finished_at", "epochs_done", "error")
        pipe.hgetall(key("sweep", sweep["id"], "best"))
        *states, best = pipe.execute()
        out = []
        for index, (trial, params, state) in enumerate(zip(sweep["trials"], sweep["parameters"], states, strict=True)):
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
        """Move trials from pending to active up to the sweep's concurrency; returns those to send."""
        raw = self.r.hmget(key("sweep", sweep_id), "max_concurrent")
        if raw[0] is None:
            return []
        return list(
            self._dispatch(
                keys=[key("sweep", sweep_id), key("sweep", sweep_id, "pending"), key("sweep", sweep_id, "active")],
                args=[int(raw[0])],
            )
        )

    def trial_ended(self, sweep_id: str, trial_id: str) -> str:
        """Record that ``trial_id`` reached a terminal status; completes the sweep after its last trial.

        ``trial_id`` may be "" to only complete a sweep with nothing left to run. A
        sweep whose every trial failed ends ``failed``.
        """
        pipe = self.r.pipeline()
        pipe.llen(key("sweep", sweep_id, "pending"))
        pipe.smembers(key("sweep", sweep_id, "active"))
        pipe.hget(key("sweep", sweep_id), "trials")
        pending, active, trials_json = pipe.execute()
        all_failed = "0"
        if not pending and set(active) <= {trial_id}:  # this is the last trial (the script checks again)
            trials = json.loads(trials_json or "[]")
            all_failed = "1" if trials and all(s == "failed" for s in self._statuses(trials)) else "0"
        return str(
            self._trial_end(
                keys=[
                    key("sweep", sweep_id),
                    key("sweep", sweep_id, "active"),
                    key("sweep", sweep_id, "finished"),
                    key("sweep", sweep_id, "finished_set"),
                    key("sweep", sweep_id, "pending"),
                    key("sweeps", "running"),
                ],
                args=[trial_id, now_iso(), sweep_id, all_failed],
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
            if not self.r.scard(key("sweep", sweep_id, "active")) and not self.r.llen(
                key("sweep", sweep_id, "pending")
            ):
                self.trial_ended(sweep_id, "")
            send += self.dispatch(sweep_id)
        return send

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
    def _decode(raw: dict[str, Any]) -> dict[str, Any]:
        out = dict(raw)
        for name in _JSON_FIELDS:
            value = out.get(name)
            out[name] = json.loads(value) if isinstance(value, str) and value else None
        out["max_concurrent"] = int(out.get("max_concurrent") or 1)
        out["seq"] = int(out.get("seq") or 0)
        return out
