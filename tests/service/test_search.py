"""TPE sweeps on the real service: max_trials, reproducible from the seed, importance, cancel, reservations, restart."""

from __future__ import annotations

import math
import signal
import time

import httpx
import redis as redis_client
from support import Service, poll

from store.jobs import JobStore
from store.jobspec import JobSpec
from store.sweeps import SweepStore

BASE = {"dataset": "iris", "model": {"hidden_layers": [8]}, "training": {"epochs": 3, "batch_size": 32, "seed": 1}}
SPACE = {
    "optimizer.learning_rate": {"distribution": "log_uniform", "low": 1e-4, "high": 1e-1},
    "regularization.l2": {"distribution": "log_uniform", "low": 1e-6, "high": 1e-1},
    "model.hidden_layers.0": {"distribution": "int_uniform", "low": 4, "high": 16},
    "regularization.dropout": {"values": [0, 0.25]},
}
SWEEP = {
    "base": BASE,
    "parameters": SPACE,
    "strategy": "tpe",
    "max_trials": 9,
    "max_concurrent_trials": 1,
    "seed": 11,
}


def wait_sweep(api: httpx.Client, sweep_id: str, timeout: float = 180) -> dict:
    def done() -> dict | None:
        sweep = api.get(f"/v1/sweeps/{sweep_id}").json()
        return sweep if sweep["status"] in ("succeeded", "failed", "cancelled") else None

    return poll(done, timeout, interval=0.1, what=f"sweep {sweep_id}")


def in_slot_order(sweep: dict) -> list[dict]:
    return sorted(sweep["leaderboard"], key=lambda t: t["index"])


def test_tpe_runs_to_max_trials_reproducibly_and_reports_importance(service):
    with httpx.Client(base_url=service.url, timeout=60) as api:
        created = [api.post("/v1/sweeps", json=SWEEP) for _ in range(2)]  # one worker each, same seed
        assert [r.status_code for r in created] == [202, 202], created[0].text
        assert [r.json()["n_trials"] for r in created] == [1, 1]  # the first slot is asked at once
        first, second = (wait_sweep(api, r.json()["id"]) for r in created)

        for sweep in (first, second):
            assert sweep["status"] == "succeeded" and sweep["strategy"] == "tpe"
            assert sweep["n_trials"] == 9 and sweep["counts"] == {"succeeded": 9}
            assert [t["index"] for t in in_slot_order(sweep)] == list(range(9))
            objectives = [t["objective"] for t in sweep["leaderboard"]]
            assert objectives == sorted(objectives)
            assert sweep["best_trial"]["trial_id"] == sweep["leaderboard"][0]["trial_id"]
        assert [t["parameters"] for t in in_slot_order(first)] == [t["parameters"] for t in in_slot_order(second)]
        for params in (t["parameters"] for t in first["leaderboard"]):
            assert 1e-4 <= params["optimizer.learning_rate"] <= 1e-1
            assert isinstance(params["model.hidden_layers.0"], int) and 4 <= params["model.hidden_layers.0"] <= 16
            assert params["regularization.dropout"] in (0, 0.25)
        trial = in_slot_order(first)[4]
        job = api.get(f"/v1/jobs/{trial['trial_id']}").json()
        assert job["sweep_id"] == first["id"] and job["name"].endswith("/trial-4")
        assert job["spec"]["model"]["hidden_layers"] == [trial["parameters"]["model.hidden_layers.0"]]

        def importance() -> dict | None:
            return api.get(f"/v1/sweeps/{first['id']}").json()["importance"]

        shares = poll(importance, 60, interval=0.2, what="the importance figures")
        assert set(shares) == set(SWEEP["parameters"])
        assert all(v >= 0 for v in shares.values()) and math.isclose(sum(shares.values()), 1.0)


def test_parallel_tpe_slots_with_pruning(service):
    body = {
        **SWEEP,
        "base": {**SWEEP["base"], "training": {**SWEEP["base"]["training"], "epochs": 6}},
        "max_trials": 8,
        "max_concurrent_trials": 3,
        "early_stopping": {"type": "median", "grace_epochs": 2, "min_trials": 2},
    }
    with httpx.Client(base_url=service.url, timeout=60) as api:
        created = api.post("/v1/sweeps", json=body).json()
        assert created["n_trials"] == 3
        sweep = wait_sweep(api, created["id"])
        assert sweep["status"] == "succeeded" and sweep["n_trials"] == 8
        assert [t["index"] for t in in_slot_order(sweep)] == list(range(8))
        assert set(sweep["counts"]) <= {"succeeded", "pruned"}
        assert len({t["trial_id"] for t in sweep["leaderboard"]}) == 8


def test_tpe_needs_max_trials_and_a_valid_space(service):
    with httpx.Client(base_url=service.url, timeout=60) as api:
        missing = api.post("/v1/sweeps", json={**SWEEP, "max_trials": None})
        assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "max_trials"
        bad = {**SWEEP, "parameters": {**SWEEP["parameters"], "regularization.dropout": {"values": [0, 1.0]}}}
        response = api.post("/v1/sweeps", json=bad)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "parameters.regularization.dropout"
        empty = {
            **SWEEP,
            "parameters": {"model.hidden_layers.0": {"distribution": "int_uniform", "low": 4.2, "high": 4.8}},
        }
        assert api.post("/v1/sweeps", json=empty).status_code == 422


