"""Fold assignment for k-fold cross-validation: seeded, stratified, modulo, or given.

Each function returns one fold id in ``0 .. k-1`` per row. The seeded ones draw
from ``numpy.random.default_rng([seed, 1])`` (the train/validation/test split
uses ``[seed, 0]``), so the same spec and seed give the same folds.
"""

from __future__ import annotations

import numpy as np

from engine.errors import ConfigError, DatasetError

ASSIGNMENTS = ("auto", "random", "stratified", "modulo")


def assign(
    n_rows: int,
    folds: int,
    assignment: str,
    *,
    seed: int,
    labels: np.ndarray | None = None,
    row_numbers: np.ndarray | None = None,
) -> np.ndarray:
    """Fold ids, shape (n_rows,), int64.

    Parameters
    ----------
    n_rows : int
    folds : int
        k, at least 2 and at most ``n_rows``.
    assignment : {"auto", "random", "stratified", "modulo"}
        ``auto`` is ``stratified`` when ``labels`` are given, else ``random``.
    seed : int
    labels : ndarray of shape (n_rows,), optional
        Class indices (classification): ``stratified`` deals each class's rows round the folds.
    row_numbers : ndarray of shape (n_rows,), optional
        Each row's number in the dataset, for ``modulo`` (row i in fold i mod k); default 0 .. n_rows-1.
    """
    if folds < 2:
        raise ConfigError("training.cross_validation.folds", "must be >= 2")
    if folds > n_rows:
        raise DatasetError(f"{folds} folds need at least {folds} rows; there are {n_rows}")
    if assignment == "modulo":
        numbers = np.arange(n_rows) if row_numbers is None else np.asarray(row_numbers)
        return (numbers % folds).astype(np.int64)
    rng = np.random.default_rng([seed, 1])
    if assignment == "auto":
        assignment = "random" if labels is None else "stratified"
    if assignment == "random":
        return rng.permutation(np.arange(n_rows) % folds).astype(np.int64)
    if assignment != "stratified":
        raise ConfigError("training.cross_validation.assignment", f"must be one of {', '.join(ASSIGNMENTS)}")
    if labels is None:
        raise ConfigError("training.cross_validation.assignment", "stratified needs class labels (classification)")
    out = np.empty(n_rows, dtype=np.int64)
    offset = 0
    # Each class's rows are shuffled and dealt round the folds, continuing where the previous class stopped,
    # so fold sizes differ by at most one and each class is spread as evenly as it can be.
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        out[rows] = (offset + np.arange(len(rows))) % folds
        offset = (offset + len(rows)) % folds
    return out


def from_column(values: np.ndarray, name: str) -> np.ndarray:
    """Fold ids from a dataset column (any numbers or level codes), shape (n_rows,), int64 in ``0 .. k-1``."""
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).any():
        row = int(np.flatnonzero(np.isnan(values))[0])
        raise DatasetError(f"fold column {name!r} has a missing value (row {row})")
    labels, ids = np.unique(values, return_inverse=True)
    if len(labels) < 2:
        raise DatasetError(f"fold column {name!r} holds one fold id only; cross-validation needs at least 2")
    if len(labels) > 20:
        raise DatasetError(f"fold column {name!r} holds {len(labels)} fold ids; at most 20 are allowed")
    return ids.astype(np.int64)
