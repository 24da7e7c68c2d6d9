"""A thread in the worker's main process: heartbeat, recovery of dead attempts, sweep upkeep.

Every worker runs it. The heartbeat tells ``/readyz`` the worker is alive;
the reaper finds running jobs whose lease ran out (their worker was killed,
lost Redis, or hangs), puts them back in the queue and sends them to the
workers again, where they resume from their last checkpoint. Each expired job
is taken by exactly one reaper (a Lua script decides). Sweep upkeep frees the
slots of trials that ended without their runner noticing (cancelled while
queued, failed after their last attempt) and sends the next trials, and
recomputes the parameter importance of sweeps whose trials succeeded. A job
that became sendable but whose message never reached the broker (its sender
died in between: see ``store.jobs.UNSENT``) is sent after a lease's length. With
``TRAINAPI_RETENTION_DAYS`` it deletes jobs that finished longer ago than
that (one worker at a time, at most once a minute).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from store import workers
from store.redis import key
from store.storage import StorageUnavailable
from store.stores import Stores
from trainapi import logs
from trainapi.settings import Settings

log = logging.getLogger(__name__)
_stop = threading.Event()
_state: dict[str, Any] = {}  # name, hostname, stores: set by start()


def start(settings: Settings, stores: Stores, hostname: str, requeue: Callable[[str], None]) -> None:
    """Beat and reap every few seconds until :func:`stop`."""
    client, jobs, sweeps = stores.redis, stores.jobs, stores.sweeps
    name = f"{hostname}:{os.getpid()}"
    _state.update(name=name, hostname=hostname, stores=stores)
    _stop.clear()
    try:
        jobs.undrain(hostname)
    except redis.RedisError as exc:
        log.warning("could not clear a previous drain mark: %s", exc)
    interval = min(workers.HEARTBEAT_SECONDS, max(settings.lease_seconds / 3, 0.5))

    def loop() -> None:
        while not _stop.is_set():
            try:
                workers.beat(client, name)
                for job_id in jobs.reap_expired():
                    with logs.bind(job_id=job_id):
                        log.warning("job %s: its attempt's lease ran out; requeued", job_id)
                    requeue(job_id)
                for trial in sweeps.reconcile():
                    requeue(trial)
                for job_id in jobs.take_unsent(settings.lease_seconds):
                    with logs.bind(job_id=job_id):
                        log.warning("job %s: queued, but its message was never sent; sending it", job_id)
                    requeue(job_id)
                sweeps.update_importance()
                if settings.retention_days:
                    _expire(stores, settings.retention_days)
            except redis.RedisError as exc:  # Redis away: keep trying; readiness says so meanwhile
                log.warning("maintenance skipped: %s", exc)
            _stop.wait(interval)

    threading.Thread(target=loop, name="trainapi-maintenance", daemon=True).start()


#: How often, at most, some worker deletes expired jobs.
RETENTION_PASS_SECONDS = 60


def _expire(stores: Stores, days: float) -> None:
    """Delete the jobs and sweeps that ended over ``days`` ago, if no worker did so within the last pass interval."""
    if not stores.redis.set(key("retention", "pass"), "1", nx=True, ex=RETENTION_PASS_SECONDS):
        return
    cutoff = time.time() - days * 86400
    try:
        while expired := stores.expire_finished(cutoff):
            log.info("retention: deleted %d jobs and sweeps that ended over %g days ago", len(expired), days)
            if _stop.is_set():
                return
    except StorageUnavailable as exc:  # the records stay until their objects can go
        log.warning("retention paused, storage failed: %s", exc)


def drain() -> None:
    """The worker is shutting down: ask its running attempts to checkpoint and hand their jobs back."""
    if "hostname" in _state:
        try:
            _state["stores"].jobs.drain(_state["hostname"])
        except redis.RedisError as exc:
            log.warning("could not mark the worker as draining: %s", exc)


def stop() -> None:
    _stop.set()
    if "name" in _state:
        try:
            workers.retire(_state["stores"].redis, _state["name"])
        except redis.RedisError as exc:
            log.warning("could not retire the worker's heartbeat: %s", exc)
