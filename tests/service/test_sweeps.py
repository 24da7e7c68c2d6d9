"""Sweeps: grid and random search, leaderboards, pruning, concurrency, cancellation, failures, crashes."""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
import redis as redis_client
from support import Service, poll

BASE = {
    "dataset": "digits",
    "model": {"type": "mlp", "hidden_layers": [32]},
    "optimizer": {"learning_rate": 0.003},
    "training": {"epochs": 6, "batch_size": 64, "seed": 3},
}


@pytest.fixture(scope="module")
def sweeper(tmp_path_factory) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("sweeps"), env_extra={"TRAINAPI_LEASE_SECONDS": "2"})
    try:
        yield svc.start(workers=2)
    finally:
        svc.stop()


@pytest.fixture
def client(sweeper) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sweeper.url, timeout=60) as api:
        yield api


def wait_sweep(api: httpx.Client, sweep_id: str, timeout: float = 300) -> dict:
    def done() -> dict | None:
        sweep = api.get(f"/v1/sweeps/{sweep_id}").json()
        return sweep if sweep["status"] in ("succeeded", "failed", "cancelled") else None

    return poll(done, timeout, interval=0.1, what=f"sweep {sweep_id}")


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_grid_sweep_ranks_every_combination_and_is_reproducible(client):
    body = {
        "name": "grid",
        "base": BASE,
        "parameters": {
            "regularization.l2": {"values": [0, 0.001, 0.1]},
            "regularization.dropout": {"values": [0, 0.3]},
        },
        "strategy": "grid",
        "max_concurrent_trials": 2,
    }
    created = client.post("/v1/sweeps", json=body)
    assert created.status_code == 202, created.text
    assert created.headers["location"] == f"/v1/sweeps/{created.json()['id']}"
    sweep = wait_sweep(client, created.json()["id"])
    assert sweep["status"] == "succeeded" and sweep["n_trials"] == 6
    assert sweep["counts"] == {"succeeded": 6}
    combos = {
        (t["parameters"]["regularization.l2"], t["parameters"]["regularization.dropout"]) for t in sweep["leaderboard"]
    }
    assert combos == {(l2, p) for l2 in (0, 0.001, 0.1) for p in (0, 0.3)}
    objectives = [t["objective"] for t in sweep["leaderboard"]]
    assert objectives == sorted(objectives)
    for row in sweep["leaderboard"]:
        assert row["best_epoch"] >= 1 and row["train_val_gap"] is not None
        job = client.get(f"/v1/jobs/{row['trial_id']}").json()
        assert job["sweep_id"] == sweep["id"]
        assert job["best_metrics"]["val_loss"] == row["objective"]
    best = sweep["best_trial"]
    assert best["trial_id"] == sweep["leaderboard"][0]["trial_id"]
    assert client.get(f"/v1/jobs/{best['trial_id']}/weights", params={"format": "safetensors"}).status_code == 200

    again = wait_sweep(client, client.post("/v1/sweeps", json=body).json()["id"])
    strip = lambda s: [(t["parameters"], t["objective"], t["best_epoch"]) for t in s["leaderboard"]]  # noqa: E731
    assert strip(again) == strip(sweep)


def test_random_search_is_reproducible_from_its_seed(client):
    body = {
        "base": {**BASE, "training": {**BASE["training"], "epochs": 1}},
        "parameters": {
            "optimizer.learning_rate": {"distribution": "log_uniform", "low": 1e-4, "high": 1e-1},
            "model.hidden_layers.0": {"distribution": "int_uniform", "low": 8, "high": 64},
        },
        "strategy": "random",
        "max_trials": 5,
        "max_concurrent_trials": 2,
        "seed": 7,
    }

    def configs(seed: int) -> list[dict]:
        sweep = client.post("/v1/sweeps", json={**body, "seed": seed}).json()
        trials = sorted(sweep["leaderboard"], key=lambda t: t["index"])
        return [t["parameters"] for t in trials]

    first, second, other = configs(7), configs(7), configs(8)
    assert first == second and first != other
    for params in first:
        assert 1e-4 <= params["optimizer.learning_rate"] <= 1e-1
        assert isinstance(params["model.hidden_layers.0"], int) and 8 <= params["model.hidden_layers.0"] <= 64
    sweep_id = client.get("/v1/sweeps").json()["items"][0]["id"]
    trial = client.get("/v1/sweeps/" + sweep_id).json()["leaderboard"][0]
    job = client.get(f"/v1/jobs/{trial['trial_id']}").json()
    assert job["spec"]["model"]["hidden_layers"] == [trial["parameters"]["model.hidden_layers.0"]]


