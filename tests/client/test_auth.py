"""The client and the CLI against a service with API keys: the key from the argument or the environment."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from support import Service
from trainapi_client import AsyncClient, AuthenticationError, Client

from trainapi.keys import add_key

CLI = [sys.executable, "-m", "trainapi.cli"]
SPEC = {"dataset": "iris", "model": {"type": "logistic"}, "training": {"epochs": 2}}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> Iterator[tuple[Service, dict[str, str]]]:
    root = tmp_path_factory.mktemp("client-keys")
    keys_file = root / "api_keys"
    keys = {tenant: add_key(keys_file, tenant) for tenant in ("alpha", "beta")}
    svc = Service(root, env_extra={"TRAINAPI_API_KEYS_FILE": str(keys_file)}).start()
    try:
        yield svc, keys
    finally:
        svc.stop()


def test_the_client_sends_its_key_and_a_missing_or_wrong_one_is_an_authentication_error(keyed, monkeypatch):
    service, keys = keyed
    monkeypatch.delenv("TRAINAPI_API_KEY", raising=False)
    with Client(service.url) as anonymous, pytest.raises(AuthenticationError) as refused:
        list(anonymous.jobs.list())  # the page iterator asks on first use
    assert refused.value.status == 401
    with Client(service.url, api_key="tk_wrong") as wrong, pytest.raises(AuthenticationError):
        wrong.jobs.create(SPEC)
    with Client(service.url, api_key=keys["alpha"]) as alpha:
        job = alpha.jobs.wait(alpha.jobs.create(SPEC, name="alphas").id, timeout=60)
        assert job.status == "succeeded"
    monkeypatch.setenv("TRAINAPI_API_KEY", keys["beta"])  # the environment's key, when none is given
    with Client(service.url) as beta:
        assert [j.id for j in beta.jobs.list()] == []  # beta sees none of alpha's jobs

    async def from_async() -> list[str]:
        async with AsyncClient(service.url, api_key=keys["alpha"]) as client:
            return [j.id async for j in client.jobs.list()]

    assert asyncio.run(from_async()) == [job.id]


def test_the_cli_takes_the_key_from_its_flag_or_the_environment(keyed):
    service, keys = keyed
    base = {k: v for k, v in os.environ.items() if k != "TRAINAPI_API_KEY"} | {"TRAINAPI_URL": service.url}

    def trainapi(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=base | env)

    refused = trainapi("jobs", "list")
    assert refused.returncode == 1 and "401" in refused.stderr + refused.stdout
    by_flag = trainapi("jobs", "list", "--json", "--api-key", keys["alpha"])
    assert by_flag.returncode == 0, by_flag.stderr
    by_env = trainapi("jobs", "list", "--json", TRAINAPI_API_KEY=keys["beta"])
    assert by_env.returncode == 0, by_env.stderr
