"""Where the bytes live: datasets, checkpoints, weights and finished jobs' metrics.

One small interface, in the manner of MLflow's artifact repositories, with two
backends chosen by ``TRAINAPI_STORAGE_URL``:

- :class:`LocalStorage` (unset): files under the data directory, each written to a
  temporary name, flushed to disk and renamed into place.
- :class:`S3Storage` (``s3://bucket/prefix``): objects in S3-compatible storage
  through boto3. One ``PutObject`` per object: S3 makes an object visible only
  once it is complete, so readers never see part of one.

Either way a key is written once, whole, and never rewritten with other bytes
(attempt-scoped or content-addressed names), so no reader sees a partial or a
changing object. An object too large to build in memory is written to a local
temporary file first (:meth:`ObjectStorage.staged`, then :meth:`~ObjectStorage.put_staged`).

Temporary files of the data directory are named ``.{name}.{random}.{writer}.tmp``,
``writer`` being this host's tag and the writing process's id. A writer killed
hard leaves its file behind; :meth:`LocalStorage.sweep_temporary` (run when the
API starts) removes those of dead processes of this host at once and, since
other hosts may share the directory, any other that has not been written to for
:data:`STALE_TEMPORARY_SECONDS` (every writer writes its file in one go, so a
file untouched that long has no writer left). Storage failures leave as :class:`StorageUnavailable` (the API
answers 503); a missing object as :class:`ObjectMissing`.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import socket
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from store.errors import NotFound, StorageFull, StoreError

log = logging.getLogger(__name__)

#: Size of the pieces a download is streamed in.
CHUNK_BYTES = 1 << 20
#: A temporary file of another host (or of a process whose liveness cannot be told) not written to for
#: this long is a killed writer's leftover.
STALE_TEMPORARY_SECONDS = 600.0


class StorageUnavailable(StoreError):
    """The object storage did not answer (or refused) in time; retry later."""


class ObjectMissing(NotFound):
    """No object under this key."""

    def __init__(self, key: str) -> None:
        super().__init__("stored object", key)


@dataclass
class StoredObject:
    """An object being read: its size, and its bytes in chunks (read lazily, in order, once)."""

    size: int
    chunks: Iterator[bytes]


#: The errors of a write that found no room: the disk, or the user's quota on it.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def no_space_is_storage_full(what: str) -> Iterator[None]:
    """Turn an OSError of a full disk into :class:`StorageFull`; any other OSError passes through."""
    try:
        yield
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise StorageFull(f"no space left for {what}") from exc
        raise


def _host_tag() -> str:
    """This host, and its PID namespace (containers sharing a volume may share a host name, not PIDs)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return hashlib.sha256(f"{socket.gethostname()}/{namespace}".encode()).hexdigest()[:10]


_HOST = _host_tag()


def temporary_suffix() -> str:
    """The end of a temporary file's name: who writes it (this host, this process), then ``.tmp``."""
    return f".{_HOST}-{os.getpid()}.tmp"