def test_a_sweep_with_an_invalid_configuration_is_rejected_up_front(client):
    bad = {"base": BASE, "parameters": {"regularization.dropout": {"values": [0.2, 1.0]}}}
    response = client.post("/v1/sweeps", json=bad)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "parameters.regularization.dropout"
    assert "1.0" in response.json()["detail"]
    unknown = client.post("/v1/sweeps", json={"base": BASE, "parameters": {"regularization.l3": {"values": [1]}}})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "parameters.regularization.l3"
    mixed = client.post(
        "/v1/sweeps", json={"base": BASE, "parameters": {"regularization.l2": {"values": [1], "low": 0}}}
    )
    assert mixed.status_code == 422


@pytest.mark.parametrize("rule", ["median", "asha"])
def test_pruning_stops_bad_trials_and_keeps_the_best(client, rule):
    base = {**BASE, "training": {**BASE["training"], "epochs": 18}}
    parameters = {
        "optimizer.learning_rate": {"values": [0.001, 0.003, 0.01, 0.002, 5.0, 8.0, 6.0, 7.0]},
    }
    common = {"base": base, "parameters": parameters, "max_concurrent_trials": 2}
    plain = wait_sweep(client, client.post("/v1/sweeps", json=common).json()["id"])
    pruning = {"type": rule, "grace_epochs": 2, "min_trials": 2, "reduction_factor": 2}
    pruned = wait_sweep(client, client.post("/v1/sweeps", json={**common, "early_stopping": pruning}).json()["id"])

    bad = {t["trial_id"] for t in pruned["leaderboard"] if t["parameters"]["optimizer.learning_rate"] >= 5}
    statuses = {t["trial_id"]: t["status"] for t in pruned["leaderboard"]}
    assert all(statuses[t] in ("pruned", "failed") for t in bad), statuses
    assert sum(statuses[t] == "pruned" for t in bad) >= 2
    epochs_plain = sum(t["epochs_run"] for t in plain["leaderboard"])
    epochs_pruned = sum(t["epochs_run"] for t in pruned["leaderboard"])
    assert epochs_pruned <= 0.6 * epochs_plain, (epochs_pruned, epochs_plain)
    assert pruned["best_trial"]["parameters"] == plain["best_trial"]["parameters"]
    some_pruned = next(t for t in pruned["leaderboard"] if t["status"] == "pruned")
    metrics = client.get(f"/v1/jobs/{some_pruned['trial_id']}/metrics").json()["items"]
    assert len(metrics) == some_pruned["epochs_run"] >= 2  # a pruned trial keeps its metrics


def test_max_concurrent_trials_is_never_exceeded(client):
    body = {
        "base": {**BASE, "training": {**BASE["training"], "epochs": 3}},
        "parameters": {"regularization.l2": {"values": [0, 1e-4, 1e-3, 1e-2, 0.1, 0.2, 0.3]}},
        "max_concurrent_trials": 1,
    }
    sweep = wait_sweep(client, client.post("/v1/sweeps", json=body).json()["id"])
    spans = sorted((_ts(t["started_at"]), _ts(t["finished_at"])) for t in sweep["leaderboard"])
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end - 0.002, spans  # one at a time (ms timestamps)
    body["max_concurrent_trials"] = 2
    sweep = wait_sweep(client, client.post("/v1/sweeps", json=body).json()["id"])
    events = sorted(
        [(_ts(t["started_at"]), 1) for t in sweep["leaderboard"]]
        + [(_ts(t["finished_at"]), -1) for t in sweep["leaderboard"]],
        key=lambda e: (e[0], e[1]),
    )
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak <= 2


