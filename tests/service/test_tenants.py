"""API keys and tenants: each tenant sees only its own resources; quotas and limits apply per tenant."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support import Service, wait_for_job

from trainapi.keys import add_key


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> Iterator[tuple[Service, dict[str, str]]]:
    root = tmp_path_factory.mktemp("tenants")
    keys_file = root / "api_keys"
    keys = {tenant: add_key(keys_file, tenant) for tenant in ("alpha", "beta", "gamma")}
    svc = Service(root, env_extra={"TRAINAPI_API_KEYS_FILE": str(keys_file), "TRAINAPI_MAX_ACTIVE_JOBS": "3"})
    try:
        yield svc.start(), keys
    finally:
        svc.stop()


def _client(service: Service, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=service.url, timeout=30, headers=headers)


def test_missing_or_wrong_key_is_401(keyed):
    service, keys = keyed
    for key in (None, "tk_not-a-real-key"):
        with _client(service, key) as client:
            for method, path in (("GET", "/v1/jobs"), ("GET", "/v1/datasets"), ("POST", "/v1/jobs")):
                response = client.request(method, path, json={"dataset": "iris"} if method == "POST" else None)
                assert response.status_code == 401, (key, path)
                assert response.headers["content-type"] == "application/problem+json"
                assert response.headers["www-authenticate"].startswith("Bearer")
    with _client(service, None) as client:
        assert client.get("/healthz").status_code == 200
    with _client(service, keys["alpha"]) as client:
        assert client.get("/v1/jobs").status_code == 200


def test_a_tenant_never_sees_another_tenants_resources(keyed):
    service, keys = keyed
    with _client(service, keys["alpha"]) as alpha, _client(service, keys["beta"]) as beta:
        csv = b"a,b,label\n" + b"".join(f"{i},{i % 3},{'xy'[i % 2]}\n".encode() for i in range(40))
        dataset = alpha.post("/v1/datasets", files={"file": ("a.csv", csv, "text/csv")}).json()
        job_id = alpha.post("/v1/jobs", json={"dataset": dataset["id"], "training": {"epochs": 2}}).json()["id"]
        assert wait_for_job(alpha, job_id)["status"] == "succeeded"
        beta_job = beta.post("/v1/jobs", json={"dataset": "iris", "training": {"epochs": 1}}).json()["id"]
        wait_for_job(beta, beta_job)

        others = [
            ("GET", f"/v1/jobs/{job_id}", None),
            ("GET", f"/v1/jobs/{job_id}/metrics", None),
            ("GET", f"/v1/jobs/{job_id}/events", None),
            ("GET", f"/v1/jobs/{job_id}/weights", None),
            ("POST", f"/v1/jobs/{job_id}/predict", {"inputs": [[1, 2]]}),
            ("POST", f"/v1/jobs/{job_id}/cancel", None),
            ("DELETE", f"/v1/jobs/{job_id}", None),
            ("GET", f"/v1/datasets/{dataset['id']}", None),
            ("DELETE", f"/v1/datasets/{dataset['id']}", None),
        ]
        for method, path, body in others:
            response = beta.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        stolen = beta.post("/v1/jobs", json={"dataset": dataset["id"]})
        assert stolen.status_code == 422 and stolen.json()["errors"][0]["field"] == "dataset"

        alpha_jobs = {j["id"] for j in alpha.get("/v1/jobs", params={"limit": 500}).json()["items"]}
        beta_jobs = {j["id"] for j in beta.get("/v1/jobs", params={"limit": 500}).json()["items"]}
        assert job_id in alpha_jobs and beta_job in beta_jobs and not alpha_jobs & beta_jobs
        alpha_sets = {d["id"] for d in alpha.get("/v1/datasets").json()["items"] if d["source"] == "upload"}
        beta_sets = {d["id"] for d in beta.get("/v1/datasets").json()["items"] if d["source"] == "upload"}
        assert alpha_sets == {dataset["id"]} and beta_sets == set()
        # Everything still works for the owner.
        assert alpha.get(f"/v1/jobs/{job_id}/weights").status_code == 200
        assert alpha.post(f"/v1/jobs/{job_id}/predict", json={"inputs": [[1, 2]]}).status_code == 200


def test_active_job_quota_is_429_with_retry_after(keyed):
    service, keys = keyed
    slow = {"dataset": "digits", "model": {"hidden_layers": [256]}, "training": {"epochs": 300, "batch_size": 8}}
    with _client(service, keys["gamma"]) as gamma, _client(service, keys["beta"]) as beta:
        ids = [gamma.post("/v1/jobs", json=slow).json()["id"] for _ in range(3)]
        over = gamma.post("/v1/jobs", json=slow)
        assert over.status_code == 429
        assert over.headers["content-type"] == "application/problem+json"
        assert int(over.headers["retry-after"]) > 0
        # The quota is per tenant.
        other = beta.post("/v1/jobs", json={"dataset": "iris", "training": {"epochs": 1}})
        assert other.status_code == 202
        for job_id in ids:
            gamma.post(f"/v1/jobs/{job_id}/cancel")
        for job_id in ids:
            assert wait_for_job(gamma, job_id)["status"] == "cancelled"
        assert gamma.post("/v1/jobs", json={"dataset": "iris", "training": {"epochs": 1}}).status_code == 202
