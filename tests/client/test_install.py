"""The client installs alone: a fresh venv with only ``pip install ./client`` (no numpy, fastapi, celery, redis).

The install itself starts at collection (``conftest.py``); this test waits for it and uses the result.
"""

from __future__ import annotations

import subprocess

SERVER_ONLY = ("numpy", "fastapi", "celery", "redis", "pydantic", "uvicorn")

PROBE = """
import importlib.util
import trainapi_client
present = [m for m in {modules!r} if importlib.util.find_spec(m) is not None]
with trainapi_client.Client({url!r}) as client:
    names = sorted(d.id for d in client.datasets.list() if d.source == "builtin")
print(",".join(present) + "|" + ",".join(names))
"""


def test_pip_install_client_alone_into_a_fresh_venv(fresh_venv, service, record_property):
    status, seconds, log = fresh_venv.wait(timeout=600)
    assert status == 0, log
    record_property("install_seconds", round(seconds, 1))
    probe = PROBE.format(modules=SERVER_ONLY, url=service.url)
    result = subprocess.run([str(fresh_venv.python), "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    present, names = result.stdout.strip().split("|")
    assert present == "", f"server packages in the client's venv: {present}"
    assert {"iris", "digits"} <= set(names.split(","))
