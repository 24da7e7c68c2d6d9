"""The client installs alone: a fresh venv with only ``pip install ./client`` (no numpy, fastapi, celery, redis),
and with it the ``trainapi`` command's resource commands.

The install itself starts at collection (``conftest.py``); this test waits for it and uses the result.
"""

from __future__ import annotations

import json
import re
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


def test_the_client_alone_installs_the_trainapi_command_with_the_resource_commands(fresh_venv, service):
    status, _, log = fresh_venv.wait(timeout=600)
    assert status == 0, log
    trainapi = str(fresh_venv.python.parent / "trainapi")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([trainapi, *args], capture_output=True, text=True, timeout=60)

    top = run("--help")
    assert top.returncode == 0, top.stderr
    listed = set(re.findall(r"^    (\w+) ", top.stdout, re.M))
    assert listed == {"datasets", "jobs", "sweeps"}, top.stdout  # serve, worker, ...: the server's, not here
    for group in ("datasets", "jobs", "sweeps"):
        assert run(group, "--help").returncode == 0
    jobs_help = run("jobs", "list", "--help")
    assert jobs_help.returncode == 0 and "--status" in jobs_help.stdout, jobs_help.stderr
    listing = run("datasets", "list", "--json", "--url", service.url)
    assert listing.returncode == 0, listing.stderr
    assert {"iris", "digits"} <= {d["id"] for d in json.loads(listing.stdout)}
