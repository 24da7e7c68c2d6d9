"""Serialize and restore the complete training state.

A checkpoint is an uncompressed ``.npz`` (read back with ``allow_pickle=False``)
holding the parameters, the optimizer's state arrays and the early-stopping
snapshot, plus one JSON member with the scalars: completed epoch, optimizer
step count, the random generator's exact state, early-stopping counters and
the metrics history. The learning-rate schedule is a function of the epoch and
needs nothing. Restoring it into a fresh trainer for the same spec and data
continues bit-identically.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import CheckpointError

if TYPE_CHECKING:
    from engine.trainer import Trainer

FORMAT = "trainapi.checkpoint"
VERSION = 1


def dump(trainer: Trainer) -> bytes:
    """Serialize ``trainer``'s state after its last completed epoch."""
    opt_scalars, opt_arrays = trainer.optimizer.state_dict()
    early = trainer.early
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "spec": trainer.spec.to_dict(),
        "n_params": int(trainer.network.params.size),
        "n_train": len(trainer.data.y_train),
        "epoch": trainer.epoch,
        "optimizer": opt_scalars,
        "rng": trainer.rng.bit_generator.state,
        "early_stopping": {"best": early.best, "best_epoch": early.best_epoch, "wait": early.wait},
        "history": trainer.history,
    }
    arrays = {"params": trainer.network.params}
    arrays.update({f"optimizer.{key}": value for key, value in opt_arrays.items()})
    if early.best_params is not None:
        arrays["best_params"] = early.best_params
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def load(trainer: Trainer, blob: bytes) -> None:
    """Restore a :func:`dump` into ``trainer``, which must have the same spec and data."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        meta = json.loads(arrays.pop("meta").tobytes())
    except (ValueError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"not a readable checkpoint: {exc}") from exc
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError("not a trainapi checkpoint of a supported version")
    if meta["spec"] != trainer.spec.to_dict():
        raise CheckpointError("the checkpoint was written for a different spec")
    params = arrays["params"]
    if params.shape != trainer.network.params.shape or meta["n_train"] != len(trainer.data.y_train):
        raise CheckpointError("the checkpoint does not match this model and dataset")
    trainer.network.params[:] = params
    trainer.optimizer.load_state_dict(
        meta["optimizer"],
        {key.removeprefix("optimizer."): value for key, value in arrays.items() if key.startswith("optimizer.")},
    )
    trainer.rng.bit_generator.state = meta["rng"]
    trainer.epoch = int(meta["epoch"])
    trainer.history = list(meta["history"])
    early = meta["early_stopping"]
    trainer.early.best = early["best"]
    trainer.early.best_epoch = early["best_epoch"]
    trainer.early.wait = int(early["wait"])
    trainer.early.best_params = arrays.get("best_params")
