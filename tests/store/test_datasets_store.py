"""The dataset store: the stored NPZ's bytes, dedup, the tenant quota and the object locks (a real redis-server)."""

from __future__ import annotations

import hashlib
import io
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import engine
from store import datasets as datasets_module
from store.artifacts import Artifacts
from store.datasets import BlobBusy, npz_bytes, write_npz
from store.errors import TenantStorageQuota
from store.redis import key
from store.storage import LocalStorage
from store.stores import Stores
from trainapi import processes


def reference_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """What the store wrote before it streamed (zipfile into memory): the content addresses of existing objects."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


ARRAYS = [
    {"X": np.arange(12.0).reshape(4, 3), "y": np.array(["a", "b", "a", "b"]), "feature_names": np.array(list("pqr"))},
    {
        "X": np.asfortranarray(np.random.default_rng(0).normal(size=(300, 7))),
        "y": np.zeros(300),
        "feature_names": np.array([f"c{i}" for i in range(7)]),
        "column_types": np.array(["numeric"] * 6 + ["categorical"]),
        "levels.6": np.array(["x", "y", "z"]),
    },
    {"X": np.random.default_rng(1).normal(size=(2500, 900)), "y": np.ones(2500)},  # 18 MB: past the 16 MiB chunks
]


@pytest.mark.parametrize("arrays", ARRAYS, ids=["labels", "fortran-and-levels", "large"])
def test_streamed_npz_has_the_old_bytes_and_hash(arrays: dict[str, np.ndarray]):
    expected = reference_npz(arrays)
    out = io.BytesIO()
    sha256, size = write_npz(out, arrays)
    assert out.getvalue() == expected
    assert (sha256, size) == (hashlib.sha256(expected).hexdigest(), len(expected))
    assert npz_bytes(arrays) == expected


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    proc, url = processes.start_redis(tmp_path / "redis")
    try:
        yield Stores.open(url, Artifacts(LocalStorage(tmp_path / "data")))
    finally:
        processes.stop(proc)


def dataset(seed: int, n: int = 50) -> engine.Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return engine.Dataset("d", X, (X[:, 0] > 0).astype(float), ("a", "b", "c"), "t", None, "uploaded")


def test_same_arrays_are_one_object_and_no_temporary_file_stays(stores: Stores, tmp_path: Path):
    first = stores.datasets.create("t1", dataset(0), {})
    second = stores.datasets.create("t2", dataset(0), {})
    assert first["sha256"] == second["sha256"] and first["id"] != second["id"]
    files = sorted(p.name for p in (tmp_path / "data" / "datasets").iterdir())
    assert files == [f"{first['sha256']}.npz"]
    loaded = stores.datasets.load("t2", second["id"])
    np.testing.assert_array_equal(loaded.X, dataset(0).X)


def test_tenant_quota_counts_each_dataset_and_deletes_a_refused_new_object(stores: Stores, tmp_path: Path):
    one = stores.datasets.create("t1", dataset(0), {}, quota=10_000)
    size = one["size_bytes"]
    assert stores.datasets.stored_bytes("t1") == size
    with pytest.raises(TenantStorageQuota) as info:
        stores.datasets.create("t1", dataset(1), {}, quota=size + size // 2)
    assert info.value.used == size and info.value.limit == size + size // 2
    assert sorted(p.name for p in (tmp_path / "data" / "datasets").iterdir()) == [f"{one['sha256']}.npz"]
    stores.datasets.create("t2", dataset(1), {}, quota=size + size // 2)  # another tenant's budget
    stores.datasets.delete("t1", one["id"])
    stores.datasets.create("t1", dataset(1), {}, quota=size + size // 2)


def test_a_held_lock_is_a_conflict_and_an_abandoned_one_expires(stores: Stores, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(datasets_module, "BLOB_LOCK_WAIT_SECONDS", 0.5)
    sha256 = "ab" * 32
    lock_key = key("blob", sha256, "lock")
    stores.redis.set(lock_key, "someone-alive", px=60_000)
    with pytest.raises(BlobBusy, match="another upload or delete"), stores.datasets._blob_lock(sha256):
        pass
    # A holder killed hard leaves its lock with at most BLOB_LOCK_SECONDS to live.
    stores.redis.set(lock_key, "someone-dead", px=int(datasets_module.BLOB_LOCK_SECONDS * 1000))
    monkeypatch.setattr(datasets_module, "BLOB_LOCK_WAIT_SECONDS", datasets_module.BLOB_LOCK_SECONDS + 2)
    started = time.monotonic()
    with stores.datasets._blob_lock(sha256):
        pass
    assert time.monotonic() - started <= datasets_module.BLOB_LOCK_SECONDS + 1


def test_a_held_lock_is_renewed_past_its_time_to_live(stores: Stores, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(datasets_module, "BLOB_LOCK_SECONDS", 0.4)
    sha256 = "cd" * 32
    lock_key = key("blob", sha256, "lock")
    with stores.datasets._blob_lock(sha256):
        time.sleep(1.2)  # three times the lock's life: only renewals keep it
        assert stores.redis.exists(lock_key)
        assert 0 < stores.redis.pttl(lock_key) <= 400
    assert not stores.redis.exists(lock_key)
    assert not [t for t in threading.enumerate() if t.name.startswith("blob-lock-")]


def test_a_full_disk_while_writing_the_npz_leaves_as_the_disk_error():
    import errno

    class Full(io.BytesIO):
        def write(self, data: bytes) -> int:  # type: ignore[override]
            if self.tell() + len(data) > 5000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    with pytest.raises(OSError) as info:
        write_npz(Full(), {"X": np.zeros((100, 100)), "y": np.zeros(100)})
    assert info.value.errno == errno.ENOSPC
