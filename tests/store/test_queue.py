"""The one sender of ``trainapi.run_job``: every message carries the job's own hard time limit, and
every step that makes a job sendable records it as unsent until the message is out.

A real redis-server as the broker; the messages are read back from the queue's Redis list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.artifacts import Artifacts
from store.jobs import UNSENT
from store.jobspec import JobSpec
from store.queue import QUEUE, RUN_JOB, TIME_LIMIT_MARGIN_SECONDS, Requeue, celery_app, send_run_job
from store.storage import LocalStorage
from store.stores import Stores
from trainapi import processes


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    proc, url = processes.start_redis(tmp_path_factory.mktemp("queue-redis"))
    try:
        yield Stores.open(url, Artifacts(LocalStorage(Path(tmp_path_factory.mktemp("queue-data")))))
    finally:
        processes.stop(proc)


def _sent(stores: Stores) -> list[dict]:
    """The queued messages' headers, oldest first (kombu's Redis transport LPUSHes JSON)."""
    messages = [json.loads(raw) for raw in stores.redis.lrange(QUEUE, 0, -1)]
    stores.redis.delete(QUEUE)
    return [m["headers"] for m in reversed(messages)]


def test_send_run_job_sets_the_hard_time_limit(stores: Stores) -> None:
    app = celery_app(_url(stores), max_runtime_seconds=3600)
    send_run_job(app, stores.jobs, "job_x", max_runtime_seconds=120)
    [headers] = _sent(stores)
    assert headers["task"] == RUN_JOB
    assert headers["argsrepr"] == "['job_x']"
    assert headers["timelimit"][0] == 120 + TIME_LIMIT_MARGIN_SECONDS


def test_requeue_uses_the_limit_of_the_jobs_own_spec(stores: Stores) -> None:
    app = celery_app(_url(stores), max_runtime_seconds=3600)
    spec = {"name": "limited", "training": {"max_runtime_seconds": 42.0}}
    record, _ = stores.jobs.create("alpha", spec, {"id": "iris"}, max_active=10)
    requeue = Requeue(app, stores.jobs, default_max_runtime_seconds=3600)
    requeue(record["id"])
    requeue("job_" + "0" * 32)  # gone: the service's bound
    first, second = _sent(stores)
    assert first["timelimit"][0] == 42.0 + TIME_LIMIT_MARGIN_SECONDS
    assert second["timelimit"][0] == 3600 + TIME_LIMIT_MARGIN_SECONDS


def _url(stores: Stores) -> str:
    kwargs = stores.redis.get_connection_kwargs()
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def _unsent(stores: Stores) -> set[str]:
    return set(stores.redis.zrange(UNSENT, 0, -1))


def test_a_new_job_is_unsent_until_its_message_is_out(stores: Stores) -> None:
    app = celery_app(_url(stores), max_runtime_seconds=3600)
    record, _ = stores.jobs.create("alpha", {"name": "plain"}, {"id": "iris"}, max_active=10)
    assert record["id"] in _unsent(stores)
    send_run_job(app, stores.jobs, record["id"], max_runtime_seconds=60)
    assert record["id"] not in _unsent(stores)
    _sent(stores)
    trial, _ = stores.jobs.create("alpha", {"name": "t"}, {"id": "iris"}, max_active=0, sweep_id="swp_x", quota=False)
    assert trial["id"] not in _unsent(stores)  # a sweep's trial waits for the sweep's dispatch


def test_take_unsent_returns_only_old_queued_entries_once(stores: Stores) -> None:
    stores.redis.delete(UNSENT)
    old, _ = stores.jobs.create("alpha", {"name": "old"}, {"id": "iris"}, max_active=10)
    fresh, _ = stores.jobs.create("alpha", {"name": "fresh"}, {"id": "iris"}, max_active=10)
    gone, _ = stores.jobs.create("alpha", {"name": "cancelled"}, {"id": "iris"}, max_active=10)
    stores.jobs.request_cancel("alpha", gone["id"])
    stores.redis.zadd(UNSENT, {old["id"]: 1000.0, gone["id"]: 1000.0})  # their senders died long ago
    assert stores.jobs.take_unsent(older_than=60) == [old["id"]]
    assert stores.jobs.take_unsent(older_than=60) == []  # re-armed: nobody else sends it meanwhile
    assert _unsent(stores) == {old["id"], fresh["id"]}  # the cancelled job's entry is dropped


def test_reaped_and_handed_back_jobs_are_unsent_until_sent(stores: Stores) -> None:
    jobs = stores.jobs
    for way in ("reaped", "released"):
        record, _ = jobs.create("alpha", {"name": way}, {"id": "iris"}, max_active=10)
        jobs.sent(record["id"])
        claim = jobs.claim(record["id"], "alpha", lease_seconds=30, max_attempts=3)
        assert claim.outcome == "ok" and record["id"] not in _unsent(stores)
        if way == "reaped":
            stores.redis.zadd("trainapi:leases", {record["id"]: 0})
            stores.redis.hset(f"trainapi:job:{record['id']}", "lease_expires", 0)
            assert record["id"] in jobs.reap_expired()
        else:
            jobs.release(record["id"], claim.token)
        assert record["id"] in _unsent(stores)


def test_dispatched_and_asked_trials_are_unsent_until_sent(stores: Stores) -> None:
    grid = {
        "name": "grid",
        "max_concurrent_trials": 1,
        "objective": {"metric": "val_loss", "mode": "min"},
        "strategy": "grid",
    }
    pairs = [({"regularization.l2": v}, {"name": f"l2={v}"}) for v in (0.0, 0.1)]
    sweep = stores.sweeps.create("alpha", grid, pairs, {"id": "iris"})
    [first] = stores.sweeps.dispatch(sweep["id"])
    assert first in _unsent(stores) and not set(sweep["trials"]) - {first} & _unsent(stores)

    tpe = {
        **grid,
        "name": "tpe",
        "strategy": "tpe",
        "seed": 1,
        "max_trials": 2,
        "base": JobSpec.model_validate({"dataset": "iris", "training": {"epochs": 2}}).normalized(),
        "parameters": {"regularization.l2": {"distribution": "log_uniform", "low": 1e-5, "high": 1e-1}},
    }
    sweep = stores.sweeps.create("alpha", tpe, [], {"id": "iris"})
    [asked] = stores.sweeps.dispatch(sweep["id"])
    assert asked in _unsent(stores)
    stores.jobs.sent(asked)
    assert asked not in _unsent(stores)
