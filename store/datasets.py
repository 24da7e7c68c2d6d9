"""Uploaded datasets: arrays in storage under ``datasets/{sha256}.npz``, a record in Redis.

- ``dataset:{id}`` hash: id, tenant, name, sizes, task guess, classes,
  feature names, target name, sha256 of the stored arrays, created time.
- ``datasets:{tenant}`` sorted set: the tenant's dataset ids by creation time.
- ``blob:{sha256}`` set: the datasets whose arrays are that object. The object
  is stored once, by its content (the NPZ is written byte-for-byte the same for
  the same arrays), and deleted with the last dataset that uses it; a short
  Redis lock per object orders an upload and a delete of the same content. The
  lock expires after :data:`BLOB_LOCK_SECONDS` and a thread renews it while its
  holder works, so a holder killed hard blocks the object for seconds, not minutes.

The NPZ is written straight to a staged temporary file (in the data directory,
or a local file then one PutObject), hashed as it is written, then moved to its
content-addressed name: the arrays are the only copy of the data in memory.
A tenant's stored datasets may be held to a quota: the sum of their ``size_bytes``,
checked and added in one script.

Arrays are stored with ``allow_pickle=False`` semantics: numbers, and labels
as a unicode array, never objects. Records from before content addressing
name no object and keep theirs at ``datasets/{id}.npz``.

A dataset that a queued or running job or sweep needs cannot be deleted: the
check and the deletion are one Lua script, and a job created meanwhile looks
for its dataset again once it is stored (``api/services/jobs.py``).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import threading
import time
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import numpy as np
import redis
import redis.exceptions

import engine
from store.artifacts import Artifacts
from store.errors import Conflict, InUse, NotFound, TenantStorageQuota
from store.redis import PREFIX, key, now_iso, plausible_id

log = logging.getLogger(__name__)

_JSON_FIELDS = ("classes", "feature_names", "target_numeric", "columns", "notes")
#: How long the lock of one stored object lives unless its holder renews it (every quarter of it).
BLOB_LOCK_SECONDS = 10.0
#: How long an upload or a delete waits for another holder of the lock before a 409.
BLOB_LOCK_WAIT_SECONDS = 15.0


class BlobBusy(Conflict):
    """Another upload or delete of the same content held the object's lock for longer than we wait."""

    def __init__(self) -> None:
        super().__init__("another upload or delete of the same content is in progress; retry in a few seconds")


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes :func:`write_npz` writes, in memory (small arrays, tests)."""
    buffer = io.BytesIO()
    write_npz(buffer, arrays)
    return buffer.getvalue()


def write_npz(out: IO[bytes], arrays: dict[str, np.ndarray]) -> tuple[str, int]:
    """Write an NPZ of ``arrays`` to ``out`` (seekable, empty) and return its sha256 and size.

    The bytes depend on the arrays alone (fixed member times, no compression:
    ``np.savez`` stamps each member with the current time, so the same arrays
    would hash differently on every upload), and are those zipfile writes to a
    seekable file. zipfile writes each member's header before its data and
    rewrites it once the CRC is known; to hash in one pass, the CRC of each
    member is computed first (a pass over the array in memory) so that the final
    header is hashed in place of the provisional one, and the rewrite is checked
    to be exactly it.
    """
    sink = _HashingWriter(out)
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:  # type: ignore[call-overload]
        for name, value in arrays.items():
            array = np.asanyarray(value)
            crc = _Crc()
            np.lib.format.write_array(crc, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            sink.hold_next_write()
            with archive.open(info, "w", force_zip64=True) as member:
                final = copy.copy(info)
                final.CRC, final.file_size, final.compress_size = crc.value, crc.size, crc.size
                sink.release(final.FileHeader(zip64=True))
                np.lib.format.write_array(member, array, allow_pickle=False)
    return sink.sha256.hexdigest(), sink.size


class _Crc:
    """A write-only file that keeps the CRC-32 and the size of what is written to it."""

    def __init__(self) -> None:
        self.value = 0
        self.size = 0

    def write(self, data: bytes) -> int:
        self.value = zlib.crc32(data, self.value)
        self.size += len(data)
        return len(data)


class _HashingWriter:
    """A seekable file over ``out`` that hashes the bytes in their final order as they are written.

    Appended bytes are hashed at once, but a write held by :meth:`hold_next_write`
    (a provisional member header) is hashed as the bytes given to :meth:`release`
    instead; a later write over hashed bytes (the header's rewrite) must equal them.
    """

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha256 = hashlib.sha256()
        self.size = 0  # bytes written, and hashed (or held)
        self.position = 0
        self._hold = False
        self._held: tuple[int, int] | None = None
        self._final: dict[int, bytes] = {}
        #: Once a write failed (a full disk), the file is abandoned: zipfile's closing writes are ignored, so
        #: the error that matters is the one that leaves.
        self.failed = False

    def hold_next_write(self) -> None:
        self._hold = True

    def release(self, final: bytes) -> None:
        if self._held is None or self._held[1] != len(final) or self._held[0] + len(final) != self.size:
            raise RuntimeError("zipfile wrote its member header in an unexpected way")
        self.sha256.update(final)
        self._final[self._held[0]] = final
        self._held = None

    def write(self, data: bytes) -> int:
        data = bytes(data) if not isinstance(data, bytes) else data
        if self.failed:
            return len(data)
        if self.position < self.size:  # a rewrite: only of a header already hashed as final
            if self._final.pop(self.position, None) != data:
                raise RuntimeError("zipfile rewrote bytes other than a member header")
        elif self._hold:
            self._hold = False
            self._held = (self.position, len(data))
        else:
            if self._held is not None:
                raise RuntimeError("member data written before its header was released")
            self.sha256.update(data)
        try:
            written = self.out.write(data)
        except OSError:
            self.failed = True
            raise
        self.position += len(data)
        self.size = max(self.size, self.position)
        return written

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET:
            raise io.UnsupportedOperation("only absolute seeks")
        self.position = offset if self.failed else self.out.seek(offset)
        return self.position

    def seekable(self) -> bool:
        return True

    def flush(self) -> None:
        if not self.failed:
            self.out.flush()


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


def _renew(lock: Any, done: threading.Event) -> None:
    """Reset the lock's time to live every quarter of it until ``done``; a lock lost is logged, not raised."""
    while not done.wait(BLOB_LOCK_SECONDS / 4):
        try:
            lock.reacquire()
        except redis.exceptions.LockNotOwnedError:
            log.warning("lost the lock %s while holding it", lock.name)
            return
        except redis.RedisError as exc:  # the next renewal may get through
            log.warning("could not renew the lock %s: %s", lock.name, exc)


# KEYS: dataset, the tenant's datasets, the arrays' blob set. ARGV: dataset id, created time, quota
# (-1: none), the new dataset's size, key prefix, then the record's fields and values. Adds the
# record unless the tenant's datasets' size_bytes plus this one's exceed the quota. Returns
# {'ok', used} or {'quota', used}, used being the bytes before this one.
_INSERT = """
local used = 0
local quota = tonumber(ARGV[3])
if quota >= 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    used = used + (tonumber(redis.call('HGET', ARGV[5] .. 'dataset:' .. id, 'size_bytes')) or 0)
  end
  if used + tonumber(ARGV[4]) > quota then return {'quota', tostring(used)} end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return {'ok', tostring(used)}
"""


class DatasetStore:
    """Uploaded datasets of every tenant."""

    def __init__(self, client: redis.Redis, artifacts: Artifacts) -> None:
        # redis-py's return types are unions of every reply shape; replies here are str.
        self.r: Any = client
        self.artifacts = artifacts
        self._delete = client.register_script(_DELETE)
        self._insert = client.register_script(_INSERT)

    def create(
        self, tenant: str, dataset: engine.Dataset, summary: dict[str, Any], *, quota: int | None = None
    ) -> dict[str, Any]:
        """Store the upload ``dataset`` (its arrays and column types, under its ``name``) and return the record.

        ``summary`` carries what the caller derived (task guess, classes,
        column summaries, notes). With ``quota``, the tenant's datasets, this one
        included, may hold at most that many bytes (``size_bytes`` summed):
        TenantStorageQuota above. StorageFull when the storage has no room.
        """
        X, y, feature_names = dataset.X, dataset.y, dataset.feature_names
        dataset_id = "ds_" + uuid.uuid4().hex
        tables: dict[str, np.ndarray] = {}
        if dataset.column_types is not None:
            tables["column_types"] = np.array(dataset.column_types, dtype=str)
        for j, column_levels in enumerate(dataset.levels or ()):
            if column_levels is not None:
                tables[f"levels.{j}"] = np.array(column_levels, dtype=str)
        arrays = {"X": X, "y": y, "feature_names": np.array(feature_names, dtype=str), **tables}
        if quota is not None:  # before writing anything: the arrays are a lower bound of the object's size
            used, least = self.stored_bytes(tenant), sum(np.asanyarray(a).nbytes for a in arrays.values())
            if used + least > quota:
                raise TenantStorageQuota(used, least, quota)
        storage = self.artifacts.storage
        with storage.staged("datasets") as staged:
            sha256, size = write_npz(staged.handle, arrays)
            record = self._record(tenant, dataset, dataset_id, sha256, size, summary)
            stored = {k: json.dumps(v) if k in _JSON_FIELDS else v for k, v in record.items()}
            stored["object"] = self.artifacts.dataset_key(sha256)
            with self._blob_lock(sha256):
                created = not storage.exists(stored["object"])
                if created:
                    storage.put_staged(stored["object"], staged)
                outcome, used = self._insert(
                    keys=[key("dataset", dataset_id), key("datasets", tenant), key("blob", sha256)],
                    args=[
                        dataset_id,
                        time.time(),
                        -1 if quota is None else quota,
                        size,
                        f"{PREFIX}:",
                        *(item for pair in stored.items() for item in pair),
                    ],
                )
                if outcome == "quota":
                    if created and not self.r.scard(key("blob", sha256)):
                        storage.delete(stored["object"])
                    raise TenantStorageQuota(int(used), size, int(quota or 0))
        return record

    def stored_bytes(self, tenant: str) -> int:
        """What the tenant's datasets hold, ``size_bytes`` summed (a dataset sharing another's object counts too)."""
        ids = self.r.zrange(key("datasets", tenant), 0, -1)
        pipe = self.r.pipeline(transaction=False)
        for dataset_id in ids:
            pipe.hget(key("dataset", dataset_id), "size_bytes")
        return sum(int(v) for v in pipe.execute() if v)

    @staticmethod
    def _record(
        tenant: str, dataset: engine.Dataset, dataset_id: str, sha256: str, size: int, summary: dict[str, Any]
    ) -> dict[str, Any]:
        X, y, feature_names = dataset.X, dataset.y, dataset.feature_names
        return {
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
            "size_bytes": size,
            "created_at": now_iso(),
            **summary,
        }

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

    @contextmanager
    def _blob_lock(self, sha256: str) -> Iterator[None]:
        """Hold the object's lock, renewed by a thread while held; BlobBusy if another holder keeps it too long."""
        # thread_local=False: the renewing thread uses the holder's token.
        lock = self.r.lock(key("blob", sha256, "lock"), timeout=BLOB_LOCK_SECONDS, thread_local=False)
        if not lock.acquire(blocking=True, blocking_timeout=BLOB_LOCK_WAIT_SECONDS):
            raise BlobBusy()
        done = threading.Event()
        renewer = threading.Thread(target=_renew, args=(lock, done), name=f"blob-lock-{sha256[:8]}", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join()
            try:
                lock.release()
            except redis.exceptions.LockNotOwnedError:
                log.warning("the lock of stored object %s expired while held (Redis unreachable for a while?)", sha256)

    @staticmethod
    def _decode(raw: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = dict(raw)
        for name in _JSON_FIELDS:
            value = out.get(name)
            out[name] = json.loads(value) if isinstance(value, str) else value
        for name in ("n_samples", "n_features", "size_bytes"):
            out[name] = int(out[name])
        return out
