"""Fixtures shared by every test package (helpers live in ``tests/support.py``)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
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


def _children(pid: int) -> dict[int, str]:
    """The live child processes of ``pid`` and their command lines."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == pid and state != "Z" and argv:
            found[int(entry.name)] = argv
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite leaves no process behind: a service process still running now was never stopped by its test.

    Each is killed and named, and the run fails.
    """
    leaked = _children(os.getpid())
    if not leaked:
        return
    for pid in leaked:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    lines = "\n".join(f"  {pid}: {argv[:200]}" for pid, argv in sorted(leaked.items()))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"processes left behind by the tests (killed now):\n{lines}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
