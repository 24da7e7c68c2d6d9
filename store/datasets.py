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

A dataset that a queued or running job or sweep needs cannot be deleted: the
check and the deletion are one Lua script, and a job created meanwhile looks
for its dataset again once it is stored (``api/services/jobs.py``).
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

import engine
from store.artifacts import Artifacts
from store.errors import InUse, NotFound
from store.redis import PREFIX, key, now_iso, plausible_id

_JSON_FIELDS = ("classes", "feature_names", "target_numeric", "columns", "notes")
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


# KEYS: dataset, the tenant's datasets, the tenant's active jobs, running sweeps, the arrays' blob set.
# ARGV: dataset id, tenant, key prefix. Deletes the record unless a queued or running job of the
# tenant or a running sweep of the tenant names the dataset. Returns {'in_use', ids...} or
# {'deleted', the number of datasets left that share the arrays}.
_DELETE = """
local users = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local summary = redis.call('HGET', ARGV[3] .. 'job:' .. id, 'dataset')
  if summary and summary ~= '' and cjson.decode(summary)['id'] == ARGV[1] then table.insert(users, id) end
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local sweep = ARGV[3] .. 'sweep:' .. id
  if redis.call('HGET', sweep, 'tenant') == ARGV[2] then
    local spec = redis.call('HGET', sweep, 'spec')
    if spec and cjson.decode(spec)['base']['dataset'] == ARGV[1] then table.insert(users, id) end
  end
end
if #users > 0 then return {'in_use', unpack(users)} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[5], ARGV[1])
return {'deleted', tostring(redis.call('SCARD', KEYS[5]))}
"""


class DatasetStore:
    """Uploaded datasets of every tenant."""

    def __init__(self, client: redis.Redis, artifacts: Artifacts) -> None:
        # redis-py's return types are unions of every reply shape; replies here are str.
        self.r: Any = client
        self.artifacts = artifacts
        self._delete = client.register_script(_DELETE)

    def create(self, tenant: str, dataset: engine.Dataset, summary: dict[str, Any]) -> dict[str, Any]:
        """Store the upload ``dataset`` (its arrays and column types, under its ``name``) and return the record.

        ``summary`` carries what the caller derived (task guess, classes,
        column summaries, notes).
        """
        X, y, feature_names = dataset.X, dataset.y, dataset.feature_names
        dataset_id = "ds_" + uuid.uuid4().hex
        tables: dict[str, np.ndarray] = {}
        if dataset.column_types is not None:
            tables["column_types"] = np.array(dataset.column_types, dtype=str)
        for j, column_levels in enumerate(dataset.levels or ()):
            if column_levels is not None:
                tables[f"levels.{j}"] = np.array(column_levels, dtype=str)
        blob = npz_bytes({"X": X, "y": y, "feature_names": np.array(feature_names, dtype=str), **tables})
        sha256 = hashlib.sha256(blob).hexdigest()
        record: dict[str, Any] = {
            "id": dataset_id,
            "tenant": tenant,
            "name": dataset.name,
            "source": "upload",
            "n_samples": int(X.shape[0]),
            "n_features": int(X.shape[1]),
            "feature_names": list(feature_names),
            "target_name": dataset.target_name,
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

    def exists(self, tenant: str, dataset_id: str) -> bool:
        """Whether the tenant has the upload ``dataset_id`` (one HGET)."""
        return plausible_id(dataset_id, "ds_") and self.r.hget(key("dataset", dataset_id), "tenant") == tenant

    def list(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's uploads, newest first."""
        ids = self.r.zrevrange(key("datasets", tenant), 0, -1)
        pipe = self.r.pipeline()
        for dataset_id in ids:
            pipe.hgetall(key("dataset", dataset_id))
        return [self._decode(raw) for raw in pipe.execute() if raw]

    def delete(self, tenant: str, dataset_id: str) -> None:
        """Remove the record, and the stored arrays unless another dataset has the same ones.

        InUse (naming them) while the tenant's queued or running jobs or running sweeps need the dataset.
        """
        record = self.get(tenant, dataset_id)
        with self._blob_lock(record["sha256"]):
            outcome, *rest = self._delete(
                keys=[
                    key("dataset", dataset_id),
                    key("datasets", tenant),
                    key("active", tenant),
                    key("sweeps", "running"),
                    key("blob", record["sha256"]),
                ],
                args=[dataset_id, tenant, f"{PREFIX}:"],
            )
            if outcome == "in_use":
                raise InUse("dataset", dataset_id, sorted(rest))
            if int(rest[0]) == 0:
                self.artifacts.storage.delete(self._object_key(record))

    def load(self, tenant: str, dataset_id: str) -> engine.Dataset:
        """The stored upload as a dataset: NotFound when the record or the arrays are gone."""
        info = self.get(tenant, dataset_id)
        try:
            blob = self.artifacts.read_dataset(self._object_key(info), info["sha256"])
        except NotFound:
            raise NotFound("dataset", dataset_id) from None
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            names = tuple(str(n) for n in npz["feature_names"])
            column_types = tuple(str(k) for k in npz["column_types"]) if "column_types" in npz.files else None
            levels = None
            if any(member.startswith("levels.") for member in npz.files):
                levels = tuple(
                    tuple(str(v) for v in npz[f"levels.{j}"]) if f"levels.{j}" in npz.files else None
                    for j in range(len(names))
                )
            X, y = npz["X"], npz["y"]
        return engine.Dataset(info["name"], X, y, names, info["target_name"], None, "uploaded", column_types, levels)

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
