"""Files under the data directory, written atomically.

A file is written to a temporary name in its final directory, flushed to disk
and renamed into place, so a reader sees either nothing or the whole file,
whatever happens to the writer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

WEIGHT_FORMATS = ("npz", "safetensors", "json")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no partial file is ever visible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Artifacts:
    """Paths of a data directory: ``datasets/{id}.npz`` and ``jobs/{id}/attempt-{n}/…``.

    Each attempt of a job writes into its own directory, and the job record
    (updated only by the attempt that owns the job) says which attempt's
    checkpoint and weights are the real ones: a stale attempt's files are
    never read.
    """

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir)

    def dataset_path(self, dataset_id: str) -> Path:
        return self.root / "datasets" / f"{dataset_id}.npz"

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def weights_path(self, job_id: str, attempt: int, fmt: str) -> Path:
        """Weights written by ``attempt``; the job record names the attempt whose files count."""
        if fmt not in WEIGHT_FORMATS:
            raise ValueError(f"unknown weights format {fmt!r}")
        return self.job_dir(job_id) / f"attempt-{attempt}" / f"weights.{fmt}"

    def checkpoint_weights_path(self, job_id: str, attempt: int, which: str) -> Path:
        """A cancelled job's weights (npz) of its ``best`` or ``last`` completed epoch, written by ``attempt``."""
        if which not in ("best", "last"):
            raise ValueError(f"unknown checkpoint {which!r}")
        return self.job_dir(job_id) / f"attempt-{attempt}" / f"weights-{which}.npz"

    def checkpoint_path(self, job_id: str, attempt: int, epoch: int) -> Path:
        """Training state after ``epoch``, written by ``attempt``."""
        return self.job_dir(job_id) / f"attempt-{attempt}" / f"checkpoint-{epoch}.npz"

    def delete_job(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def delete_dataset(self, dataset_id: str) -> None:
        self.dataset_path(dataset_id).unlink(missing_ok=True)
