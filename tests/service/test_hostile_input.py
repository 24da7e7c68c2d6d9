"""Hostile input: non-finite literals, pickles, path-like ids, huge numbers, deep nesting → 4xx, never 5xx."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

RAW_BODIES = [
    ("NaN literal", b'{"dataset": "iris", "regularization": {"l2": NaN}}'),
    ("Infinity literal", b'{"dataset": "iris", "optimizer": {"learning_rate": Infinity}}'),
    ("-Infinity literal", b'{"dataset": "iris", "regularization": {"l1": -Infinity}}'),
    ("float overflow", b'{"dataset": "iris", "optimizer": {"learning_rate": 1e400}}'),
    ("huge integer", b'{"dataset": "iris", "training": {"epochs": 100000000000000000000000000000000}}'),
    ("huge seed", b'{"dataset": "iris", "training": {"seed": 1' + b"0" * 5000 + b"}}"),
    ("deeply nested", b'{"dataset": "iris", "tags": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"),
    ("deep array", b'{"dataset": "iris", "model": {"hidden_layers": ' + b"[" * 5000 + b"]" * 5000 + b"}}"),
    ("not an object", b'["dataset", "iris"]'),
    ("invalid utf-8", b'{"dataset": "\xff\xfe"}'),
    ("nul in string", b'{"dataset": "iris\\u0000"}'),
    ("empty body", b""),
]


@pytest.mark.parametrize(("case", "body"), RAW_BODIES, ids=[c[0] for c in RAW_BODIES])
def test_hostile_job_bodies_are_4xx_problems(api, case, body):
    response = api.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, (case, response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == response.status_code


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs/..%2F..%2Fetc%2Fpasswd",
        "/v1/jobs/%2e%2e/weights",
        "/v1/jobs/job_../../../../etc/passwd/weights",
        "/v1/datasets/..%2Fapi_keys",
        "/v1/datasets/ds_" + "a" * 32 + "%00",
        "/v1/jobs/" + "x" * 5000,
    ],
)
def test_path_like_ids_are_404(api, path):
    response = api.get(path)
    assert response.status_code in (404, 422), (path, response.status_code)
    assert response.headers["content-type"] == "application/problem+json"


def test_pickled_npz_and_raw_pickles_are_rejected(api):
    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([[1.0, 2.0]]), y=np.array([object()], dtype=object))
    evil = api.post("/v1/datasets", files={"file": ("evil.npz", buffer.getvalue(), "application/octet-stream")})
    assert evil.status_code == 422 and "object" in evil.json()["detail"]
    raw = api.post("/v1/datasets", files={"file": ("x.npz", pickle.dumps({"X": 1}), "application/octet-stream")})
    assert raw.status_code in (415, 422)
    assert raw.headers["content-type"] == "application/problem+json"


def test_hostile_predict_and_dataset_bodies(api, wait_job):
    job_id = api.post("/v1/jobs", json={"dataset": "iris", "training": {"epochs": 1}}).json()["id"]
    wait_job(api, job_id)
    for body in (
        b'{"inputs": [[NaN, 1, 2, 3]]}',
        b'{"inputs": [[1e400, 1, 2, 3]]}',
        b'{"inputs": [[1, 2, 3]]}',
        b'{"inputs": []}',
        b'{"inputs": "1,2,3,4"}',
        b'{"inputs": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    ):
        response = api.post(f"/v1/jobs/{job_id}/predict", content=body, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (body[:40], response.status_code, response.text[:200])
        assert response.headers["content-type"] == "application/problem+json"
    nested = b'{"name": "n", "features": ' + b"[" * 3000 + b"]" * 3000 + b', "target": [1]}'
    response = api.post("/v1/datasets", content=nested, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500
