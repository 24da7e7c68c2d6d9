"""A finished job's metrics leave Redis for one stored object; every reader still sees all epochs."""

from __future__ import annotations

import json

import redis as redis_client
from support import poll


def test_a_finished_jobs_metrics_move_from_redis_to_storage(api, service, wait_job):
    job_id = api.post("/v1/jobs", json={"dataset": "iris", "training": {"epochs": 6, "seed": 3}}).json()["id"]
    assert wait_job(api, job_id)["status"] == "succeeded"
    client = redis_client.Redis.from_url(service.redis_url, decode_responses=True)
    poll(lambda: client.hget(f"trainapi:job:{job_id}", "metrics_archived") == "6", 10, what="the metrics to move")
    assert not client.exists(f"trainapi:job:{job_id}:metrics")
    stored = json.loads((service.root / "jobs" / job_id / "metrics.json").read_bytes())
    assert [m["epoch"] for m in stored] == list(range(1, 7))

    assert api.get(f"/v1/jobs/{job_id}/metrics").json()["items"] == stored
    assert api.get(f"/v1/jobs/{job_id}/metrics", params={"since_epoch": 4}).json()["items"] == stored[4:]
    with api.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "5"}) as response:
        lines = [line for line in response.iter_lines() if line.startswith("event:")]
    assert lines == ["event: epoch", "event: end"]
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["latest_metrics"] == stored[-1] and job["progress"]["epoch"] == 6  # summaries stay in the record

    assert api.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert not (service.root / "jobs" / job_id).exists()
    assert api.get(f"/v1/jobs/{job_id}/metrics").status_code == 404
