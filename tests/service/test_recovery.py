"""Crash safety: killed workers, stale attempts, graceful shutdown and a Redis outage lose nothing."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis as redis_client
from support import Service, poll, wait_for_job

from store.errors import StaleAttempt
from store.jobs import UNSENT, JobStore
from store.jobspec import JobSpec

LONG_JOB = {
    "dataset": "digits",
    "model": {"type": "mlp", "hidden_layers": [256, 256]},
    "regularization": {"dropout": 0.3, "l2": 1e-4},
    "training": {"epochs": 14, "batch_size": 16, "seed": 11},
}
SHORT_LEASE = {"TRAINAPI_LEASE_SECONDS": "2", "TRAINAPI_MAX_ATTEMPTS": "3"}


@pytest.fixture
def cluster(tmp_path) -> Iterator[Service]:
    """Redis, two workers and the API, with a short lease so recovery is quick."""
    svc = Service(tmp_path, env_extra=dict(SHORT_LEASE))
    try:
        yield svc.start(workers=2)
    finally:
        svc.stop()


def _tensors(api: httpx.Client, job_id: str) -> dict[str, np.ndarray]:
    blob = api.get(f"/v1/jobs/{job_id}/weights", params={"format": "npz"}).content
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k != "metadata"}


def _running_pid(api: httpx.Client, service: Service, job_id: str, min_epoch: int) -> int:
    def ready() -> int | None:
        job = api.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] not in ("succeeded", "failed"), "the job ended before it could be interrupted"
        if job["status"] == "running" and job["progress"]["epoch"] >= min_epoch:
            record = redis_client.Redis.from_url(service.redis_url, decode_responses=True).hgetall(
                f"trainapi:job:{job_id}"
            )
            return int(record["worker_pid"])
        return None

    return poll(ready, 120, interval=0.02, what=f"job {job_id} to run epoch {min_epoch}")


def _no_partial_files(root: Path) -> None:
    leftovers = list(root.rglob("*.tmp"))
    assert leftovers == []


def test_killed_worker_process_resumes_from_checkpoint_bit_identically(cluster):
    with httpx.Client(base_url=cluster.url, timeout=30) as api:
        reference = api.post("/v1/jobs", json=LONG_JOB).json()["id"]
        assert wait_for_job(api, reference)["status"] == "succeeded"

        job_id = api.post("/v1/jobs", json=LONG_JOB).json()["id"]
        os.kill(_running_pid(api, cluster, job_id, min_epoch=4), signal.SIGKILL)

        job = wait_for_job(api, job_id, timeout=180)
        assert job["status"] == "succeeded", cluster.logs()
        assert job["attempt"] == 2
        metrics = api.get(f"/v1/jobs/{job_id}/metrics").json()["items"]
        assert [m["epoch"] for m in metrics] == list(range(1, 15))
        expected, actual = _tensors(api, reference), _tensors(api, job_id)
        assert expected.keys() == actual.keys()
        for name in expected:
            assert actual[name].tobytes() == expected[name].tobytes(), name
        reference_metrics = api.get(f"/v1/jobs/{reference}/metrics").json()["items"]
        assert [m["val_loss"] for m in metrics] == [m["val_loss"] for m in reference_metrics]
    _no_partial_files(cluster.root)


PATH_JOB = {
    "dataset": "diabetes",
    "model": {"type": "linear"},
    "path": {"n_lambdas": 100, "alpha": 0.9},
    "training": {"cross_validation": {"folds": 10}, "seed": 4},
}


def test_a_path_job_whose_worker_is_killed_mid_path_gives_the_same_path(cluster):
    with httpx.Client(base_url=cluster.url, timeout=30) as api:
        reference = api.post("/v1/jobs", json=PATH_JOB).json()["id"]
        assert wait_for_job(api, reference, timeout=180)["status"] == "succeeded"

        job_id = api.post("/v1/jobs", json=PATH_JOB).json()["id"]
        # Progress counts λ solves: kill the worker once it is a fifth of the way through.
        os.kill(_running_pid(api, cluster, job_id, min_epoch=40), signal.SIGKILL)

        job = wait_for_job(api, job_id, timeout=180)
        assert job["status"] == "succeeded", cluster.logs()
        assert job["attempt"] == 2
        assert api.get(f"/v1/jobs/{job_id}/path").json() == api.get(f"/v1/jobs/{reference}/path").json()
        expected, actual = _tensors(api, reference), _tensors(api, job_id)
        for name in expected:
            assert actual[name].tobytes() == expected[name].tobytes(), name
    _no_partial_files(cluster.root)


def test_a_job_whose_attempts_keep_dying_fails_after_max_attempts(cluster):
    with httpx.Client(base_url=cluster.url, timeout=30) as api:
        job_id = api.post("/v1/jobs", json={**LONG_JOB, "training": {**LONG_JOB["training"], "epochs": 200}}).json()[
            "id"
        ]
        for attempt in (1, 2, 3):
            poll(lambda a=attempt: api.get(f"/v1/jobs/{job_id}").json()["attempt"] == a, 120, what=f"attempt {attempt}")
            os.kill(_running_pid(api, cluster, job_id, min_epoch=0), signal.SIGKILL)
        job = wait_for_job(api, job_id, timeout=120)
        assert job["status"] == "failed"
        assert job["error"]["type"] == "attempts_exhausted"
        assert "3 times" in job["error"]["message"]
        running = api.get("/v1/jobs", params={"status": "running"}).json()["items"]
        assert running == []


def test_sigterm_hands_the_job_to_another_worker_with_no_partial_files(cluster):
    with httpx.Client(base_url=cluster.url, timeout=30) as api:
        job_id = api.post("/v1/jobs", json={**LONG_JOB, "training": {**LONG_JOB["training"], "epochs": 30}}).json()[
            "id"
        ]
        _running_pid(api, cluster, job_id, min_epoch=3)
        record = redis_client.Redis.from_url(cluster.redis_url, decode_responses=True).hgetall(f"trainapi:job:{job_id}")
        owner = record["worker"].split("@")[0]
        cluster.stop_worker(owner)  # SIGTERM: warm shutdown
        job = wait_for_job(api, job_id, timeout=180)
        assert job["status"] == "succeeded", cluster.logs()
        assert job["attempt"] == 2  # handed back, resumed by the other worker
        metrics = api.get(f"/v1/jobs/{job_id}/metrics").json()["items"]
        assert [m["epoch"] for m in metrics] == list(range(1, 31))
    _no_partial_files(cluster.root)


def test_redis_outage_gives_503_and_loses_no_job(cluster):
    with httpx.Client(base_url=cluster.url, timeout=30) as api:
        spec = {**LONG_JOB, "training": {**LONG_JOB["training"], "epochs": 8}}
        ids = [api.post("/v1/jobs", json=spec).json()["id"] for _ in range(4)]
        _running_pid(api, cluster, ids[0], min_epoch=2)
        cluster.redis.send_signal(signal.SIGKILL)
        cluster.redis.wait()
        down = api.get(f"/v1/jobs/{ids[0]}")
        assert down.status_code == 503
        assert down.headers["content-type"] == "application/problem+json"
        assert api.post("/v1/jobs", json=spec).status_code == 503
        cluster.start_redis()
        for job_id in ids:
            job = wait_for_job(api, job_id, timeout=240)
            assert job["status"] == "succeeded", (job, cluster.logs())
            epochs = [m["epoch"] for m in api.get(f"/v1/jobs/{job_id}/metrics").json()["items"]]
            assert epochs == list(range(1, 9))


def test_a_stale_attempt_cannot_write(service):
    client = redis_client.Redis.from_url(service.redis_url, decode_responses=True)
    jobs = JobStore(client)
    record, _ = jobs.create("stale-tenant", {"name": "s", "training": {"epochs": 3}}, {}, max_active=10)
    job_id = record["id"]
    jobs.sent(job_id)  # as if sent: no worker is to run this hand-driven job
    first = jobs.claim(job_id, "stale-tenant", lease_seconds=30, max_attempts=3)
    assert first.outcome == "ok" and first.attempt == 1
    assert jobs.claim(job_id, "stale-tenant", lease_seconds=30, max_attempts=3).outcome == "leased"
    jobs.append_metric(job_id, first.token, {"epoch": 1}, lease_seconds=30)

    client.hset(f"trainapi:job:{job_id}", "lease_expires", 0)  # the first attempt stops renewing …
    client.zadd("trainapi:leases", {job_id: 0})
    assert job_id in jobs.reap_expired()  # … the reaper requeues the job …
    second = jobs.claim(job_id, "stale-tenant", lease_seconds=30, max_attempts=3)  # … and a new attempt takes it
    assert second.outcome == "ok" and second.attempt == 2

    with pytest.raises(StaleAttempt):
        jobs.append_metric(job_id, first.token, {"epoch": 2}, lease_seconds=30)
    with pytest.raises(StaleAttempt):
        jobs.renew(job_id, first.token, lease_seconds=30)
    with pytest.raises(StaleAttempt):
        jobs.finish(job_id, "stale-tenant", first.token, "succeeded", weights_attempt=1)
    with pytest.raises(StaleAttempt):
        jobs.release(job_id, first.token)
    assert jobs.append_metric(job_id, second.token, {"epoch": 1}, lease_seconds=30) is False  # no duplicate
    assert jobs.append_metric(job_id, second.token, {"epoch": 2}, lease_seconds=30) is True
    jobs.finish(job_id, "stale-tenant", second.token, "succeeded", weights_attempt=2)
    final = jobs.get("stale-tenant", job_id)
    assert final["status"] == "succeeded" and final["weights_attempt"] == "2"
    assert [m["epoch"] for m in jobs.metrics("stale-tenant", job_id)] == [1, 2]
    assert client.zscore("trainapi:leases", job_id) is None


def test_a_job_stored_but_never_sent_is_sent_by_the_upkeep(cluster):
    # The API stored the job and died before sending its message: the record is the only trace.
    client = redis_client.Redis.from_url(cluster.redis_url, decode_responses=True)
    jobs = JobStore(client)
    spec = JobSpec.model_validate({"dataset": "iris", "training": {"epochs": 4, "seed": 2}}).normalized()
    record, _ = jobs.create("local", spec, {"id": "iris"}, max_active=10)
    assert client.zscore(UNSENT, record["id"]) is not None
    with httpx.Client(base_url=cluster.url, timeout=30) as api:
        job = wait_for_job(api, record["id"], timeout=120)  # sent again a lease (2 s) later
        assert job["status"] == "succeeded", (job, cluster.logs())
        assert [m["epoch"] for m in api.get(f"/v1/jobs/{record['id']}/metrics").json()["items"]] == [1, 2, 3, 4]
    assert job["attempt"] == 1
    assert client.zscore(UNSENT, record["id"]) is None
    assert "its message was never sent" in cluster.logs()
