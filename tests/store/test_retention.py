"""Retention: jobs that finished long enough ago go, records and stored objects; nothing else does.

A real redis-server and the data-directory storage; the status changes are the store's own scripts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.artifacts import Artifacts
from store.storage import LocalStorage
from store.stores import Stores
from trainapi import processes

TENANT = "retention-tenant"


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    proc, url = processes.start_redis(tmp_path / "redis")
    try:
        yield Stores.open(url, Artifacts(LocalStorage(tmp_path / "data")))
    finally:
        processes.stop(proc)


def _job(stores: Stores, sweep_id: str | None = None) -> str:
    record, _ = stores.jobs.create(
        TENANT, {"name": "r", "training": {"epochs": 2}}, {}, max_active=100, sweep_id=sweep_id, quota=not sweep_id
    )
    job_id = str(record["id"])
    stores.artifacts.storage.put(stores.artifacts.weights_key(job_id, 1, "npz"), b"weights")
    return job_id


def _finish(stores: Stores, job_id: str, status: str = "succeeded") -> None:
    claim = stores.jobs.claim(job_id, TENANT, lease_seconds=30, max_attempts=3)
    stores.jobs.append_metric(job_id, claim.token, {"epoch": 1}, lease_seconds=30)
    stores.jobs.finish(job_id, TENANT, claim.token, status, weights_attempt=claim.attempt)


def test_expired_jobs_lose_records_and_objects_and_active_jobs_and_trials_stay(stores: Stores):
    succeeded, failed, cancelled, running = (_job(stores) for _ in range(4))
    trial = _job(stores, sweep_id="sw_" + "0" * 32)
    _finish(stores, succeeded)
    _finish(stores, failed, "failed")
    assert stores.jobs.request_cancel(TENANT, cancelled) == "cancelled"  # cancelled while queued
    stores.jobs.claim(running, TENANT, lease_seconds=30, max_attempts=3)
    _finish(stores, trial)

    assert stores.expire_finished(time.time() - 3600) == []  # none finished an hour ago
    expired = stores.expire_finished(time.time() + 1)
    assert sorted(expired) == sorted([succeeded, failed, cancelled])
    for job_id in expired:
        assert not stores.redis.exists(f"trainapi:job:{job_id}", f"trainapi:job:{job_id}:metrics")
        assert stores.artifacts.storage.keys(f"jobs/{job_id}/") == []
    listed = {job["id"] for job in stores.jobs.list(TENANT, limit=100)[0]}
    assert listed == {running, trial}
    for job_id in (running, trial):
        assert stores.artifacts.storage.keys(f"jobs/{job_id}/") != []
    assert stores.expire_finished(time.time() + 1) == []


def test_a_deleted_job_leaves_the_retention_index(stores: Stores):
    job_id = _job(stores)
    _finish(stores, job_id)
    assert stores.redis.zscore("trainapi:finished", job_id) is not None
    stores.jobs.delete(TENANT, job_id)
    assert stores.redis.zscore("trainapi:finished", job_id) is None


def test_a_handed_back_job_cancelled_while_queued_moves_its_metrics_too(stores: Stores):
    job_id = _job(stores)
    claim = stores.jobs.claim(job_id, TENANT, lease_seconds=30, max_attempts=3)
    for epoch in (1, 2):
        stores.jobs.append_metric(job_id, claim.token, {"epoch": epoch}, lease_seconds=30)
    stores.jobs.release(job_id, claim.token)  # a worker shutting down handed it back
    assert stores.jobs.request_cancel(TENANT, job_id) == "cancelled"
    assert stores.redis.hget(f"trainapi:job:{job_id}", "metrics_archived") == "2"
    assert not stores.redis.exists(f"trainapi:job:{job_id}:metrics")
    assert stores.jobs.metrics(TENANT, job_id) == [{"epoch": 1}, {"epoch": 2}]
    assert stores.jobs.metrics(TENANT, job_id, since_epoch=1) == [{"epoch": 2}]


def _sweep(stores: Stores, n_trials: int) -> tuple[str, list[str]]:
    spec = {
        "name": "kept-or-not",
        "base": {"training": {"epochs": 2}},
        "max_concurrent_trials": n_trials,
        "objective": {"metric": "val_loss", "mode": "min"},
        "strategy": "grid",
    }
    pairs = [({"training.seed": seed}, {"name": f"t{seed}", "training": {"epochs": 2}}) for seed in range(n_trials)]
    sweep = stores.sweeps.create(TENANT, spec, pairs, {"id": "iris"})
    trials = stores.sweeps.dispatch(sweep["id"])
    for trial in trials:
        stores.artifacts.storage.put(stores.artifacts.weights_key(trial, 1, "npz"), b"weights")
        stores.sweeps.report(sweep["id"], trial, "curve", 1, 0.5)
    return sweep["id"], trials


def test_an_ended_sweep_goes_with_its_trials_and_a_running_one_stays(stores: Stores):
    ended, ended_trials = _sweep(stores, 2)
    running, running_trials = _sweep(stores, 2)
    for trial in ended_trials:
        _finish(stores, trial)
        stores.sweeps.trial_ended(ended, trial)
    _finish(stores, running_trials[0])
    stores.sweeps.trial_ended(running, running_trials[0])
    assert stores.sweeps.get(TENANT, ended)["status"] == "succeeded"
    assert stores.sweeps.get(TENANT, running)["status"] == "running"

    assert stores.expire_finished(time.time() - 3600) == []  # it ended just now
    assert stores.expire_finished(time.time() + 1) == [ended]
    assert list(stores.redis.scan_iter(f"trainapi:sweep:{ended}*")) == []
    assert stores.redis.zscore("trainapi:sweeps:finished", ended) is None
    assert [s["id"] for s in stores.sweeps.list(TENANT)] == [running]
    for trial in ended_trials:
        assert not stores.redis.exists(f"trainapi:job:{trial}")
        assert stores.artifacts.storage.keys(f"jobs/{trial}/") == []
    for trial in running_trials:  # the running sweep keeps every trial, the finished one too
        assert stores.redis.exists(f"trainapi:job:{trial}")
        assert stores.artifacts.storage.keys(f"jobs/{trial}/") != []
    assert stores.expire_finished(time.time() + 1) == []
