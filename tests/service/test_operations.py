"""Operations: GET /metrics against the jobs endpoints (two workers, every way a job ends, an API restart),
and JSON logs from the API and the workers."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import Service, poll

from store.statuses import STATUSES, TERMINAL

TOKEN = "scrape-secret"
QUICK = {"dataset": "iris", "model": {"type": "logistic"}, "training": {"epochs": 3}}
SLOW = {
    "dataset": "digits",
    "model": {"type": "mlp", "hidden_layers": [256]},
    "training": {"epochs": 500, "batch_size": 8},
}

#: Plain SGD at a huge rate on unstandardized diabetes: the loss diverges, the job fails.
DIVERGING = {"dataset": "diabetes", "model": {"type": "linear"}, "training": {"epochs": 30, "standardize": False}}
DIVERGING["optimizer"] = {"name": "sgd", "learning_rate": 500, "momentum": 0}


@pytest.fixture(scope="module")
def ops(tmp_path_factory) -> Iterator[Service]:
    env = {"TRAINAPI_METRICS_TOKEN": TOKEN, "TRAINAPI_LOG_FORMAT": "json"}
    svc = Service(tmp_path_factory.mktemp("operations"), env_extra=env)
    try:
        yield svc.start(workers=2)
    finally:
        svc.stop()


def scrape(service: Service) -> dict[str, dict[tuple, float]]:
    """``{sample name: {label items: value}}`` of one scrape, parsed by prometheus_client's own parser."""
    response = httpx.get(f"{service.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        assert family.name.startswith("trainapi_")
        assert len(family.documentation) > 40 and family.name not in family.documentation  # says what it counts
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def everything(api: httpx.Client) -> list[dict]:
    return api.get("/v1/jobs", params={"limit": 500}).json()["items"]


def check_state(service: Service, api: httpx.Client) -> dict[str, dict[tuple, float]]:
    """Every state series equals what the jobs endpoints and /readyz report; returns the scrape."""
    samples = scrape(service)
    jobs = everything(api)
    by_status = Counter(job["status"] for job in jobs)
    assert {labels[0][1]: v for labels, v in samples["trainapi_jobs"].items()} == {s: by_status[s] for s in STATUSES}
    finished = Counter(
        (job["model"], job["status"]) for job in ({**j, "model": j["spec"]["model"]["type"]} for j in jobs)
    )
    expected = {k: v for k, v in finished.items() if k[1] in TERMINAL}
    got = {
        (dict(labels)["model"], dict(labels)["status"]): v
        for labels, v in samples["trainapi_jobs_finished_total"].items()
    }
    assert got == expected
    assert samples["trainapi_workers_alive"][()] == api.get("/readyz").json()["workers"] == 2
    assert samples["trainapi_queue_depth"][()] == by_status["queued"]
    return samples


def test_metrics_equal_the_jobs_endpoints_and_survive_an_api_restart(ops):
    api = httpx.Client(base_url=ops.url, timeout=30)
    assert httpx.get(f"{ops.url}/metrics").status_code == 401
    assert httpx.get(f"{ops.url}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401

    # Every way a job ends: succeeded, failed (diverged), cancelled while running and while queued, pruned.
    ids = [api.post("/v1/jobs", json=QUICK).json()["id"]]
    ids.append(api.post("/v1/jobs", json=DIVERGING).json()["id"])
    sweep = api.post(
        "/v1/sweeps",
        json={
            "base": {"dataset": "digits", "model": {"type": "mlp", "hidden_layers": [16]}, "training": {"epochs": 6}},
            "parameters": {"optimizer.learning_rate": {"values": [0.01, 0.00001]}},
            "max_concurrent_trials": 1,
            "early_stopping": {"type": "median", "grace_epochs": 1, "min_trials": 1},
        },
    ).json()
    slow = api.post("/v1/jobs", json=SLOW).json()["id"]
    poll(lambda: api.get(f"/v1/jobs/{slow}").json()["progress"]["epoch"] >= 1, 60, what="an epoch of the slow job")
    api.post(f"/v1/jobs/{slow}/cancel")

    def settled() -> bool:
        sweep_done = api.get(f"/v1/sweeps/{sweep['id']}").json()["status"] == "succeeded"
        return sweep_done and all(job["status"] in TERMINAL for job in everything(api))

    poll(settled, 90, interval=0.1, what="every job to end")
    statuses = Counter(job["status"] for job in everything(api))
    assert statuses["pruned"] == 1 and statuses["failed"] == 1 and statuses["cancelled"] == 1

    # Live state: both workers busy, two jobs waiting in the queue.
    blockers = [api.post("/v1/jobs", json=SLOW).json()["id"] for _ in range(2)]
    poll(lambda: all(api.get(f"/v1/jobs/{b}").json()["status"] == "running" for b in blockers), 60, what="both busy")
    waiting = [api.post("/v1/jobs", json=QUICK).json()["id"] for _ in range(2)]
    assert [api.get(f"/v1/jobs/{job_id}").json()["queue_position"] for job_id in waiting] == [1, 2]
    listed = api.get("/v1/jobs", params={"status": "queued"}).json()["items"]
    assert [(job["id"], job["queue_position"]) for job in listed] == [(waiting[1], 2), (waiting[0], 1)]
    assert all(api.get(f"/v1/jobs/{b}").json()["queue_position"] is None for b in blockers)
    before = check_state(ops, api)
    assert before["trainapi_queue_depth"][()] == 2 and before["trainapi_jobs"][(("status", "running"),)] == 2

    ops.stop_api()
    ops.start_api()
    after = check_state(ops, api)
    for series in ("trainapi_jobs", "trainapi_jobs_finished_total", "trainapi_workers_alive"):
        assert after[series] == before[series], series

    assert api.post(f"/v1/jobs/{waiting[0]}/cancel").json()["status"] == "cancelled"  # cancelled while queued
    for job_id in blockers:
        api.post(f"/v1/jobs/{job_id}/cancel")
    poll(lambda: all(job["status"] in TERMINAL for job in everything(api)), 90, what="the rest to end")
    # The cancelled job's message leaves the queue when a worker takes it and finds the job cancelled.
    poll(lambda: scrape(ops)["trainapi_queue_depth"][()] == 0, 30, what="an empty queue")
    final = check_state(ops, api)
    assert final["trainapi_jobs"][(("status", "queued"),)] == 0
    jobs = everything(api)
    # Each recorded epoch was observed once; each job that ran ended once on a worker.
    epochs = sum(job["progress"]["epoch"] for job in jobs)
    assert sum(final["trainapi_epoch_seconds_count"].values()) == epochs
    ran = sum(1 for job in jobs if job["started_at"])
    assert sum(final["trainapi_job_duration_seconds_count"].values()) == ran
    # Requests by route template: ids never become labels.
    routes = {dict(labels)["route"] for labels in final["trainapi_http_requests_total"]}
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel", "/metrics"} <= routes
    assert not any(re.search(r"(job|swp|ds)_[0-9a-f]{6}", route) for route in routes), routes
    assert final["trainapi_http_requests_total"][(("method", "GET"), ("route", "/metrics"), ("status", "401"))] == 2
    api.close()


def test_every_log_line_is_json_and_job_lines_carry_the_job(ops):
    with httpx.Client(base_url=ops.url, timeout=30) as api:
        job_id = api.post("/v1/jobs", json=QUICK).json()["id"]
        poll(lambda: api.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded", 60, what="the job")

    def lines() -> list[dict]:
        parsed = []
        for path in sorted(ops.root.glob("*.log")):
            if path.name.startswith(("api", "w")):
                for line in path.read_text().splitlines():
                    if line.strip():
                        parsed.append(json.loads(line))  # every line, startup and shutdown included
        return parsed

    # Celery logs the task's end after it returned: wait for that line.
    records = poll(
        lambda: (r := lines()) and any(x.get("job_id") == job_id and "succeeded in" in x["message"] for x in r) and r,
        30,
        what="the task's last line",
    )
    for record in records:
        assert {"time", "level", "logger", "message", "process"} <= set(record)
        if "trainapi.run_job[" in record["message"]:
            assert "job_id" in record, record  # Celery's own lines about a job's task
    mine = [r for r in records if r.get("job_id") == job_id]
    assert all(r["job_id"] == job_id for r in records if job_id in r["message"])
    api_lines = [r for r in mine if r["logger"].startswith("api.")]
    assert api_lines and api_lines[0]["tenant"] and api_lines[0]["attempt"] == 0
    started = next(r for r in mine if "attempt 1 started" in r["message"])
    assert started["attempt"] == 1 and started["tenant"] == api_lines[0]["tenant"]
    assert any("received" in r["message"] for r in mine)
    assert any(r["message"] == f"job {job_id}: succeeded" for r in mine)
