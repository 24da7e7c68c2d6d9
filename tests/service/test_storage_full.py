"""A full disk: a job fails at once with ``storage_full`` (one attempt, none of its files left), /readyz says
the data directory is nearly full, and once space is freed the same job succeeds without a restart.

The data directory is a 50 MB tmpfs of its own (Redis stays on the test's disk, as an operator would keep it).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import Service, poll, wait_for_job

#: An MLP whose checkpoint (parameters and Adam's two moments, float64) is about 6 MB.
BIG = {"dataset": "iris", "model": {"type": "mlp", "hidden_layers": [512, 512]}, "training": {"epochs": 3}}


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory) -> Iterator[tuple[Service, Path]]:
    root = tmp_path_factory.mktemp("full")
    data = root / "data"
    if not _mount_tmpfs(data, "50m"):
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    svc = Service(root, env_extra={"TRAINAPI_STORAGE_MIN_FREE_BYTES": str(8 * 1_048_576)})
    try:
        svc.start_redis()
        svc.start_worker("w1", data_dir=data)
        svc.start_api(data_dir=data)
        yield svc, data
    finally:
        svc.stop()
        subprocess.run(["umount", "-l", str(data)], check=False)


def _fill(data: Path, leave: int) -> Path:
    """A filler file that leaves about ``leave`` bytes free on the tmpfs."""
    filler = data / "filler"
    free = os.statvfs(data).f_bavail * os.statvfs(data).f_frsize
    with filler.open("wb") as out:
        out.truncate(0)
        out.write(b"\0" * max(free - leave, 0))
    return filler


def _files(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def test_a_full_disk_fails_the_job_at_once_and_it_succeeds_once_space_is_freed(small_disk):
    service, data = small_disk
    filler = _fill(data, leave=2 * 1_048_576)
    try:
        with httpx.Client(base_url=service.url, timeout=30) as client:
            assert client.get("/readyz").json()["storage"].startswith("low: ")
            job = client.post("/v1/jobs", json=BIG).json()
            done = wait_for_job(client, job["id"], timeout=120)
            assert done["status"] == "failed" and done["attempt"] == 1, done
            assert done["error"]["type"] == "storage_full", done["error"]
            assert "free space" in done["error"]["message"]
            left = _files(data / "jobs" / job["id"]) if (data / "jobs" / job["id"]).exists() else []
            assert left == [], f"the failed attempt's files are deleted: {left}"
            assert not [f for f in _files(data) if f.endswith(".tmp")]
    finally:
        filler.unlink()
    with httpx.Client(base_url=service.url, timeout=30) as client:
        poll(lambda: client.get("/readyz").json().get("storage") == "ok", 10, what="/readyz storage ok again")
        again = client.post("/v1/jobs", json=BIG).json()
        assert wait_for_job(client, again["id"], timeout=300)["status"] == "succeeded"
        assert client.get(f"/v1/jobs/{again['id']}/weights").status_code == 200
