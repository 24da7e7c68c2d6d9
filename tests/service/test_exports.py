"""Exports through the real service: ONNX downloads against ``/predict``, and a cancelled job's checkpoints."""

from __future__ import annotations

import io
import json

import numpy as np
import onnx
import onnxruntime as ort
from support import poll


def _csv(n: int = 240, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    labels = np.array(["low", "mid", "high"])[np.digitize(X[:, 0] + 0.3 * X[:, 1], [-0.5, 0.5])]
    lines = ["a,b,c,level"] + [f"{a:.6f},{b:.6f},{c:.6f},{y}" for (a, b, c), y in zip(X, labels, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def _onnx_outputs(blob: bytes, X: np.ndarray) -> dict[str, np.ndarray]:
    onnx.checker.check_model(onnx.load_from_string(blob), full_check=True)
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return {o.name: v for o, v in zip(session.get_outputs(), session.run(None, {"input": X}), strict=True)}


def test_onnx_download_answers_like_predict(api, wait_job):
    uploaded = api.post("/v1/datasets", files={"file": ("levels.csv", _csv(), "text/csv")}, data={"name": "levels"})
    assert uploaded.status_code == 201, uploaded.text
    jobs = {
        "multiclass": {
            "dataset": uploaded.json()["id"],
            "model": {"type": "mlp", "hidden_layers": [16], "activation": "tanh"},
            "training": {"epochs": 8},
        },
        "regression": {
            "dataset": "diabetes",
            "model": {"type": "mlp", "hidden_layers": [8], "activation": "relu"},
            "training": {"epochs": 5},
        },
    }
    ids = {task: api.post("/v1/jobs", json=spec).json()["id"] for task, spec in jobs.items()}
    rng = np.random.default_rng(7)
    for task, job_id in ids.items():
        assert wait_job(api, job_id)["status"] == "succeeded"
        n_features = 3 if task == "multiclass" else 10
        X = (rng.normal(size=(30, n_features)) * (1 if task == "multiclass" else 0.05)).astype(np.float32)
        response = api.get(f"/v1/jobs/{job_id}/weights", params={"format": "onnx"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/octet-stream"
        assert f'filename="{job_id}.onnx"' in response.headers["content-disposition"]
        outputs = _onnx_outputs(response.content, X)
        expected = api.post(f"/v1/jobs/{job_id}/predict", json={"inputs": X.astype(np.float64).tolist()}).json()
        if task == "regression":
            np.testing.assert_allclose(outputs["prediction"], expected["predictions"], rtol=0, atol=1e-5)
        else:
            assert outputs["label"].tolist() == expected["predictions"]
            assert set(expected["predictions"]) <= {"low", "mid", "high"}
            np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], rtol=0, atol=1e-5)
    assert api.get(f"/v1/jobs/{ids['regression']}/weights", params={"format": "pt"}).status_code == 422


def _npz_metadata(blob: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return json.loads(str(npz["metadata"])), {k: npz[k] for k in npz.files if k != "metadata"}


def test_cancelled_job_serves_its_best_and_last_epochs(api, wait_job):
    job_id = api.post(
        "/v1/jobs",
        json={
            "dataset": "digits",
            "model": {"type": "mlp", "hidden_layers": [256]},
            "optimizer": {"learning_rate": 0.05},
            "training": {"epochs": 500, "batch_size": 8},
        },
    ).json()["id"]
    poll(lambda: api.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 3, 90, what="three epochs")
    assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    job = wait_job(api, job_id, timeout=60)
    assert job["status"] == "cancelled"

    plain = api.get(f"/v1/jobs/{job_id}/weights")
    assert plain.status_code == 409 and "checkpoint=" in plain.json()["detail"]
    assert api.get(f"/v1/jobs/{job_id}/weights", params={"checkpoint": "first"}).status_code == 422

    last_meta, last = _npz_metadata(api.get(f"/v1/jobs/{job_id}/weights", params={"checkpoint": "last"}).content)
    assert last_meta["checkpoint"] == {"which": "last", "epoch": job["progress"]["epoch"], "job_status": "cancelled"}
    assert last_meta["metrics"] == job["latest_metrics"]
    best_meta, best = _npz_metadata(api.get(f"/v1/jobs/{job_id}/weights", params={"checkpoint": "best"}).content)
    assert best_meta["checkpoint"] == {"which": "best", "epoch": job["best_epoch"], "job_status": "cancelled"}
    assert best_meta["metrics"] == job["best_metrics"]
    if job["best_epoch"] != job["progress"]["epoch"]:
        assert not np.array_equal(best["layers.0.weight"], last["layers.0.weight"])

    onnx_best = api.get(f"/v1/jobs/{job_id}/weights", params={"checkpoint": "best", "format": "onnx"})
    assert onnx_best.status_code == 200
    props = {p.key: json.loads(p.value) for p in onnx.load_from_string(onnx_best.content).metadata_props}
    assert props["checkpoint"]["which"] == "best"
    X = np.zeros((2, 64), dtype=np.float32)
    assert _onnx_outputs(onnx_best.content, X)["probabilities"].shape == (2, 10)
    safetensors = api.get(f"/v1/jobs/{job_id}/weights", params={"checkpoint": "last", "format": "safetensors"})
    assert safetensors.status_code == 200 and f"{job_id}-last.safetensors" in safetensors.headers["content-disposition"]
