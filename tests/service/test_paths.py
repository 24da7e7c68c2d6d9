"""Regularization path jobs against real processes: the path, its CV, its models at every λ, its 422s.

The service's answers are compared with the engine run in the test on the same
prepared rows: ``GET /path``'s coefficients with ``engine.paths.fit_path``
(exactly: JSON carries float64 exactly), its λ choice with ``cv_path`` on the
same folds, and every weights format and ``/predict`` at ``?lambda_index=``
with the path's own coefficients.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from support import read_weights

import engine
from engine import folds as fold_ids
from engine.paths import cv_path, fit_path
from engine.preprocessing import prepare


def _path_job(api: httpx.Client, wait_job, spec: dict) -> tuple[dict, dict]:
    created = api.post("/v1/jobs", json=spec)
    assert created.status_code == 202, created.text
    job = wait_job(api, created.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    path = api.get(f"/v1/jobs/{job['id']}/path")
    assert path.status_code == 200, path.text
    return job, path.json()


def _prepared(name: str, task: str, spec: dict) -> engine.preprocessing.PreparedData:
    t = spec.get("training", {})
    cv = t.get("cross_validation")
    return prepare(
        engine.load_builtin(name),
        task,
        validation_fraction=0.0 if cv else t.get("validation_fraction", 0.2),
        test_fraction=t.get("test_fraction", 0.0),
        standardize=False,
        seed=t.get("seed", 0),
        dtype="float64",
    )


def _points(document: dict) -> tuple[np.ndarray, np.ndarray]:
    coef = np.array([p["coef"] for p in document["points"]])
    intercept = np.array([p["intercept"] for p in document["points"]])
    return coef, intercept


def _check_weights_at(api: httpx.Client, job_id: str, document: dict, index: int, X: np.ndarray) -> None:
    """Every weights format at ``?lambda_index=index`` holds the path's point; ONNX answers with it."""
    point = document["points"][index]
    for fmt in ("npz", "safetensors", "json"):
        response = api.get(f"/v1/jobs/{job_id}/weights", params={"format": fmt, "lambda_index": index})
        assert response.status_code == 200, response.text
        tensors, metadata = read_weights(response.content, fmt)
        assert tensors["layers.0.weight"].tolist() == [point["coef"]]
        assert tensors["layers.0.bias"].tolist() == [point["intercept"]]
        assert metadata["path_point"]["index"] == index and metadata["path_point"]["lambda"] == point["lambda"]
        assert metadata["metrics"]["nonzero"] == point["nonzero"]
    onnx = api.get(f"/v1/jobs/{job_id}/weights", params={"format": "onnx", "lambda_index": index})
    assert onnx.status_code == 200, onnx.text
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(onnx.content, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input": X.astype(np.float32)})
    eta = X.astype(np.float32).astype(np.float64) @ np.array(point["coef"]) + point["intercept"]
    if document["family"] == "gaussian":
        np.testing.assert_allclose(outputs[0], eta, rtol=1e-5, atol=1e-5 * np.abs(eta).max())
    else:
        np.testing.assert_allclose(outputs[1][:, 1], 1 / (1 + np.exp(-eta)), rtol=1e-5, atol=1e-6)


def _predict(api: httpx.Client, job_id: str, X: np.ndarray, index: int | None = None) -> dict:
    params = {} if index is None else {"lambda_index": index}
    response = api.post(f"/v1/jobs/{job_id}/predict", json={"inputs": X.tolist()}, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_cross_validated_lasso_path_on_diabetes(api, wait_job):
    spec = {
        "dataset": "diabetes",
        "model": {"type": "linear"},
        "path": {"n_lambdas": 40},
        "training": {"cross_validation": {"folds": 5}, "seed": 3},
    }
    job, document = _path_job(api, wait_job, spec)
    data = _prepared("diabetes", "regression", spec)
    expected = fit_path(data.X_train, data.y_train, family="gaussian", n_lambda=40)
    coef, intercept = _points(document)
    assert np.array_equal(coef, expected.coef) and np.array_equal(intercept, expected.intercept)
    assert [p["lambda"] for p in document["points"]] == expected.lambdas.tolist()
    assert [p["nonzero"] for p in document["points"]] == expected.nzero.tolist()
    assert [p["train_loss"] for p in document["points"]] == expected.train_loss.tolist()

    folds = fold_ids.assign(len(data.y_train), 5, "random", seed=3, row_numbers=data.train_rows)
    cv = cv_path(data.X_train, data.y_train, folds, family="gaussian", lambdas=expected.lambdas)
    assert document["lambda_min"] == cv.lambda_min and document["lambda_1se"] == cv.lambda_1se
    assert document["index_min"] == cv.index_min and document["index_1se"] == cv.index_1se
    assert [p["cv_mean"] for p in document["points"]] == cv.cvm.tolist()
    assert [p["cv_sd"] for p in document["points"]] == cv.cvsd.tolist()
    assert document["measure"] == "mse" and document["validation"] == "cross_validation" and document["folds"] == 5

    # The job view's summary: the selected point is the 1-SE one.
    summary = job["path"]
    assert summary["index"] == cv.index_1se and summary["nonzero"] == int(expected.nzero[cv.index_1se])
    assert summary["lambda_1se"] == cv.lambda_1se and summary["measure"] == "mse"
    assert job["progress"]["fraction"] == 1.0

    X = data.X_train[:7]
    selected = _predict(api, job["id"], X)["predictions"]
    np.testing.assert_allclose(selected, X @ coef[summary["index"]] + intercept[summary["index"]], rtol=1e-12)
    for index in (0, 17, 39):
        at = _predict(api, job["id"], X, index)["predictions"]
        np.testing.assert_allclose(at, X @ coef[index] + intercept[index], rtol=1e-12, atol=1e-9)
        _check_weights_at(api, job["id"], document, index, X)
    # The default download is the selected point.
    tensors, metadata = read_weights(api.get(f"/v1/jobs/{job['id']}/weights").content, "npz")
    assert tensors["layers.0.weight"].tolist() == [coef[summary["index"]].tolist()]
    assert metadata["path_point"]["selected"] and metadata["path_point"]["is_1se"]

    for bad in (40, 999):
        for response in (
            api.get(f"/v1/jobs/{job['id']}/weights", params={"lambda_index": bad}),
            api.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": X.tolist()}, params={"lambda_index": bad}),
        ):
            assert response.status_code == 422, response.text
            assert response.json()["errors"][0]["field"] == "lambda_index"


def test_a_logistic_path_on_breast_cancer_with_stratified_folds(api, wait_job):
    spec = {
        "dataset": "breast_cancer",
        "model": {"type": "logistic"},
        "path": {"n_lambdas": 25, "lambda_min_ratio": 0.01, "alpha": 0.5, "select": "min"},
        "training": {"cross_validation": {"folds": 3}, "test_fraction": 0.2},
    }
    job, document = _path_job(api, wait_job, spec)
    data = _prepared("breast_cancer", "classification", spec)
    y = data.y_train.astype(np.float64)
    expected = fit_path(data.X_train, y, family="binomial", alpha=0.5, n_lambda=25, lambda_min_ratio=0.01)
    coef, intercept = _points(document)
    assert np.array_equal(coef, expected.coef) and np.array_equal(intercept, expected.intercept)
    folds = fold_ids.assign(len(y), 3, "stratified", seed=0, labels=data.y_train)
    cv = cv_path(data.X_train, y, folds, family="binomial", alpha=0.5, lambdas=expected.lambdas)
    assert document["lambda_min"] == cv.lambda_min and document["lambda_1se"] == cv.lambda_1se
    assert document["measure"] == "deviance" and len(document["classes"]) == 2
    assert job["path"]["index"] == cv.index_min  # select: min
    assert job["test_metrics"]["accuracy"] > 0.9

    X = data.X_test[:6]
    for index in (None, 3, 24):
        at = cv.index_min if index is None else index
        answer = _predict(api, job["id"], X, index)
        eta = X @ coef[at] + intercept[at]
        np.testing.assert_allclose(np.array(answer["probabilities"])[:, 1], 1 / (1 + np.exp(-eta)), rtol=1e-12)
        assert answer["predictions"] == [document["classes"][int(v > 0)] for v in eta]
    _check_weights_at(api, job["id"], document, 10, X)


def test_a_holdout_path_and_a_rerun_give_the_same_path(api, wait_job):
    spec = {"dataset": "diabetes", "model": {"type": "linear"}, "path": {"n_lambdas": 30, "alpha": 0.7}}
    _, document = _path_job(api, wait_job, spec)
    _, again = _path_job(api, wait_job, spec)
    assert again == document  # deterministic: what a rerun after a killed worker computes too
    assert document["validation"] == "holdout" and document["folds"] is None
    data = _prepared("diabetes", "regression", spec)
    expected = fit_path(data.X_train, data.y_train, alpha=0.7, n_lambda=30)
    assert np.array_equal(_points(document)[0], expected.coef)
    residual = data.y_val[:, None] - expected.predict(data.X_val)
    assert [p["cv_mean"] for p in document["points"]] == (residual**2).mean(axis=0).tolist()


def _csv_with_folds(folds: list[int]) -> bytes:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(len(folds), 3))
    y = X @ np.array([2.0, 0.0, -1.0]) + 0.3 * rng.normal(size=len(folds))
    lines = ["a,b,c,fold,y"] + [
        f"{a:.6f},{b:.6f},{c:.6f},{k},{t:.6f}" for (a, b, c), k, t in zip(X, folds, y, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()


def test_a_fold_column_gives_the_folds_and_is_not_a_feature(api, wait_job):
    folds = [i % 4 + 1 for i in range(120)]
    upload = api.post("/v1/datasets", files={"file": ("folds.csv", _csv_with_folds(folds), "text/csv")})
    assert upload.status_code == 201, upload.text
    dataset = upload.json()
    spec = {
        "dataset": dataset["id"],
        "model": {"type": "linear"},
        "path": {"n_lambdas": 20},
        "training": {"cross_validation": {"folds": 4, "fold_column": "fold"}},
    }
    job, document = _path_job(api, wait_job, spec)
    assert document["input_names"] == ["a", "b", "c"] and document["folds"] == 4
    weights = api.get(f"/v1/jobs/{job['id']}/weights", params={"format": "json"})
    assert read_weights(weights.content, "json")[1]["feature_names"] == ["a", "b", "c"]

    one_fold = api.post("/v1/datasets", files={"file": ("one.csv", _csv_with_folds([1] * 60), "text/csv")})
    failed = api.post("/v1/jobs", json={**spec, "dataset": one_fold.json()["id"]})
    assert failed.status_code == 202, failed.text
    ended = wait_job(api, failed.json()["id"])
    assert ended["status"] == "failed" and "one fold id" in ended["error"]["message"]
    conflict = api.get(f"/v1/jobs/{ended['id']}/path")
    assert conflict.status_code == 409, conflict.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": {"type": "mlp"}, "path": {}}, "path"),
        ({"model": {"type": "linear"}, "path": {}, "regularization": {"l1": 0.01}}, "regularization.l1"),
        ({"model": {"type": "logistic"}, "path": {}, "regularization": {"l2": 0.01}}, "regularization.l2"),
        ({"model": {"type": "linear"}, "path": {"measure": "auc"}}, "path.measure"),
        (
            {"model": {"type": "linear"}, "path": {}, "training": {"validation_fraction": 0.0}},
            "training.validation_fraction",
        ),
        ({"model": {"type": "linear"}, "training": {"cross_validation": {"folds": 5}}}, "training.cross_validation"),
        (
            {"model": {"type": "linear"}, "path": {}, "training": {"cross_validation": {"folds": 21}}},
            "training.cross_validation.folds",
        ),
        ({"model": {"type": "linear"}, "path": {"lambdas": [1.0, -0.5]}}, "path.lambdas.1"),
        (
            {"model": {"type": "linear"}, "path": {}, "training": {"cross_validation": {"fold_column": "nope"}}},
            "training.cross_validation.fold_column",
        ),
    ],
)
def test_what_a_path_job_refuses(api, body, field):
    response = api.post("/v1/jobs", json={"dataset": "diabetes", **body})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field, response.json()


def test_a_logistic_path_needs_two_classes_and_a_plain_job_has_no_path(api, wait_job):
    three = api.post("/v1/jobs", json={"dataset": "iris", "model": {"type": "logistic"}, "path": {}})
    assert three.status_code == 422 and three.json()["errors"][0]["field"] == "path", three.text
    created = api.post("/v1/jobs", json={"dataset": "diabetes", "model": {"type": "linear"}, "training": {"epochs": 2}})
    job = wait_job(api, created.json()["id"])
    assert job["status"] == "succeeded" and job["path"] is None
    assert api.get(f"/v1/jobs/{job['id']}/path").status_code == 404
    for response in (
        api.get(f"/v1/jobs/{job['id']}/weights", params={"lambda_index": 0}),
        api.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": [[0.0] * 10]}, params={"lambda_index": 0}),
    ):
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "lambda_index"
