"""Uploaded datasets: arrays in storage under ``datasets/{sha256}.npz``, a record in Redis.

- ``dataset:{id}`` hash: id, tenant, name, sizes, task guess, classes,
  feature names, target name, sha256 of the stored arrays, created time.
- ``datasets:{tenant}`` sorted set: the tenant's dataset ids by creation time.
- ``blob:{sha256}`` set: the datasets whose arrays are that object. The object
  is stored once, by its content (the NPZ is written byte-for-byte the same for
  the same arrays), and deleted with the last dataset that uses it; a short
  Redis lock per object orders an upload and a delete of the same content.

Arrays are stored with ``allow_pickle=False`` semantics: numbers, and labels
as a unicode array, never objects. Records from before content addressing
name no object and keep theirs at ``datasets/{id}.npz``.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
import zipfile
from typing import Any

import numpy as np
import redis

from store.artifacts import Artifacts
from store.errors import NotFound
from store.jobs import now_iso
from store.redis import key, plausible_id

_JSON_FIELDS = ("classes", "feature_names", "target_numeric")
#: How long an upload or a delete may hold the lock of one stored object (a slow PUT of a large file).
BLOB_LOCK_SECONDS = 300


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An NPZ of ``arrays`` whose bytes depend on the arrays alone (fixed member times, no compression).

    ``np.savez`` stamps each member with the current time, so the same arrays
    would hash differently on every upload.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


class DatasetStore:
    """Uploaded datasets of every tenant."""

    def __init__(self, client: redis.Redis, artifacts: Artifacts) -> None:
        # redis-py's return types are unions of every reply shape; replies here are str.
        self.r: Any = client
        self.artifacts = artifacts

    def create(
        self,
        tenant: str,
        name: str,
        X: np.ndarray,
        y: np.ndarray,
        feature_names: tuple[str, ...],
        target_name: str,
        summary: dict[str, Any],
    ) -> dict[str, Any]:
        """Store arrays X (n_samples, n_features) and y (n_samples,) and return the record.

        ``summary`` carries what the caller derived (task guess, classes).
        """
        dataset_id = "ds_" + uuid.uuid4().hex
        blob = npz_bytes({"X": X, "y": y, "feature_names": np.array(feature_names, dtype=str)})
        sha256 = hashlib.sha256(blob).hexdigest()
        record: dict[str, Any] = {
            "id": dataset_id,
            "tenant": tenant,
            "name": name,
            "source": "upload",
            "n_samples": int(X.shape[0]),
            "n_features": int(X.shape[1]),
            "feature_names": list(feature_names),
            "target_name": target_name,
            "target_numeric": y.dtype.kind in "iuf",
            "sha256": sha256,
            "size_bytes": len(blob),
            "created_at": now_iso(),
            **summary,
        }
        stored = {k: json.dumps(v) if k in _JSON_FIELDS else v for k, v in record.items()}
        stored["object"] = self.artifacts.dataset_key(sha256)
        with self._blob_lock(sha256):
            if not self.artifacts.storage.exists(stored["object"]):
                self.artifacts.storage.put(stored["object"], blob)
            pipe = self.r.pipeline()
            pipe.hset(key("dataset", dataset_id), mapping=stored)
            pipe.zadd(key("datasets", tenant), {dataset_id: time.time()})
            pipe.sadd(key("blob", sha256), dataset_id)
            pipe.execute()
        return record

    def get(self, tenant: str, dataset_id: str) -> dict[str, Any]:
        """The record, or NotFound (also when it belongs to another tenant)."""
        raw = self.r.hgetall(key("dataset", dataset_id)) if plausible_id(dataset_id, "ds_") else {}
        if not raw or raw.get("tenant") != tenant:
            raise NotFound("dataset", dataset_id)
        return self._decode(raw)

    def list(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's uploads, newest first."""
        ids = self.r.zrevrange(key("datasets", tenant), 0, -1)
        pipe = self.r.pipeline()
        for dataset_id in ids:
            pipe.hgetall(key("dataset", dataset_id))
        return [self._decode(raw) for raw in pipe.execute() if raw]

    def delete(self, tenant: str, dataset_id: str) -> None:
        """Remove the record, and the stored arrays unless another dataset has the same ones."""
        record = self.get(tenant, dataset_id)
        with self._blob_lock(record["sha256"]):
            pipe = self.r.pipeline()
            pipe.delete(key("dataset", dataset_id))
            pipe.zrem(key("datasets", tenant), dataset_id)
            pipe.srem(key("blob", record["sha256"]), dataset_id)
            pipe.scard(key("blob", record["sha256"]))
            remaining = pipe.execute()[-1]
            if remaining == 0:
                self.artifacts.storage.delete(self._object_key(record))

    def load_arrays(self, dataset_id: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """X, y and feature names of a stored dataset."""
        raw = self.r.hgetall(key("dataset", dataset_id))
        if not raw:
            raise NotFound("dataset", dataset_id)
        try:
            blob = self.artifacts.read_dataset(self._object_key(raw), raw["sha256"])
        except NotFound:
            raise NotFound("dataset", dataset_id) from None
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            return npz["X"], npz["y"], tuple(str(n) for n in npz["feature_names"])

    @staticmethod
    def _object_key(record: dict[str, Any]) -> str:
        # Records from before content addressing name no object: theirs is datasets/{id}.npz.
        return str(record.get("object") or f"datasets/{record['id']}.npz")

    def _blob_lock(self, sha256: str) -> Any:
        return self.r.lock(key("blob", sha256, "lock"), timeout=BLOB_LOCK_SECONDS, blocking_timeout=60)

    @staticmethod
    def _decode(raw: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = dict(raw)
        for name in _JSON_FIELDS:
            value = out.get(name)
            out[name] = json.loads(value) if isinstance(value, str) else value
        for name in ("n_samples", "n_features", "size_bytes"):
            out[name] = int(out[name])
        return out
