"""Uploaded datasets: arrays in ``datasets/{id}.npz`` under the data directory, a record in Redis.

- ``dataset:{id}`` hash: id, tenant, name, sizes, task guess, classes,
  feature names, target name, sha256 of the stored arrays, created time.
- ``datasets:{tenant}`` sorted set: the tenant's dataset ids by creation time.

Arrays are stored with ``allow_pickle=False`` semantics: numbers, and labels
as a unicode array, never objects.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from typing import Any

import numpy as np
import redis

from store.artifacts import Artifacts, write_atomic
from store.errors import NotFound
from store.jobs import now_iso
from store.redis import key, plausible_id

_JSON_FIELDS = ("classes", "feature_names", "target_numeric")


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
        buffer = io.BytesIO()
        np.savez(buffer, X=X, y=y, feature_names=np.array(feature_names, dtype=str))
        blob = buffer.getvalue()
        write_atomic(self.artifacts.dataset_path(dataset_id), blob)
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
            "sha256": hashlib.sha256(blob).hexdigest(),
            "size_bytes": len(blob),
            "created_at": now_iso(),
            **summary,
        }
        stored = {k: json.dumps(v) if k in _JSON_FIELDS else v for k, v in record.items()}
        pipe = self.r.pipeline()
        pipe.hset(key("dataset", dataset_id), mapping=stored)
        pipe.zadd(key("datasets", tenant), {dataset_id: time.time()})
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
        self.get(tenant, dataset_id)
        pipe = self.r.pipeline()
        pipe.delete(key("dataset", dataset_id))
        pipe.zrem(key("datasets", tenant), dataset_id)
        pipe.execute()
        self.artifacts.delete_dataset(dataset_id)

    def load_arrays(self, dataset_id: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """X, y and feature names of a stored dataset."""
        path = self.artifacts.dataset_path(dataset_id)
        if not path.exists():
            raise NotFound("dataset", dataset_id)
        with np.load(path, allow_pickle=False) as npz:
            return npz["X"], npz["y"], tuple(str(n) for n in npz["feature_names"])

    @staticmethod
    def _decode(raw: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = dict(raw)
        for name in _JSON_FIELDS:
            value = out.get(name)
            out[name] = json.loads(value) if isinstance(value, str) else value
        for name in ("n_samples", "n_features", "size_bytes"):
            out[name] = int(out[name])
        return out
