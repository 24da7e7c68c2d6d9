"""Both storage backends behave alike: the data directory and S3 (moto's server on loopback)."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import boto3
import numpy as np
import pytest

from store.artifacts import Artifacts
from store.datasets import npz_bytes
from store.storage import LocalCache, LocalStorage, ObjectMissing, ObjectStorage, StorageUnavailable, open_storage
from trainapi import processes

BUCKET = "trainapi-unit"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = processes.start_s3_server(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        boto3.client("s3", endpoint_url=url, **_credentials()).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        processes.stop(proc)


def _credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "region_name": "us-east-1",
    }


def _settings(tmp_path: Path, url: str | None, endpoint: str | None = None, **extra: object) -> SimpleNamespace:
    return SimpleNamespace(
        data_dir=tmp_path,
        storage_url=url,
        s3_endpoint_url=endpoint,
        s3_connect_timeout=1.0,
        s3_read_timeout=2.0,
        s3_max_attempts=1,
        **extra,
    )


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ObjectStorage:
    if request.param == "local":
        return open_storage(_settings(tmp_path, None))
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    endpoint = request.getfixturevalue("s3_endpoint")
    return open_storage(_settings(tmp_path, f"s3://{BUCKET}/{uuid.uuid4().hex}", endpoint))


def test_put_get_stream_list_delete(storage: ObjectStorage):
    data = os.urandom(3 * 1024 * 1024 + 5)
    storage.put("jobs/job_1/attempt-1/weights.npz", data)
    storage.put("jobs/job_1/attempt-1/checkpoint-3.npz", b"state")
    storage.put("jobs/job_10/metrics.json", b"[]")
    assert storage.get("jobs/job_1/attempt-1/weights.npz") == data
    stored = storage.open("jobs/job_1/attempt-1/weights.npz", chunk_bytes=1024 * 1024)
    chunks = list(stored.chunks)
    assert stored.size == len(data) and b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= 1024 * 1024
    assert storage.exists("jobs/job_1/attempt-1/checkpoint-3.npz")
    assert storage.keys("jobs/job_1/") == ["jobs/job_1/attempt-1/checkpoint-3.npz", "jobs/job_1/attempt-1/weights.npz"]
    storage.delete("jobs/job_1/attempt-1/checkpoint-3.npz")
    assert not storage.exists("jobs/job_1/attempt-1/checkpoint-3.npz")
    storage.delete("jobs/job_1/attempt-1/checkpoint-3.npz")  # deleting what is gone is fine
    storage.delete_prefix("jobs/job_1/")
    assert storage.keys("jobs/job_1/") == []
    assert storage.keys("jobs/") == ["jobs/job_10/metrics.json"]  # job_10 is not under jobs/job_1/
    with pytest.raises(ObjectMissing):
        storage.get("jobs/job_1/attempt-1/weights.npz")
    with pytest.raises(ObjectMissing):
        storage.open("jobs/nothing")


@pytest.mark.parametrize("key", ["", "/abs", "jobs/../x", "jobs//x", "./x", ".."])
def test_keys_stay_inside_the_storage(tmp_path: Path, key: str):
    with pytest.raises(ValueError):
        LocalStorage(tmp_path).put(key, b"x")


def test_local_writes_leave_no_temporary_files(tmp_path: Path):
    storage = LocalStorage(tmp_path)
    storage.put("datasets/a.npz", b"1" * 100)
    storage.put("datasets/a.npz", b"1" * 100)
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == ["a.npz"]


def test_an_unreachable_s3_endpoint_is_storage_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    closed = f"http://127.0.0.1:{processes.free_port()}"
    storage = open_storage(_settings(tmp_path, "s3://nowhere/p", closed))
    for call in (lambda: storage.put("a", b"x"), lambda: storage.get("a"), lambda: storage.keys("")):
        with pytest.raises(StorageUnavailable):
            call()


def test_a_missing_bucket_is_storage_unavailable_not_a_missing_object(storage: ObjectStorage, tmp_path: Path):
    if isinstance(storage, LocalStorage):
        pytest.skip("a data directory has no bucket")
    other = open_storage(_settings(tmp_path, "s3://no-such-bucket/x", storage.client.meta.endpoint_url))  # type: ignore[attr-defined]
    with pytest.raises(StorageUnavailable):
        other.put("a", b"x")


@pytest.mark.parametrize("url", ["gs://bucket", "s3://", "/some/dir"])
def test_unknown_storage_urls_are_refused(tmp_path: Path, url: str):
    with pytest.raises(ValueError, match="TRAINAPI_STORAGE_URL"):
        open_storage(_settings(tmp_path, url))


def test_the_same_arrays_give_the_same_bytes():
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    y = np.array(["a", "b", "a", "b"])
    first = npz_bytes({"X": X, "y": y})
    assert npz_bytes({"X": X.copy(), "y": y.copy()}) == first
    assert npz_bytes({"X": X + 1, "y": y}) != first
    with np.load(io.BytesIO(first), allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["X"], X)
        np.testing.assert_array_equal(npz["y"], y)


def test_the_worker_cache_is_bounded_and_checks_content(tmp_path: Path):
    storage = LocalStorage(tmp_path / "remote")
    blobs = {}
    for i in range(4):
        data = bytes([i]) * 1000
        sha = hashlib.sha256(data).hexdigest()
        storage.put(Artifacts.dataset_key(sha), data)
        blobs[sha] = data
    cache = LocalCache(tmp_path / "cache", max_bytes=2500)
    for sha, data in blobs.items():
        assert cache.get(storage, Artifacts.dataset_key(sha), sha) == data
    kept = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(kept) == 2 and sum((tmp_path / "cache" / n).stat().st_size for n in kept) <= 2500
    last = list(blobs)[-1]
    storage.delete(Artifacts.dataset_key(last))
    assert cache.get(storage, Artifacts.dataset_key(last), last) == blobs[last]  # a hit: no storage read
    first = next(iter(blobs))
    storage.put(Artifacts.dataset_key(first), b"tampered")
    with pytest.raises(StorageUnavailable, match="sha256"):
        cache.get(storage, Artifacts.dataset_key(first), first)


def test_staged_objects_are_stored_whole_and_leave_nothing_behind(storage: ObjectStorage, tmp_path: Path):
    payload = os.urandom(3 * (1 << 20) + 17)
    with storage.staged("datasets") as staged:
        staged.handle.write(payload)
        storage.put_staged("datasets/a.bin", staged)
    assert storage.get("datasets/a.bin") == payload
    with pytest.raises(RuntimeError), storage.staged("datasets") as staged:  # abandoned: never stored
        staged.handle.write(b"half")
        raise RuntimeError
    assert storage.keys("datasets/") == ["datasets/a.bin"]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_a_full_disk_while_staging_is_storage_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import errno

    from store.errors import StorageFull

    local = LocalStorage(tmp_path)

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StorageFull), local.staged("datasets") as staged:
        staged.handle.write(b"x")
        monkeypatch.setattr(os, "fsync", full)
        local.put_staged("datasets/x.npz", staged)
    assert not list((tmp_path / "datasets").iterdir())


def test_sweep_removes_what_dead_or_stale_writers_left(tmp_path: Path):
    import subprocess
    import sys
    import time

    from store.storage import temporary_suffix

    local = LocalStorage(tmp_path)
    folder = tmp_path / "jobs" / "j1"
    folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    ours = folder / f".weights.npz.abc{temporary_suffix()}"
    of_the_dead = folder / f".weights.npz.def{temporary_suffix().replace(f'-{os.getpid()}.', f'-{dead_pid}.')}"
    other_host_fresh = folder / ".weights.npz.ghi.0123456789-1.tmp"
    other_host_old = folder / ".weights.npz.jkl.0123456789-2.tmp"
    legacy_old = folder / ".checkpoint-3.npz.mno.tmp"
    kept_object = folder / "weights.npz"
    for path in (ours, of_the_dead, other_host_fresh, other_host_old, legacy_old, kept_object):
        path.write_bytes(b"x")
    hour_ago = time.time() - 3600
    for path in (other_host_old, legacy_old, kept_object):
        os.utime(path, (hour_ago, hour_ago))
    removed = set(local.sweep_temporary(older_than=600))
    assert removed == {of_the_dead, other_host_old, legacy_old}
    assert ours.exists() and other_host_fresh.exists() and kept_object.exists()
