"""The fresh-venv install of ``test_install.py`` starts in the background as soon as the tests are collected.

Installing ``./client`` into a new venv is mostly waiting on the package index; started at
collection, it overlaps the tests that run before it, so it adds little to the suite's wall time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from trainapi.processes import ROOT


@dataclass
class FreshVenv:
    """``python -m venv`` without pip, then the running pip installs ``./client`` into it (``--python``)."""

    root: Path
    started: float
    proc: subprocess.Popen[bytes]

    @property
    def python(self) -> Path:
        return self.root / "venv" / "bin" / "python"

    @classmethod
    def start(cls) -> FreshVenv:
        root = Path(tempfile.mkdtemp(prefix="trainapi-client-venv-"))
        venv, python = root / "venv", root / "venv" / "bin" / "python"
        script = (
            f"{sys.executable} -m venv --without-pip {venv} && "
            f"{sys.executable} -m pip --python {python} install --quiet --disable-pip-version-check {ROOT / 'client'}"
        )
        log = (root / "install.log").open("wb")
        proc = subprocess.Popen(["/bin/sh", "-c", script], stdout=log, stderr=subprocess.STDOUT)
        return cls(root, time.monotonic(), proc)

    def wait(self, timeout: float) -> tuple[int, float, str]:
        """(exit status, seconds the install took, its log)."""
        status = self.proc.wait(timeout)
        return status, time.monotonic() - self.started, (self.root / "install.log").read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


_venv: list[FreshVenv] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.nodeid.endswith("test_pip_install_client_alone_into_a_fresh_venv") for item in session.items):
        _venv.append(FreshVenv.start())


def pytest_sessionfinish(session: pytest.Session) -> None:
    while _venv:
        _venv.pop().close()


@pytest.fixture
def fresh_venv() -> FreshVenv:
    if not _venv:
        _venv.append(FreshVenv.start())
    return _venv[0]
