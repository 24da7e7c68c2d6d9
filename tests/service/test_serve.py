"""``trainapi serve`` supervises its children: a killed redis-server, API or worker is started again (Redis on
the same port and AOF, so nothing is lost), a second serve of the same data directory is refused, and SIGTERM
stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import poll, wait_for_job

from trainapi.processes import ROOT, free_port, reap


def _children(pid: int) -> dict[str, int]:
    """The live child processes of ``pid``: the first word of each one's command line -> its pid."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        words = [a.decode() for a in argv if a]
        if int(fields[1]) == pid and fields[0] != "Z" and words:  # no words: it is exiting
            name = "redis-server" if "redis-server" in words[0] else " ".join(words[1:4])
            found[name] = int(entry.name)
    return found


def _pid_of(pid: int, marker: str) -> int | None:
    return next((child for name, child in _children(pid).items() if marker in name), None)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    root = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINAPI_")}
    env.update({"TRAINAPI_DATA_DIR": str(root / "data"), "OPENBLAS_NUM_THREADS": "1"})
    with (root / "serve.log").open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trainapi.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: _ready(url), 120, what="trainapi serve to be ready")
        yield proc, url, root
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        reap(proc, 120)
        for child in _children(proc.pid).values():  # pragma: no cover - only if serve failed to stop them
            os.kill(child, signal.SIGKILL)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_killed_redis_server_is_restarted_with_nothing_lost(served):
    proc, url, root = served
    with httpx.Client(base_url=url, timeout=30) as client:
        job = client.post("/v1/jobs", json={"dataset": "iris", "training": {"epochs": 40}}).json()
        redis_pid = _pid_of(proc.pid, "redis-server")
        assert redis_pid is not None
        os.kill(redis_pid, signal.SIGKILL)
        killed = time.monotonic()
        poll(lambda: not _ready(url), 10, interval=0.02, what="/readyz to notice Redis is gone")
        poll(lambda: _ready(url), 10, interval=0.1, what="/readyz 200 again within 10 s of the kill")
        back_after = time.monotonic() - killed
        assert _pid_of(proc.pid, "redis-server") not in (None, redis_pid)
        assert wait_for_job(client, job["id"], timeout=180)["status"] == "succeeded"
        assert job["id"] in [j["id"] for j in client.get("/v1/jobs").json()["items"]]
    assert proc.poll() is None
    assert back_after < 10
    print(f"/readyz 200 again {back_after:.1f} s after redis-server was killed")
    log = (root / "serve.log").read_text()
    assert "redis-server exited with status -9" in log and "redis-server started again" in log
    assert (root / "data" / "logs" / "redis.log").stat().st_size > 0, "Redis logs to the data directory"


@pytest.mark.parametrize("marker", ["api.server", "celery", "api.webhooks"])
def test_a_killed_api_or_worker_is_restarted(served, marker):
    proc, url, _ = served
    pid = _pid_of(proc.pid, marker)
    assert pid is not None, _children(proc.pid)
    os.kill(pid, signal.SIGKILL)
    poll(lambda: _pid_of(proc.pid, marker) not in (None, pid), 30, what=f"{marker} to be started again")
    poll(lambda: _ready(url), 90, what="the service to be ready again")
    with httpx.Client(base_url=url, timeout=30) as client:
        job = client.post("/v1/jobs", json={"dataset": "iris", "training": {"epochs": 2}}).json()
        assert wait_for_job(client, job["id"], timeout=180)["status"] == "succeeded"
    assert proc.poll() is None


def test_a_second_serve_of_the_same_data_dir_is_refused(served):
    _, _, root = served
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINAPI_")}
    env["TRAINAPI_DATA_DIR"] = str(root / "data")
    second = subprocess.run(
        [sys.executable, "-m", "trainapi.cli", "serve", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "another `trainapi serve` is using" in second.stderr


def test_sigterm_stops_every_child(served):
    proc, _, _ = served
    children = _children(proc.pid)
    assert {"redis-server"} <= set(children) and len(children) >= 4, children
    proc.send_signal(signal.SIGTERM)
    assert reap(proc, 120) == 0
    for pid in children.values():
        poll(lambda pid=pid: not Path(f"/proc/{pid}").exists(), 30, what=f"child {pid} to be gone")
