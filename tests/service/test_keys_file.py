"""The keys file fails closed: moved, emptied, garbled or unreadable while the API runs, every request is a 401
(never the open mode's local tenant), and the keys work again once the file is restored."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import Service, poll

from trainapi.keys import add_key, hash_key

JOB = "/v1/jobs/job_0123456789abcdef0123456789abcdef"  # the raw status route authenticates on its own
ROUTES = (("GET", "/v1/jobs"), ("GET", "/v1/datasets"), ("POST", "/v1/jobs"), ("GET", JOB))


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> Iterator[tuple[Service, Path, str]]:
    root = tmp_path_factory.mktemp("keysfile")
    keys_file = root / "api_keys"
    key = add_key(keys_file, "alpha")
    svc = Service(root, env_extra={"TRAINAPI_API_KEYS_FILE": str(keys_file)})
    svc.start_redis()  # no worker: authentication comes before anything a worker would do
    try:
        svc.start_api()
        yield svc, keys_file, key
    finally:
        svc.stop()


def _statuses(service: Service, key: str | None) -> list[int]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=service.url, timeout=30, headers=headers) as client:
        return [
            client.request(method, path, json={"dataset": "iris"} if method == "POST" else None).status_code
            for method, path in ROUTES
        ]


def _all_refused(service: Service, key: str) -> bool:
    return all(status == 401 for status in _statuses(service, key) + _statuses(service, None))


def _works(service: Service, key: str) -> bool:
    statuses = _statuses(service, key)
    return statuses[0] == 200 and statuses[1] == 200 and 401 not in statuses


@pytest.mark.parametrize(
    "breakage",
    ["moved", "emptied", "upper-case hex", "spaced", "garbage", "unreadable directory", "not utf-8"],
)
def test_a_broken_keys_file_refuses_every_request_until_restored(keyed, breakage):
    service, keys_file, key = keyed
    good = keys_file.read_text()
    assert _works(service, key)
    tenant, digest = good.strip().split(":")
    aside = keys_file.with_name("api_keys.aside")
    if breakage == "moved":
        shutil.move(keys_file, aside)
    elif breakage == "emptied":
        keys_file.write_text("")
    elif breakage == "upper-case hex":
        keys_file.write_text(f"{tenant}:{digest.upper()}\n")
    elif breakage == "spaced":
        keys_file.write_text(f"{tenant} : {digest}\n")
    elif breakage == "garbage":
        keys_file.write_bytes(os.urandom(300).replace(b"\n", b"x") + b"\n")
    elif breakage == "unreadable directory":
        # Root reads any file whatever its mode; a path through a regular file cannot be read by anyone.
        service.stop_api()
        service.env_extra["TRAINAPI_API_KEYS_FILE"] = str(keys_file / "nested")
        service.start_api()
    else:
        keys_file.write_bytes(b"\xff\xfe" + f"{tenant}:{digest}\n".encode("utf-16-le"))
    try:
        assert poll(lambda: _all_refused(service, key), 10, what=f"401 everywhere with the keys file {breakage}")
        # Never the open mode's tenant: a key-less request is refused too, with the challenge.
        with httpx.Client(base_url=service.url, timeout=30) as client:
            response = client.get("/v1/jobs")
            assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    finally:
        if breakage == "moved":
            shutil.move(aside, keys_file)
        elif breakage == "unreadable directory":
            service.stop_api()
            service.env_extra["TRAINAPI_API_KEYS_FILE"] = str(keys_file)
            service.start_api()
        else:
            keys_file.write_text(good)
    assert poll(lambda: _works(service, key), 10, what="the key to work again once the file is restored")
    assert hash_key(key) in keys_file.read_text()


def test_bad_lines_are_logged_with_their_number_and_good_lines_still_count(keyed):
    service, keys_file, key = keyed
    good = keys_file.read_text()
    try:
        keys_file.write_text(f"# team keys\nbeta : {'a' * 64}\n{good}")
        assert poll(lambda: _works(service, key), 10, what="the good line's key to work")
        log = (service.root / "api.log").read_text()
        assert f"{keys_file}, line 2 refused: a tenant name is" in log
    finally:
        keys_file.write_text(good)
