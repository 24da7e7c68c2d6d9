"""Data preparation: task inference, label encoding, seeded splits, standardization.

Everything here is computed from the training split only, so no statistic of
the validation or test rows leaks into the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.columns import ColumnEncoder
from engine.datasets import Dataset
from engine.errors import ConfigError, DatasetError
from engine.spec import PreprocessingSpec

#: Integer or string targets with at most this many distinct values are class labels.
MAX_AUTO_CLASSES = 50


def infer_task(y: np.ndarray) -> str:
    """``classification`` for string labels or few distinct integer values, else ``regression``.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
    """
    if y.dtype.kind in "USObB":
        return "classification"
    if y.dtype.kind in "iu" or (y.dtype.kind == "f" and np.all(np.mod(y, 1.0) == 0.0)):
        n_distinct = len(np.unique(y))
        if n_distinct <= min(MAX_AUTO_CLASSES, max(2, len(y) // 5)):
            return "classification"
    return "regression"


def target_present(y: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows whose target is present (not NaN, not an empty label); shape (n_samples,)."""
    if y.dtype.kind == "f":
        return ~np.isnan(y)
    if y.dtype.kind == "U":
        return y != ""
    return np.ones(len(y), dtype=bool)


def encode_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class indices and the sorted class labels.

    Float labels with integer values become integers, so classes read ``[0, 1]``
    rather than ``[0.0, 1.0]``.

    Returns
    -------
    indices : ndarray of shape (n_samples,), int64
    classes : ndarray of shape (n_classes,)
    """
    if y.dtype.kind == "f":
        if not np.all(np.mod(y, 1.0) == 0.0):
            raise DatasetError("classification targets must be labels, not fractional values")
        y = y.astype(np.int64)
    classes, indices = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DatasetError(f"classification needs at least two classes; the target has one ({classes[0]!r})")
    return indices.astype(np.int64), classes


def split_indices(
    n_samples: int,
    labels: np.ndarray | None,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded train/validation/test row indices, stratified when ``labels`` are given.

    Each class contributes ``round(n_c * fraction)`` rows to the validation and
    test splits, keeping at least one row of every class in training.

    Parameters
    ----------
    n_samples : int
    labels : ndarray of shape (n_samples,) or None
        Class indices for a stratified split; None for a plain shuffled split.

    Returns
    -------
    train, validation, test : ndarrays of int64 row indices, each sorted in a
        seeded random order.
    """
    rng = np.random.default_rng([seed, 0])
    groups = [np.arange(n_samples)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for group in groups:
        group = rng.permutation(group)
        n = len(group)
        n_test = min(round(n * test_fraction), max(n - 1, 0))
        n_val = min(round(n * validation_fraction), max(n - 1 - n_test, 0))
        parts[2].append(group[:n_test])
        parts[1].append(group[n_test : n_test + n_val])
        parts[0].append(group[n_test + n_val :])
    train, val, test = (rng.permutation(np.concatenate(p)).astype(np.int64) for p in parts)
    return train, val, test


@dataclass(frozen=True)
class Scaler:
    """Per-column standardization ``(x - mean) / std``; columns of zero spread keep std 1."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Scaler:
        """Statistics of ``X`` (shape (n_samples, n_columns)), in float64."""
        mean = X.mean(axis=0, dtype=np.float64)
        std = X.std(axis=0, dtype=np.float64)
        std[std == 0.0] = 1.0
        return cls(mean=mean, std=std)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardized copy of ``X``, in float64."""
        return np.asarray((X - self.mean) / self.std, dtype=np.float64)


@dataclass(frozen=True)
class PreparedData:
    """Splits ready for training, in the training dtype.

    ``X_*`` have shape (n, n_features), standardized when ``x_scaler`` is set.
    ``y_*`` are class indices (int64, classification) or targets (regression,
    standardized when ``y_scaler`` is set).
    """

    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: np.ndarray | None
    feature_names: tuple[str, ...]
    target_name: str
    x_scaler: Scaler | None
    y_scaler: Scaler | None
    #: The fitted column transformer (None: the selected columns are numeric and complete, used as they are).
    encoder: ColumnEncoder | None = None
    #: Rows left out because their target is missing.
    n_missing_target: int = 0
    #: The dataset row of each row of ``X_train``, shape (n_train,) (rows with a missing target are not counted out).
    train_rows: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_outputs(self) -> int:
        """Width of the output layer: 1 for regression and two classes, else the class count."""
        if self.classes is None or len(self.classes) == 2:
            return 1
        return len(self.classes)


def prepare(
    dataset: Dataset,
    task: str,
    validation_fraction: float,
    test_fraction: float,
    standardize: bool,
    seed: int,
    dtype: np.dtype | str,
    features: list[str] | None = None,
    preprocessing: PreprocessingSpec | None = None,
) -> PreparedData:
    """Split, encode and standardize ``dataset`` for training.

    Rows whose target is missing are left out (and counted). When the
    selected columns are all numeric and complete they are used as they are;
    otherwise a :class:`~engine.columns.ColumnEncoder` fitted on the train
    split encodes them (imputation, one-hot, missing indicators) and
    standardization applies to the numeric outputs only.

    Parameters
    ----------
    dataset : Dataset
    task : {"auto", "classification", "regression"}
    validation_fraction, test_fraction : float
        Shares of the rows held out, in [0, 1).
    standardize : bool
        Standardize features (and regression targets) with train-split statistics.
    seed : int
    dtype : numpy dtype of the returned arrays.
    features : list of str or None
        Columns to train on; None: every column.
    preprocessing : PreprocessingSpec or None
        How to encode a table that is not all numeric and complete (default settings when None).
    """
    X = np.asarray(dataset.X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] != len(dataset.y):
        raise DatasetError("features must be a 2-D array with one row per target value")
    options = preprocessing if preprocessing is not None else PreprocessingSpec()
    selected = _select(dataset, features)
    names = tuple(dataset.feature_names[i] for i in selected)
    types = tuple(dataset.types[i] for i in selected)
    levels = tuple(dataset.column_levels()[i] for i in selected)
    if len(selected) != dataset.n_features:
        X = X[:, selected]
    y_all = np.asarray(dataset.y)
    present = target_present(y_all)
    kept_rows = np.flatnonzero(present)
    n_missing_target = int(len(y_all) - np.count_nonzero(present))
    if n_missing_target:
        if n_missing_target == len(y_all):
            raise DatasetError("every row's target is missing")
        X, y_all = X[present], y_all[present]
    if np.isinf(X).any():
        row, col = np.argwhere(np.isinf(X))[0]
        raise DatasetError(f"features contain NaN or Inf (row {row}, column {col})")
    # NaN marks a missing cell; numeric, complete columns are used as they are.
    plain = all(kind == "numeric" for kind in types) and not np.isnan(X).any()
    if not plain:
        ColumnEncoder.check_gaps(X, names, types, options)
    resolved = infer_task(y_all) if task == "auto" else task
    classes: np.ndarray | None = None
    if resolved == "classification":
        y, classes = encode_labels(y_all)
        labels: np.ndarray | None = y
    else:
        if y_all.dtype.kind not in "iuf":
            raise DatasetError("regression needs a numeric target")
        y = np.asarray(y_all, dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise DatasetError(f"target contains NaN or Inf (row {int(np.flatnonzero(~np.isfinite(y))[0])})")
        labels = None
    train, val, test = split_indices(len(y), labels, validation_fraction, test_fraction, seed)
    if len(train) < 2:
        raise DatasetError(f"too few rows to train on ({len(train)} after holding out validation and test rows)")
    encoder: ColumnEncoder | None = None
    if not plain:
        ignored = [name for name in dataset.feature_names if name not in names] + [dataset.target_name]
        encoder = ColumnEncoder.fit(X[train], names, types, levels, options, ignored)
        X = encoder.transform(X, levels)
    x_scaler = Scaler.fit(X[train]) if standardize else None
    if x_scaler is not None and encoder is not None:
        # One-hot outputs and missing indicators stay 0/1; only the numeric values are standardized.
        keep = encoder.standardized
        x_scaler = Scaler(mean=np.where(keep, x_scaler.mean, 0.0), std=np.where(keep, x_scaler.std, 1.0))
    y_scaler = Scaler.fit(y[train][:, None]) if standardize and resolved == "regression" else None

    def inputs(rows: np.ndarray) -> np.ndarray:
        part = X[rows]
        if x_scaler is not None:
            part = x_scaler.transform(part)
        return np.ascontiguousarray(part, dtype=dtype)

    def targets(rows: np.ndarray) -> np.ndarray:
        part = y[rows]
        if y_scaler is not None:
            return np.asarray((part - y_scaler.mean[0]) / y_scaler.std[0], dtype=dtype)
        return part.astype(dtype) if resolved == "regression" else part

    return PreparedData(
        task=resolved,
        X_train=inputs(train),
        y_train=targets(train),
        X_val=inputs(val),
        y_val=targets(val),
        X_test=inputs(test),
        y_test=targets(test),
        classes=classes,
        feature_names=names,
        target_name=dataset.target_name,
        x_scaler=x_scaler,
        y_scaler=y_scaler,
        encoder=encoder,
        n_missing_target=n_missing_target,
        train_rows=kept_rows[train],
    )


def _select(dataset: Dataset, features: list[str] | None) -> list[int]:
    """Indices of the ``features`` columns in dataset order; ConfigError naming an unknown one."""
    if features is None:
        return list(range(dataset.n_features))
    index = {name: i for i, name in enumerate(dataset.feature_names)}
    for name in features:
        if name not in index:
            hint = " (it is the target)" if name == dataset.target_name else ""
            raise ConfigError("features", f"no feature column {name!r} in dataset {dataset.name!r}{hint}")
    return sorted(index[name] for name in features)
