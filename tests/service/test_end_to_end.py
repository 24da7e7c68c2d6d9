"""A whole session against real processes: upload, train, follow, download, predict, cancel."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import safetensors.numpy
from support import poll


def _csv(n: int = 240, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    labels = np.where(X[:, 0] + 0.5 * X[:, 1] ** 2 > 0.3, "yes", "no")
    lines = ["temperature,pressure,humidity,rain"]
    lines += [f"{a:.6f},{b:.6f},{c:.6f},{label}" for (a, b, c), label in zip(X, labels, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def _upload(api: httpx.Client) -> dict:
    response = api.post("/v1/datasets", files={"file": ("weather.csv", _csv(), "text/csv")}, data={"name": "weather"})
    assert response.status_code == 201, response.text
    return response.json()


def _load(fmt: str, blob: bytes) -> tuple[dict[str, np.ndarray], dict]:
    if fmt == "npz":
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files if k != "metadata"}, json.loads(str(npz["metadata"]))
    if fmt == "safetensors":
        header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
        return safetensors.numpy.load(blob), json.loads(header["__metadata__"]["trainapi"])
    doc = json.loads(blob)
    return {k: np.asarray(t["data"], dtype=t["dtype"]) for k, t in doc["tensors"].items()}, doc["metadata"]


def test_upload_train_download_and_reproduce_predict(api, wait_job, reference_forward):
    dataset = _upload(api)
    assert dataset["n_samples"] == 240 and dataset["n_features"] == 3
    assert dataset["task"] == "classification" and dataset["classes"] == ["no", "yes"]
    assert dataset["feature_names"] == ["temperature", "pressure", "humidity"]

    spec = {
        "name": "weather-mlp",
        "dataset": dataset["id"],
        "model": {"type": "mlp", "hidden_layers": [32, 16]},
        "regularization": {"l2": 1e-4, "dropout": 0.3},
        "optimizer": {"learning_rate": 0.01},
        "training": {"epochs": 12, "batch_size": 32, "test_fraction": 0.2},
    }
    created = api.post("/v1/jobs", json=spec)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert created.headers["location"] == f"/v1/jobs/{job_id}"
    assert created.json()["spec"]["optimizer"]["beta2"] == 0.999  # normalized: defaults filled in

    job = wait_job(api, job_id)
    assert job["status"] == "succeeded", job
    assert job["attempt"] == 1
    assert job["progress"] == {"epoch": 12, "epochs": 12, "fraction": 1.0, "eta_seconds": None}
    assert set(job["test_metrics"]) == {"loss", "accuracy"}
    assert job["best_epoch"] == job["best_metrics"]["epoch"]

    metrics = api.get(f"/v1/jobs/{job_id}/metrics").json()["items"]
    assert [m["epoch"] for m in metrics] == list(range(1, 13))
    for record in metrics:
        assert record["train_loss"] > 0 and record["val_loss"] > 0
        assert {"accuracy", "val_accuracy", "penalty", "learning_rate", "sparsity"} <= set(record)
    assert [m["epoch"] for m in api.get(f"/v1/jobs/{job_id}/metrics", params={"since_epoch": 10}).json()["items"]] == [
        11,
        12,
    ]

    rng = np.random.default_rng(5)
    inputs = rng.normal(size=(25, 3)).tolist()
    predicted = api.post(f"/v1/jobs/{job_id}/predict", json={"inputs": inputs})
    assert predicted.status_code == 200, predicted.text
    body = predicted.json()
    assert body["classes"] == ["no", "yes"]
    for fmt in ("npz", "safetensors", "json"):
        response = api.get(f"/v1/jobs/{job_id}/weights", params={"format": fmt})
        assert response.status_code == 200
        tensors, metadata = _load(fmt, response.content)
        assert metadata["classes"] == ["no", "yes"] and metadata["feature_names"] == dataset["feature_names"]
        labels, probabilities = reference_forward(tensors, metadata)(inputs)
        assert labels == body["predictions"]
        np.testing.assert_allclose(probabilities, body["probabilities"], rtol=1e-6, atol=1e-6)


def test_regression_job_reports_r2_and_predicts_values(api, wait_job, reference_forward):
    created = api.post(
        "/v1/jobs",
        json={"dataset": "diabetes", "model": {"type": "linear"}, "training": {"epochs": 5, "test_fraction": 0.2}},
    )
    job = wait_job(api, created.json()["id"])
    assert job["status"] == "succeeded", job
    assert set(job["test_metrics"]) == {"loss", "r2", "mae"}
    rows = [[0.0] * 10, [1.0] * 10]
    body = api.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": rows}).json()
    assert body["probabilities"] is None
    tensors, metadata = _load("npz", api.get(f"/v1/jobs/{job['id']}/weights").content)
    values, _ = reference_forward(tensors, metadata)(rows)
    np.testing.assert_allclose(values, body["predictions"], rtol=1e-6)


def test_cancel_a_running_job(api, wait_job):
    created = api.post(
        "/v1/jobs",
        json={
            "dataset": "digits",
            "model": {"type": "mlp", "hidden_layers": [512, 512]},
            "training": {"epochs": 500, "batch_size": 8},
        },
    )
    job_id = created.json()["id"]
    poll(lambda: api.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 1, 60, what="the first epoch")
    cancelled = api.post(f"/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] in ("cancelling", "cancelled")
    epochs_at_cancel = cancelled.json()["progress"]["epoch"]
    job = wait_job(api, job_id, timeout=60)
    assert job["status"] == "cancelled"
    assert job["progress"]["epoch"] <= epochs_at_cancel + 1  # stopped within one epoch
    weights = api.get(f"/v1/jobs/{job_id}/weights")
    assert weights.status_code == 409
    assert weights.headers["content-type"] == "application/problem+json"
    assert api.post(f"/v1/jobs/{job_id}/predict", json={"inputs": [[0.0] * 64]}).status_code == 409


def test_cancel_a_queued_job_and_delete_finished_jobs(api, wait_job):
    blocker = api.post(
        "/v1/jobs",
        json={"dataset": "digits", "model": {"hidden_layers": [256]}, "training": {"epochs": 200, "batch_size": 8}},
    ).json()
    queued = api.post("/v1/jobs", json={"dataset": "iris", "training": {"epochs": 3}}).json()
    assert api.post(f"/v1/jobs/{queued['id']}/cancel").json()["status"] == "cancelled"
    api.post(f"/v1/jobs/{blocker['id']}/cancel")
    wait_job(api, blocker["id"])
    assert wait_job(api, queued["id"])["progress"]["epoch"] == 0  # never ran

    for job_id in (queued["id"], blocker["id"]):
        assert api.delete(f"/v1/jobs/{job_id}").status_code == 204
        assert api.get(f"/v1/jobs/{job_id}").status_code == 404


def test_list_jobs_newest_first_with_cursor_pagination(api, wait_job):
    ids = [
        api.post("/v1/jobs", json={"dataset": "iris", "name": f"page-{i}", "training": {"epochs": 1}}).json()["id"]
        for i in range(5)
    ]
    for job_id in ids:
        wait_job(api, job_id)
    first = api.get("/v1/jobs", params={"limit": 3}).json()
    assert [j["id"] for j in first["items"]] == ids[::-1][:3]
    second = api.get("/v1/jobs", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [j["id"] for j in second["items"]][:2] == ids[::-1][3:5]
    only_succeeded = api.get("/v1/jobs", params={"status": "succeeded", "limit": 500}).json()["items"]
    assert all(j["status"] == "succeeded" for j in only_succeeded)


def test_idempotency_key_makes_a_retried_post_return_the_same_job(api, wait_job):
    body = {"dataset": "iris", "training": {"epochs": 2}}
    headers = {"Idempotency-Key": "retry-me-0001"}
    first = api.post("/v1/jobs", json=body, headers=headers)
    second = api.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    other = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "another-key"})
    assert other.json()["id"] != first.json()["id"]
    named = [j for j in api.get("/v1/jobs", params={"limit": 500}).json()["items"] if j["id"] == first.json()["id"]]
    assert len(named) == 1
    wait_job(api, first.json()["id"])


def test_a_diverging_job_fails_with_a_clear_message(api, wait_job):
    created = api.post(
        "/v1/jobs",
        json={
            "dataset": "diabetes",
            "model": {"type": "linear"},
            "optimizer": {"name": "sgd", "learning_rate": 500, "momentum": 0},
            "training": {"epochs": 30, "standardize": False},
        },
    )
    job = wait_job(api, created.json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["type"] == "diverged"
    assert "epoch" in job["error"]["message"]
    assert api.get(f"/v1/jobs/{job['id']}").status_code == 200