def test_cancel_ends_every_trial(client):
    body = {
        "base": {**BASE, "model": {"hidden_layers": [256]}, "training": {"epochs": 200, "batch_size": 8}},
        "parameters": {"regularization.l2": {"values": [0, 1e-4, 1e-3, 1e-2, 0.1]}},
        "max_concurrent_trials": 2,
    }
    sweep_id = client.post("/v1/sweeps", json=body).json()["id"]
    poll(
        lambda: client.get(f"/v1/sweeps/{sweep_id}").json()["counts"].get("running", 0) >= 1, 60, what="a running trial"
    )
    assert client.post(f"/v1/sweeps/{sweep_id}/cancel").status_code == 202
    sweep = wait_sweep(client, sweep_id, timeout=120)
    assert sweep["status"] == "cancelled"
    assert sweep["counts"] == {"cancelled": 5}
    assert client.post(f"/v1/sweeps/{sweep_id}/cancel").status_code == 409


def learning_rate_sweep(rates: list[float]) -> dict:
    """Linear regression by plain SGD on unstandardized diabetes: a learning rate of 500 diverges."""
    base = {
        **BASE,
        "model": {"type": "linear"},
        "dataset": "diabetes",
        "optimizer": {"name": "sgd", "momentum": 0},
        "training": {"epochs": 20, "standardize": False},
    }
    return {"base": base, "parameters": {"optimizer.learning_rate": {"values": rates}}, "max_concurrent_trials": 2}


def test_a_failing_trial_does_not_fail_the_sweep(client):
    sweep = wait_sweep(client, client.post("/v1/sweeps", json=learning_rate_sweep([1e-6, 500.0])).json()["id"])
    assert sweep["status"] == "succeeded"
    assert sweep["counts"] == {"succeeded": 1, "failed": 1}
    failed = next(t for t in sweep["leaderboard"] if t["status"] == "failed")
    assert failed["error"]["type"] == "diverged"
    assert sweep["leaderboard"][-1]["trial_id"] == failed["trial_id"] or failed["objective"] is not None


def test_a_sweep_whose_every_trial_failed_fails(client):
    sweep = wait_sweep(client, client.post("/v1/sweeps", json=learning_rate_sweep([500.0, 1000.0])).json()["id"])
    assert sweep["counts"] == {"failed": 2}
    assert sweep["status"] == "failed"
    assert sweep["best_trial"] is None


def test_a_killed_worker_delays_but_loses_no_trial(client, sweeper):
    body = {
        "base": {**BASE, "model": {"hidden_layers": [256, 256]}, "training": {"epochs": 8, "batch_size": 16}},
        "parameters": {"regularization.l2": {"values": [0, 1e-4, 1e-3, 1e-2]}},
        "max_concurrent_trials": 2,
    }
    sweep_id = client.post("/v1/sweeps", json=body).json()["id"]
    r = redis_client.Redis.from_url(sweeper.redis_url, decode_responses=True)

    def running_pid() -> int | None:
        for row in client.get(f"/v1/sweeps/{sweep_id}").json()["leaderboard"]:
            record = r.hgetall(f"trainapi:job:{row['trial_id']}")
            if record.get("status") == "running" and int(record.get("epochs_done", 0)) >= 2:
                return int(record["worker_pid"])
        return None

    os.kill(poll(running_pid, 120, interval=0.02, what="a trial at epoch 2"), signal.SIGKILL)
    sweep = wait_sweep(client, sweep_id, timeout=300)
    assert sweep["status"] == "succeeded"
    assert sweep["counts"] == {"succeeded": 4}
    assert any(client.get(f"/v1/jobs/{t['trial_id']}").json()["attempt"] == 2 for t in sweep["leaderboard"])
    for row in sweep["leaderboard"]:
        epochs = [m["epoch"] for m in client.get(f"/v1/jobs/{row['trial_id']}/metrics").json()["items"]]
        assert epochs == list(range(1, 9))


def test_sweep_events_report_trials_as_they_finish(client):
    body = {
        "base": {**BASE, "training": {**BASE["training"], "epochs": 2}},
        "parameters": {"regularization.l2": {"values": [0, 0.01, 0.1]}},
    }
    sweep_id = client.post("/v1/sweeps", json=body).json()["id"]
    trials, end = [], None
    with client.stream("GET", f"/v1/sweeps/{sweep_id}/events") as response:
        event = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "trial":
                trials.append(line)
            elif line.startswith("data:") and event == "end":
                end = line
                break
    assert len(trials) == 3 and end is not None and '"succeeded"' in end
    with client.stream("GET", f"/v1/sweeps/{sweep_id}/events", headers={"Last-Event-ID": "2"}) as response:
        body_text = "".join(response.iter_text())
    assert body_text.count("event: trial") == 1 and "event: end" in body_text