def test_a_restart_of_every_process_continues_the_search(tmp_path):
    body = {
        **SWEEP,
        # Trials of about a second each, so that the sweep is still running when the processes stop.
        "base": {**SWEEP["base"], "dataset": "digits", "training": {"epochs": 30, "batch_size": 4, "seed": 1}},
        "max_trials": 6,
        "max_concurrent_trials": 2,
    }
    svc = Service(tmp_path, env_extra={"TRAINAPI_LEASE_SECONDS": "2"}).start(workers=1)
    try:
        with httpx.Client(base_url=svc.url, timeout=60) as api:
            sweep_id = api.post("/v1/sweeps", json=body).json()["id"]

            def two_succeeded() -> dict | None:
                sweep = api.get(f"/v1/sweeps/{sweep_id}").json()
                return sweep if sweep["counts"].get("succeeded", 0) >= 2 else None

            poll(two_succeeded, 120, interval=0.05, what="two finished trials")
        svc.stop_worker("w1")  # SIGTERM: a running trial hands its job back
        svc.stop_api()
        r = redis_client.Redis.from_url(svc.redis_url, decode_responses=True)
        assert r.hget(f"trainapi:sweep:{sweep_id}", "status") == "running"
        done = {t: r.hgetall(f"trainapi:job:{t}") for t in r.lrange(f"trainapi:sweep:{sweep_id}:finished", 0, -1)}
        assert 2 <= len(done) < 6
        assert svc.redis is not None
        svc.redis.send_signal(signal.SIGKILL)  # Redis crashes; its append-only file keeps everything
        svc.redis.wait()
        svc.start(workers=1)

        with httpx.Client(base_url=svc.url, timeout=60) as api:
            sweep = wait_sweep(api, sweep_id)
            assert sweep["status"] == "succeeded", svc.logs()
            assert sweep["n_trials"] == 6 and sweep["counts"] == {"succeeded": 6}
            assert [t["index"] for t in in_slot_order(sweep)] == list(range(6))
            assert len({t["trial_id"] for t in sweep["leaderboard"]}) == 6
            objectives = [t["objective"] for t in sweep["leaderboard"]]
            assert objectives == sorted(objectives)
            for trial_id, before in done.items():  # finished trials were not run again
                after = api.get(f"/v1/jobs/{trial_id}").json()
                assert after["attempt"] == int(before["attempt"]) == 1
                assert after["finished_at"] == before["finished_at"]
            for row in sweep["leaderboard"]:
                epochs = [m["epoch"] for m in api.get(f"/v1/jobs/{row['trial_id']}/metrics").json()["items"]]
                assert epochs == list(range(1, 31))
    finally:
        svc.stop()


def test_cancelling_a_tpe_sweep_asks_no_more_trials(service):
    body = {
        **SWEEP,
        "base": {**BASE, "dataset": "digits", "model": {"hidden_layers": [256]}, "training": {"epochs": 200}},
        "max_trials": 10,
        "max_concurrent_trials": 2,
    }
    with httpx.Client(base_url=service.url, timeout=60) as api:
        sweep_id = api.post("/v1/sweeps", json=body).json()["id"]
        poll(lambda: api.get(f"/v1/sweeps/{sweep_id}").json()["counts"].get("running"), 60, what="a running trial")
        assert api.post(f"/v1/sweeps/{sweep_id}/cancel").status_code == 202
        sweep = wait_sweep(api, sweep_id, timeout=60)
        assert sweep["status"] == "cancelled"
        assert sweep["n_trials"] == 2 and sweep["counts"] == {"cancelled": 2}


def test_a_slot_whose_reserver_died_is_asked_again_and_filled_once(service):
    # A database of its own on the service's Redis: no worker's upkeep dispatches this sweep meanwhile.
    client = redis_client.Redis.from_url(service.redis_url.rsplit("/", 1)[0] + "/9", decode_responses=True)
    client.flushdb()
    jobs = JobStore(client)
    sweeps = SweepStore(client, jobs)
    tenant = "reservation-tenant"
    spec = {
        **SWEEP,
        "name": "reservations",
        "base": JobSpec.model_validate(BASE).normalized(),
        "max_trials": 3,
        "objective": {"metric": "val_loss", "mode": "min"},
    }
    sweep_id = sweeps.create(tenant, spec, [], {"id": "iris"})["id"]
    keys = [f"trainapi:sweep:{sweep_id}", f"trainapi:sweep:{sweep_id}:active", f"trainapi:sweep:{sweep_id}:reserved"]
    now = time.time()
    assert sweeps._reserve(keys=keys, args=[now, now - 1, 1]) == ["0"]  # reserved, then its process died
    [trial] = sweeps.dispatch(sweep_id)  # the next dispatch takes the expired slot over
    assert sweeps.dispatch(sweep_id) == []  # one slot at a time
    late = sweeps.get(tenant, sweep_id)
    assert sweeps._fill_slot(late, 0, late["parameters"][0]) is None  # the dead reserver, late: its fill loses
    assert jobs.list(tenant)[0] == [jobs.get(tenant, trial)]
    sweep = sweeps.get(tenant, sweep_id)
    assert sweep["trials"] == [trial] and sweep["slots"] == [0]
    assert client.hlen(f"trainapi:sweep:{sweep_id}:reserved") == 0
    sweeps.request_cancel(tenant, sweep_id)
    assert sweeps.get(tenant, sweep_id)["status"] == "cancelled"
