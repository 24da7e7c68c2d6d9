"""Event streams are capped per tenant and per API process (429 with Retry-After past either), and a stream's
slot is given back when its client goes away."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest
from support import Service, poll

from trainapi.keys import add_key


@pytest.fixture(scope="module")
def capped(tmp_path_factory) -> Iterator[tuple[Service, dict[str, str]]]:
    root = tmp_path_factory.mktemp("streams")
    keys = {tenant: add_key(root / "api_keys", tenant) for tenant in ("alpha", "beta")}
    svc = Service(
        root,
        env_extra={
            "TRAINAPI_API_KEYS_FILE": str(root / "api_keys"),
            "TRAINAPI_MAX_STREAMS_PER_TENANT": "3",
            "TRAINAPI_MAX_STREAMS": "5",
        },
    )
    svc.start_redis()  # no worker: a queued job's stream stays open until its client leaves
    try:
        svc.start_api()
        yield svc, keys
    finally:
        svc.stop()


def _client(service: Service, key: str) -> httpx.Client:
    return httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_streams_past_the_caps_get_429_and_a_closed_stream_frees_its_slot(capped):
    service, keys = capped
    with _client(service, keys["alpha"]) as alpha, _client(service, keys["beta"]) as beta:
        alpha_job = alpha.post("/v1/jobs", json={"dataset": "iris"}).json()["id"]
        beta_job = beta.post("/v1/jobs", json={"dataset": "iris"}).json()["id"]
        with contextlib.ExitStack() as streams:

            def open_stream(client: httpx.Client, job_id: str) -> httpx.Response:
                return streams.enter_context(client.stream("GET", f"/v1/jobs/{job_id}/events"))

            held = [open_stream(alpha, alpha_job) for _ in range(3)]
            assert [r.status_code for r in held] == [200, 200, 200]
            refused = alpha.get(f"/v1/jobs/{alpha_job}/events")
            assert refused.status_code == 429 and refused.headers["retry-after"] == "5"
            assert "per tenant" in refused.json()["detail"]
            # Another tenant is not held back by alpha's streams, up to the process's cap of 5.
            assert [open_stream(beta, beta_job).status_code for _ in range(2)] == [200, 200]
            full = beta.get(f"/v1/jobs/{beta_job}/events")
            assert full.status_code == 429 and "as many open event streams" in full.json()["detail"]
            # Requests other than streams go on.
            assert alpha.get("/v1/jobs").status_code == 200 and beta.get(f"/v1/jobs/{beta_job}").status_code == 200
            held[0].close()

            def beta_gets_one() -> bool:
                with beta.stream("GET", f"/v1/jobs/{beta_job}/events") as response:
                    return response.status_code == 200

            poll(beta_gets_one, 10, interval=0.1, what="the closed stream's slot to be free again")
