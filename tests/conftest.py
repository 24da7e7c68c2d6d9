"""Fixtures shared by every test package (helpers live in ``tests/support.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from support import Service, numpy_forward, wait_for_job


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service for the session: Redis, one worker, the API."""
    svc = Service(tmp_path_factory.mktemp("service"), env_extra={"TRAINAPI_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024)})
    try:
        yield svc.start()
    finally:
        svc.stop()


@pytest.fixture
def api(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30) as client:
        yield client


@pytest.fixture
def wait_job() -> Callable[..., dict]:
    return wait_for_job


@pytest.fixture
def reference_forward() -> Callable[..., Any]:
    return numpy_forward
