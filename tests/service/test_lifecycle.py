"""Readiness, and durability across a full restart of API, worker and Redis."""

from __future__ import annotations

import httpx
import pytest
from support import Service, poll, wait_for_job


@pytest.fixture
def fresh(tmp_path) -> Service:
    svc = Service(tmp_path)
    yield svc
    svc.stop()


def test_readyz_needs_redis_and_a_live_worker(fresh):
    fresh.start_redis()
    fresh.start_api()
    with httpx.Client(base_url=fresh.url, timeout=10) as api:
        assert api.get("/healthz").status_code == 200
        not_ready = api.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.headers["content-type"] == "application/problem+json"
        assert "worker" in not_ready.json()["detail"]

        fresh.start_worker("w1")
        poll(lambda: api.get("/readyz").status_code == 200, 30, what="readiness")
        assert api.get("/readyz").json()["workers"] == 1

        fresh.stop_redis()
        down = api.get("/readyz")
        assert down.status_code == 503 and "Redis" in down.json()["detail"]
        jobs = api.get("/v1/jobs")
        assert jobs.status_code == 503
        assert jobs.headers["content-type"] == "application/problem+json"
        assert api.get("/healthz").status_code == 200


def test_jobs_metrics_weights_and_datasets_survive_a_full_restart(fresh):
    fresh.start()
    csv = b"x1,x2,label\n" + b"".join(f"{i % 7},{(i * 3) % 5},{'ab'[i % 2]}\n".encode() for i in range(60))
    with httpx.Client(base_url=fresh.url, timeout=30) as api:
        dataset = api.post("/v1/datasets", files={"file": ("d.csv", csv, "text/csv")}).json()
        job_id = api.post("/v1/jobs", json={"dataset": dataset["id"], "training": {"epochs": 6}}).json()["id"]
        before = wait_for_job(api, job_id)
        assert before["status"] == "succeeded"
        metrics = api.get(f"/v1/jobs/{job_id}/metrics").json()
        weights = {
            fmt: api.get(f"/v1/jobs/{job_id}/weights", params={"format": fmt}).content for fmt in ("npz", "json")
        }
        prediction = api.post(f"/v1/jobs/{job_id}/predict", json={"inputs": [[1, 2], [3, 4]]}).json()

    fresh.stop()
    fresh.start()

    with httpx.Client(base_url=fresh.url, timeout=30) as api:
        assert api.get(f"/v1/jobs/{job_id}").json() == before
        assert api.get(f"/v1/jobs/{job_id}/metrics").json() == metrics
        for fmt, blob in weights.items():
            assert api.get(f"/v1/jobs/{job_id}/weights", params={"format": fmt}).content == blob
        assert api.post(f"/v1/jobs/{job_id}/predict", json={"inputs": [[1, 2], [3, 4]]}).json() == prediction
        assert api.get(f"/v1/datasets/{dataset['id']}").json() == dataset
        # The restarted service still trains.
        again = api.post("/v1/jobs", json={"dataset": dataset["id"], "training": {"epochs": 2}}).json()["id"]
        assert wait_for_job(api, again)["status"] == "succeeded"
