"""Bad input gets a problem+json 4xx that names the field or row — never a 500."""

from __future__ import annotations

import io

import numpy as np
import pytest

GOOD = {"dataset": "iris", "training": {"epochs": 1}}


def _job(**overrides):
    spec = {"dataset": "iris", "model": {}, "regularization": {}, "optimizer": {}, "training": {"epochs": 1}}
    for path, value in overrides.items():
        section, _, name = path.partition("__")
        if name:
            spec[section][name] = value
        else:
            spec[section] = value
    return spec


JOB_CASES = [
    ("unknown field", {**GOOD, "colour": "red"}, 422, "colour"),
    ("unknown nested field", _job(model={"layers": [4]}), 422, "model.layers"),
    ("learning_rate 0", _job(optimizer__learning_rate=0), 422, "optimizer.learning_rate"),
    ("learning_rate < 0", _job(optimizer__learning_rate=-0.1), 422, "optimizer.learning_rate"),
    ("dropout 1.0", _job(regularization__dropout=1.0), 422, "regularization.dropout"),
    ("hidden_layers [0]", _job(model__hidden_layers=[0]), 422, "model.hidden_layers.0"),
    ("epochs 0", _job(training__epochs=0), 422, "training.epochs"),
    ("batch_size 0", _job(training__batch_size=0), 422, "training.batch_size"),
    ("fractions out of range", _job(training__validation_fraction=1.5), 422, "training.validation_fraction"),
    ("dropout list too long", _job(regularization__dropout=[0.1, 0.2]), 422, "regularization.dropout"),
    ("over the parameter budget", _job(model__hidden_layers=[8192, 8192]), 422, "model.hidden_layers"),
    (
        "over the work budget",
        {"dataset": "digits", "model": {"hidden_layers": [4096]}, "training": {"epochs": 100_000}},
        422,
        "training.epochs",
    ),
    ("unknown dataset", {**GOOD, "dataset": "no-such-data"}, 422, "dataset"),
    ("another tenant's or bogus id", {**GOOD, "dataset": "ds_" + "0" * 32}, 422, "dataset"),
    ("unknown target column", {**GOOD, "target": "colour"}, 422, "target"),
    ("wrong type", _job(training__epochs="many"), 422, "training.epochs"),
    ("missing dataset", {"training": {"epochs": 1}}, 422, "dataset"),
    ("linear for classification", {**GOOD, "task": "classification", "model": {"type": "linear"}}, 422, "model.type"),
]


@pytest.mark.parametrize(("case", "body", "status", "field"), JOB_CASES, ids=[c[0] for c in JOB_CASES])
def test_bad_job_specs(api, case, body, status, field):
    response = api.post("/v1/jobs", json=body)
    if response.status_code == 202:  # do not leave a wrongly accepted job running for the next tests
        api.post(f"/v1/jobs/{response.json()['id']}/cancel")
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["type"]
    assert field in [e["field"] for e in problem["errors"]], problem


def test_malformed_json_and_non_finite_numbers(api):
    response = api.post("/v1/jobs", content=b'{"dataset": "iris",', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "JSON" in response.json()["detail"]
    nan = api.post(
        "/v1/jobs",
        content=b'{"dataset": "iris", "optimizer": {"learning_rate": NaN}}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code in (400, 422)
    assert nan.headers["content-type"] == "application/problem+json"


def _csv(text: str):
    return {"file": ("data.csv", text.encode(), "text/csv")}


UPLOAD_CASES = [
    ("Inf cell", _csv("a,b,y\n1,inf,0\n3,4,1\n"), 422, ["row 1", "'b'"]),
    ("ragged row", _csv("a,b,y\n1,2,0\n3,1\n"), 422, ["row 2", "fields"]),
    ("text in a numeric column", _csv("a,b,y\n" + "1,2,0\n3,4,1\n" * 6 + "3,abc,1\n"), 422, ["abc", "row 13", "'b'"]),
    ("empty file", _csv(""), 422, ["empty"]),
    ("header only", _csv("a,b,y\n"), 422, ["no data rows"]),
    ("single class", _csv("a,b,y\n1,2,cat\n3,4,cat\n"), 422, ["single"]),
    ("wrong media type", {"file": ("data.pdf", b"%PDF-1.4", "application/pdf")}, 415, ["CSV"]),
    ("no file field", {"name": (None, b"x")}, 422, ["file"]),
]


@pytest.mark.parametrize(("case", "files", "status", "words"), UPLOAD_CASES, ids=[c[0] for c in UPLOAD_CASES])
def test_bad_uploads(api, case, files, status, words):
    response = api.post("/v1/datasets", files=files)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    for word in words:
        assert word.lower() in detail.lower(), detail


def test_npz_with_object_arrays_is_rejected(api):
    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([[1, {"a": 1}]], dtype=object), y=np.array([0]))
    response = api.post("/v1/datasets", files={"file": ("evil.npz", buffer.getvalue(), "application/octet-stream")})
    assert response.status_code == 422
    assert "object" in response.json()["detail"]


def test_over_size_upload_and_body(api):
    big = b"a,b,y\n" + b"1.000000,2.000000,0\n" * 200_000  # about 4 MB; the session's limit is 2 MiB
    response = api.post("/v1/datasets", files={"file": ("big.csv", big, "text/csv")})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    huge_json = b'{"dataset": "iris", "name": "' + b"x" * 2_000_000 + b'"}'
    response = api.post("/v1/jobs", content=huge_json, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_json_dataset_upload_and_wrong_content_type(api):
    good = api.post(
        "/v1/datasets",
        json={"name": "xor", "features": [[0, 0], [0, 1], [1, 0], [1, 1]] * 5, "target": ["a", "b", "b", "a"] * 5},
    )
    assert good.status_code == 201, good.text
    assert good.json()["classes"] == ["a", "b"]
    ragged = api.post("/v1/datasets", json={"name": "r", "features": [[0, 0], [1]], "target": [0, 1]})
    assert ragged.status_code == 422 and "features" in ragged.text
    text = api.post("/v1/datasets", content=b"hello", headers={"content-type": "text/plain"})
    assert text.status_code == 415


def test_bad_queries_and_unknown_resources(api):
    assert api.get("/v1/jobs", params={"limit": 0}).status_code == 422
    assert api.get("/v1/jobs", params={"status": "sleeping"}).status_code == 422
    assert api.get("/v1/jobs", params={"cursor": "abc"}).status_code == 422
    for path in ("/v1/jobs/nope", "/v1/jobs/../../etc/passwd", "/v1/datasets/nope", "/v1/nothing"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
    job_id = api.post("/v1/jobs", json=GOOD).json()["id"]
    assert api.get(f"/v1/jobs/{job_id}/weights", params={"format": "pickle"}).status_code == 422
    assert api.post(f"/v1/jobs/{job_id}/predict", json={"inputs": [[1, 2]]}).status_code in (409, 422)
    assert api.delete("/v1/datasets/iris").status_code == 409
