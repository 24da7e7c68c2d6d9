"""The one sender of ``trainapi.run_job``: every message carries the job's own hard time limit.

A real redis-server as the broker; the messages are read back from the queue's Redis list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.artifacts import Artifacts
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
    send_run_job(app, "job_x", max_runtime_seconds=120)
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
