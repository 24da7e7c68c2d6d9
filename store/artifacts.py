"""The names of stored objects, over whichever storage backend is configured.

- ``datasets/{sha256}.npz``: an uploaded dataset's arrays, named by their content,
  so the same upload is stored once however often it is sent.
- ``jobs/{id}/attempt-{n}/checkpoint-{epoch}.npz`` and ``…/weights.{fmt}``: what
  attempt ``n`` of a job wrote. Each attempt writes only its own names, and the
  job record (updated only by the attempt that owns the job) says which
  attempt's checkpoint and weights are the real ones: a stale attempt's
  objects are never read.
- ``jobs/{id}/attempt-{n}/weights-{best,last}.npz``: a cancelled job's best and
  last completed epochs, written by attempt ``n``.
- ``jobs/{id}/attempt-{n}/path.json``: a path job's regularization path (per λ its statistics and
  coefficients), beside the weights of its selected point.
- ``jobs/{id}/metrics.json``: a finished job's per-epoch metrics, moved out of Redis.

Everything of a job lies under ``jobs/{id}/`` and goes with it.
"""

from __future__ import annotations

import re

from engine import export
from store.storage import LocalCache, LocalStorage, ObjectStorage, StorageSettings, open_storage

_CHECKPOINT = re.compile(r"attempt-\d+/checkpoint-\d+\.npz$")


class Artifacts:
    """Object names of datasets and jobs, and the storage holding them.

    ``cache`` (workers in front of remote storage) keeps datasets on the local disk, by sha256.
    """

    def __init__(self, storage: ObjectStorage, cache: LocalCache | None = None) -> None:
        self.storage = storage
        self.cache = cache

    @classmethod
    def open(cls, settings: StorageSettings, *, cache_bytes: int = 0) -> Artifacts:
        """The configured storage; with remote storage and ``cache_bytes``, a dataset cache in the data directory."""
        storage = open_storage(settings)
        cache = None
        if cache_bytes and not isinstance(storage, LocalStorage):
            cache = LocalCache(settings.data_dir / "cache" / "datasets", cache_bytes)
        return cls(storage, cache)

    @staticmethod
    def dataset_key(sha256: str) -> str:
        return f"datasets/{sha256}.npz"

    @staticmethod
    def job_prefix(job_id: str) -> str:
        return f"jobs/{job_id}/"

    def weights_key(self, job_id: str, attempt: int, fmt: str) -> str:
        """Weights written by ``attempt``; the job record names the attempt whose objects count."""
        if fmt not in export.FORMATS:
            raise ValueError(f"unknown weights format {fmt!r}")
        return f"{self.job_prefix(job_id)}attempt-{attempt}/weights.{fmt}"

    def checkpoint_weights_key(self, job_id: str, attempt: int, which: str) -> str:
        """A cancelled job's weights (npz) of its ``best`` or ``last`` completed epoch, written by ``attempt``."""
        if which not in ("best", "last"):
            raise ValueError(f"unknown checkpoint {which!r}")
        return f"{self.job_prefix(job_id)}attempt-{attempt}/weights-{which}.npz"

    def path_key(self, job_id: str, attempt: int) -> str:
        """A path job's path (JSON: per λ its statistics and coefficients), written by ``attempt``."""
        return f"{self.job_prefix(job_id)}attempt-{attempt}/path.json"

    def checkpoint_key(self, job_id: str, attempt: int, epoch: int) -> str:
        """Training state after ``epoch``, written by ``attempt``."""
        return f"{self.job_prefix(job_id)}attempt-{attempt}/checkpoint-{epoch}.npz"

    def metrics_key(self, job_id: str) -> str:
        """A finished job's metrics list (JSON array, one record per epoch)."""
        return f"{self.job_prefix(job_id)}metrics.json"

    def read_dataset(self, key: str, sha256: str) -> bytes:
        """A dataset's bytes, through the local cache when there is one."""
        if self.cache is None:
            return self.storage.get(key)
        return self.cache.get(self.storage, key, sha256)

    def delete_job(self, job_id: str) -> None:
        """Every object of the job, of every attempt."""
        self.storage.delete_prefix(self.job_prefix(job_id))

    def delete_leftovers(self, job_id: str, keep_attempt: int | None) -> None:
        """Checkpoints of every attempt, and everything of attempts other than ``keep_attempt``.

        Called once the job has finished: only the final weights and the metrics stay.
        """
        prefix = self.job_prefix(job_id)
        for key in self.storage.keys(prefix):
            rest = key[len(prefix) :]
            other_attempt = rest.startswith("attempt-") and not rest.startswith(f"attempt-{keep_attempt}/")
            if _CHECKPOINT.match(rest) or other_attempt:
                self.storage.delete(key)