def _writer_is_dead(name: str) -> bool:
    """Whether the temporary file ``name`` was written by a process of this host that no longer runs."""
    host, _, pid = name[: -len(".tmp")].rsplit(".", 1)[-1].partition("-")
    if host != _HOST or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no partial file is ever visible (StorageFull on a full disk)."""
    with no_space_is_storage_full(path.name):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=temporary_suffix())
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in (".", ".."):
        raise ValueError(f"not a storage key: {key!r}")
    return key


class StagedFile:
    """A local temporary file an object is written to before it is stored (see :meth:`ObjectStorage.staged`)."""

    def __init__(self, handle: IO[bytes], path: Path | None) -> None:
        #: Open for writing (and reading back), positioned at the start.
        self.handle = handle
        #: Its name, or None for an unnamed file (gone with its process).
        self.path = path


class ObjectStorage(ABC):
    """Named, immutable blobs. Keys are ``/``-separated relative names."""

    url: str

    @abstractmethod
    def staged(self, directory: str) -> AbstractContextManager[StagedFile]:
        """A temporary file for an object to be stored under ``directory`` (its key not known yet).

        The file is removed on leaving, unless :meth:`put_staged` moved it into place; a
        full disk while writing it is :class:`StorageFull`.
        """

    @abstractmethod
    def put_staged(self, key: str, staged: StagedFile) -> None:
        """Store the staged file's content under ``key``, in one piece (as :meth:`put`)."""

    def free_bytes(self) -> int | None:
        """Free space where objects are written, or None when the backend has no such limit to tell."""
        return None

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` in one piece: readers see the whole object or none."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; ObjectMissing when there is none."""

    @abstractmethod
    def open(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> StoredObject:
        """The object as a stream of chunks, for responses that must not hold it whole."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object if it exists."""

    @abstractmethod
    def keys(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix``."""

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object whose key starts with ``prefix``."""
        for key in self.keys(prefix):
            self.delete(key)


class LocalStorage(ObjectStorage):
    """Files under a directory; ``put`` is temp file + fsync + rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put(self, key: str, data: bytes) -> None:
        write_atomic(self.path(key), data)

    @contextmanager
    def staged(self, directory: str) -> Iterator[StagedFile]:
        """A named temporary file in ``directory`` itself, so that storing it is a rename."""
        folder = self.path(directory)
        with no_space_is_storage_full(f"a new object in {directory}"):
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=folder, prefix=".staged.", suffix=temporary_suffix())
            path = Path(name)
            try:
                with os.fdopen(fd, "w+b") as handle:
                    yield StagedFile(handle, path)
            finally:
                path.unlink(missing_ok=True)

    def put_staged(self, key: str, staged: StagedFile) -> None:
        if staged.path is None:  # pragma: no cover - this backend's staged files are named
            raise ValueError("a staged file of LocalStorage has a name")
        target = self.path(key)
        with no_space_is_storage_full(target.name):
            staged.handle.flush()
            os.fsync(staged.handle.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged.path, target)

    def free_bytes(self) -> int | None:
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free

    def sweep_temporary(self, older_than: float = STALE_TEMPORARY_SECONDS) -> list[Path]:
        """Remove the temporary files that killed writers left (module docstring); return what was removed.

        A file goes when its writer was a process of this host that is gone, or when
        nothing has written to it for ``older_than`` seconds.
        """
        removed: list[Path] = []
        cutoff = time.time() - older_than
        for folder, _, names in os.walk(self.root):
            for name in names:
                if not (name.startswith(".") and name.endswith(".tmp")):
                    continue
                path = Path(folder) / name
                try:
                    stale = _writer_is_dead(name) or path.stat().st_mtime < cutoff
                    if stale:
                        path.unlink()
                        removed.append(path)
                except FileNotFoundError:  # its writer finished meanwhile
                    continue
        if removed:
            log.info("removed %d temporary files left by interrupted writers under %s", len(removed), self.root)
        return removed

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    def open(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> StoredObject:
        try:
            handle = self.path(key).open("rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None

        def chunks() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(chunk_bytes):
                    yield chunk

        return StoredObject(os.fstat(handle.fileno()).st_size, chunks())

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return []
        found = (p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in found if k.startswith(prefix) and not k.rsplit("/", 1)[-1].startswith("."))

    def delete_prefix(self, prefix: str) -> None:
        if prefix.endswith("/"):
            shutil.rmtree(self.path(prefix.rstrip("/")), ignore_errors=True)
        else:
            super().delete_prefix(prefix)


class S3Storage(ObjectStorage):
    """Objects under ``prefix`` in an S3 bucket (AWS, MinIO, Ceph, … via ``endpoint_url``).

    Credentials and region come from boto3's standard chain (environment,
    config files, container and instance roles). Timeouts and retries are
    explicit so that an unreachable store fails a request within a known time.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 4,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            # A custom endpoint (MinIO, a test server) is usually an address, not a wildcard DNS name.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        session = boto3.session.Session()
        region = session.region_name or ("us-east-1" if endpoint_url else None)
        self.client: Any = session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)

    def _name(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def put(self, key: str, data: bytes) -> None:
        with _translated(key):
            # One PutObject (never a multipart upload made of pieces); boto3 adds a CRC32 checksum,
            # so a body damaged on the way is refused instead of stored.
            self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)

    @contextmanager
    def staged(self, directory: str) -> Iterator[StagedFile]:
        """An unnamed local temporary file (the system's temporary directory): nothing to clean up after a crash."""
        with no_space_is_storage_full(f"a new object in {directory}"), tempfile.TemporaryFile() as handle:
            yield StagedFile(handle, None)

    def put_staged(self, key: str, staged: StagedFile) -> None:
        handle = staged.handle
        handle.flush()
        size = handle.seek(0, os.SEEK_END)
        handle.seek(0)
        with _translated(key):
            # One PutObject of the whole file (never a multipart upload made of pieces).
            self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=handle, ContentLength=size)

    def get(self, key: str) -> bytes:
        with _translated(key):
            body = self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

    def open(self, key: str, chunk_bytes: int = CHUNK_BYTES) -> StoredObject:
        with _translated(key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        body = response["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                with _translated(key):
                    yield from body.iter_chunks(chunk_bytes)
            finally:
                body.close()

        return StoredObject(int(response["ContentLength"]), chunks())

    def exists(self, key: str) -> bool:
        try:
            with _translated(key):
                self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ObjectMissing:
            return False
        return True

    def delete(self, key: str) -> None:
        with _translated(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        with _translated(prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                found += [item["Key"][len(self.prefix) :] for item in page.get("Contents", [])]
        return found

    def delete_prefix(self, prefix: str) -> None:
        names = [self.prefix + k for k in self.keys(prefix)]
        with _translated(prefix):
            for start in range(0, len(names), 1000):
                batch = [{"Key": name} for name in names[start : start + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


@contextmanager
def _translated(key: str) -> Iterator[None]:
    """Turn botocore's exceptions into the store's: a missing key, or the storage being unavailable."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404", "NotFound"):
            raise ObjectMissing(key) from None
        raise StorageUnavailable(f"object storage refused the request ({code or exc})") from exc
    except (BotoCoreError, OSError) as exc:
        raise StorageUnavailable(f"object storage unreachable: {exc}") from exc


class StorageSettings(Protocol):
    """The settings :func:`open_storage` reads (``trainapi.settings.Settings`` has them)."""

    data_dir: Path
    storage_url: str | None
    s3_endpoint_url: str | None
    s3_connect_timeout: float
    s3_read_timeout: float
    s3_max_attempts: int


def open_storage(settings: StorageSettings) -> ObjectStorage:
    """The backend ``storage_url`` names: unset or empty for the data directory, ``s3://bucket/prefix`` for S3."""
    url = settings.storage_url
    if not url:
        return LocalStorage(settings.data_dir)
    if url.startswith("s3://"):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"TRAINAPI_STORAGE_URL={url!r}: no bucket (expected s3://bucket/prefix)")
        return S3Storage(
            bucket,
            prefix,
            endpoint_url=settings.s3_endpoint_url or None,
            connect_timeout=settings.s3_connect_timeout,
            read_timeout=settings.s3_read_timeout,
            max_attempts=settings.s3_max_attempts,
        )
    raise ValueError(f"TRAINAPI_STORAGE_URL={url!r}: expected s3://bucket/prefix, or unset for the data directory")


class LocalCache:
    """A bounded directory of content-addressed objects (datasets by sha256) on this host.

    Used by workers in front of remote storage: a hit is a local read; a miss
    reads the object, checks its sha256, and keeps it, evicting the least
    recently used files beyond ``max_bytes``. Several processes may share the
    directory (files appear by atomic rename; a file evicted under a reader is
    simply fetched again).
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    def get(self, storage: ObjectStorage, key: str, sha256: str) -> bytes:
        path = self.directory / f"{sha256}{Path(key).suffix}"
        try:
            data = path.read_bytes()
            os.utime(path)
            return data
        except FileNotFoundError:
            pass
        data = storage.get(key)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise StorageUnavailable(f"stored object {key!r} does not match its sha256")
        if len(data) <= self.max_bytes:
            write_atomic(path, data)
            self._evict()
        return data

    def _evict(self) -> None:
        files = []
        for path in self.directory.iterdir():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if path.is_file() and not path.name.startswith("."):
                files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files, key=lambda item: item[0]):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
