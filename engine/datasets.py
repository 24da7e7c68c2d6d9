"""Built-in datasets: five small real datasets shipped as files, two synthetic.

The real datasets (``iris``, ``wine``, ``breast_cancer``, ``digits``,
``diabetes``) are read from compressed ``.npz`` files in ``engine/data/``,
made once with scikit-learn by ``tools/make_builtin_data.py``; the engine
itself never imports scikit-learn.  The synthetic datasets (``linear``,
``moons``) are generated from a seed with :func:`numpy.random.default_rng`, so
the same seed always gives bit-identical arrays.

Label conventions for classification built-ins: ``iris``, ``wine`` and
``breast_cancer`` use the class *names* as labels (a unicode string array),
``digits`` uses int64 labels 0..9 and ``moons`` int64 labels 0/1.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError, DatasetError

__all__ = [
    "BUILTIN_DATASETS",
    "TASKS",
    "BuiltinInfo",
    "Dataset",
    "linear_true_coefficients",
    "list_builtins",
    "load_builtin",
    "make_linear",
    "make_moons",
]

BUILTIN_DATASETS: tuple[str, ...] = (
    "iris",
    "wine",
    "breast_cancer",
    "digits",
    "diabetes",
    "linear",
    "moons",
)

#: The values :attr:`Dataset.task` may take besides ``None``.
TASKS: tuple[str, ...] = ("classification", "regression")

_DATA_DIR: Path = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A design matrix with its targets and metadata.

    Instances are immutable containers (the arrays themselves are not copied
    or frozen).  Equality is identity: compare the arrays to compare data.

    Parameters
    ----------
    name : str
        Short identifier, e.g. ``"iris"`` or an upload's name.
    X : ndarray of shape (n_samples, n_features), float64
        Feature matrix.
    y : ndarray of shape (n_samples,)
        Targets: float64 for regression; int64 or unicode string labels for
        classification.
    feature_names : tuple of str, length n_features
        Column names of ``X``.
    target_name : str
        Name of what ``y`` measures, e.g. ``"species"`` or ``"target"``.
    task : {"classification", "regression"} or None
        The learning task, or ``None`` when unknown (e.g. user uploads).
    description : str
        One line, including the data's source.
    column_types : tuple of str or None
        Per column of ``X``: ``"numeric"``, ``"boolean"`` (0/1) or
        ``"categorical"`` (the index of the cell's level in ``levels``); NaN
        in ``X`` marks a missing cell. None: every column numeric.
    levels : tuple of (tuple of str or None) or None
        Per column, a categorical column's levels (None for the others).

    Raises
    ------
    DatasetError
        If the shapes, dtypes or task are inconsistent.
    """

    name: str
    X: NDArray[np.float64]
    y: NDArray[Any]
    feature_names: tuple[str, ...]
    target_name: str
    task: str | None
    description: str
    column_types: tuple[str, ...] | None = None
    levels: tuple[tuple[str, ...] | None, ...] | None = None

    def __post_init__(self) -> None:
        """Check shapes, dtypes and the task value."""
        X, y = self.X, self.y
        if not isinstance(X, np.ndarray) or X.ndim != 2:
            raise DatasetError(f"{self.name}: X must be a 2-D array")
        if X.dtype != np.float64:
            raise DatasetError(f"{self.name}: X must be float64, got {X.dtype}")
        if not isinstance(y, np.ndarray) or y.ndim != 1:
            raise DatasetError(f"{self.name}: y must be a 1-D array")
        if y.shape[0] != X.shape[0]:
            raise DatasetError(f"{self.name}: X has {X.shape[0]} rows but y has {y.shape[0]}")
        if len(self.feature_names) != X.shape[1]:
            raise DatasetError(f"{self.name}: {len(self.feature_names)} feature names for {X.shape[1]} columns")
        if self.task is not None and self.task not in TASKS:
            raise DatasetError(f"{self.name}: task must be one of {', '.join(TASKS)} or None, got {self.task!r}")
        if self.column_types is not None and len(self.column_types) != X.shape[1]:
            raise DatasetError(f"{self.name}: {len(self.column_types)} column types for {X.shape[1]} columns")
        if self.levels is not None and len(self.levels) != X.shape[1]:
            raise DatasetError(f"{self.name}: {len(self.levels)} level lists for {X.shape[1]} columns")

    @property
    def types(self) -> tuple[str, ...]:
        """The type of every column of ``X`` (``numeric`` when not recorded)."""
        return self.column_types if self.column_types is not None else ("numeric",) * self.n_features

    def column_levels(self) -> tuple[tuple[str, ...] | None, ...]:
        """The levels of every column of ``X`` (None for non-categorical ones)."""
        return self.levels if self.levels is not None else (None,) * self.n_features

    @property
    def n_samples(self) -> int:
        """Number of rows of ``X``."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of columns of ``X``."""
        return int(self.X.shape[1])

    def with_target(self, column: str) -> Dataset:
        """The same data with feature ``column`` as the target.

        The former target becomes the last feature; it must be numeric.

        Raises
        ------
        DatasetError
            If ``column`` is not a column, or the former target holds labels.
        """
        if column == self.target_name:
            return self
        if column not in self.feature_names:
            known = ", ".join([*self.feature_names, self.target_name])
            raise DatasetError(f"no column {column!r} in dataset {self.name!r} (columns: {known})")
        if self.y.dtype.kind not in "iuf":
            raise DatasetError(
                f"column {self.target_name!r} holds labels and cannot become a feature; "
                f"upload the data with {column!r} as its target instead"
            )
        index = self.feature_names.index(column)
        keep = [i for i in range(self.n_features) if i != index]
        X = np.column_stack([self.X[:, keep], self.y.astype(np.float64)])
        names = (*[self.feature_names[i] for i in keep], self.target_name)
        types, levels = self.types, self.column_levels()
        y: NDArray[Any] = self.X[:, index].copy()
        chosen = levels[index]
        if types[index] == "categorical" and chosen is not None:
            # The column's levels become the labels; a missing cell an empty label.
            table = np.array(["", *chosen], dtype=np.str_)
            y = table[np.where(np.isnan(y), 0, y + 1).astype(np.intp)]
        column_types = None
        if self.column_types is not None:
            column_types = (*[types[i] for i in keep], "numeric")
        new_levels = None
        if self.levels is not None:
            new_levels = (*[levels[i] for i in keep], None)
        return Dataset(self.name, X, y, names, column, None, self.description, column_types, new_levels)


class BuiltinInfo(TypedDict):
    """Summary of one built-in dataset, as returned by :func:`list_builtins`."""

    name: str
    n_samples: int
    n_features: int
    task: str
    description: str


@dataclass(frozen=True)
class _FileSpec:
    """Metadata of a file-backed built-in; shapes are checked on load."""

    n_samples: int
    n_features: int
    task: Literal["classification", "regression"]
    target_name: str
    labels: Literal["names", "ints", "none"]
    description: str


_FILE_SPECS: dict[str, _FileSpec] = {
    "iris": _FileSpec(
        150,
        4,
        "classification",
        "species",
        "names",
        "Iris plants: 150 flowers, 4 sizes in cm, 3 species "
        "(Fisher 1936; UCI ML Repository, as corrected in scikit-learn).",
    ),
    "wine": _FileSpec(
        178,
        13,
        "classification",
        "cultivar",
        "names",
        "Wine recognition: 178 Italian wines, 13 chemical measurements, "
        "3 cultivars (Forina et al.; UCI ML Repository via scikit-learn).",
    ),
    "breast_cancer": _FileSpec(
        569,
        30,
        "classification",
        "diagnosis",
        "names",
        "Breast Cancer Wisconsin (Diagnostic): 569 tumours, 30 cell-nucleus "
        "features, malignant/benign (Street, Wolberg & Mangasarian 1993; "
        "UCI ML Repository via scikit-learn).",
    ),
    "digits": _FileSpec(
        1797,
        64,
        "classification",
        "digit",
        "ints",
        "Handwritten digits: 1797 8x8 images, pixel counts 0-16, digits 0-9 "
        "(Alpaydin & Kaynak 1998; UCI ML Repository via scikit-learn).",
    ),
    "diabetes": _FileSpec(
        442,
        10,
        "regression",
        "disease_progression",
        "none",
        "Diabetes: 442 patients, 10 raw baseline variables, disease "
        "progression one year later (Efron et al. 2004, 'Least Angle "
        "Regression'; via scikit-learn).",
    ),
}

_LINEAR_DEFAULTS = {"n_samples": 1000, "n_features": 10, "noise": 0.1}
_MOONS_DEFAULTS = {"n_samples": 200, "noise": 0.3}


def load_builtin(name: str, *, seed: int = 0) -> Dataset:
    """Load a built-in dataset by name.

    Parameters
    ----------
    name : str
        One of :data:`BUILTIN_DATASETS`.
    seed : int, default 0
        Seed of the synthetic datasets (``linear``, ``moons``); ignored by the
        file-backed ones.

    Returns
    -------
    Dataset
        ``X`` has shape (n_samples, n_features), ``y`` shape (n_samples,).
        Every call returns freshly loaded (or generated) arrays.

    Raises
    ------
    DatasetError
        If ``name`` is unknown (the message lists the known names) or a data
        file is missing or corrupt.
    ConfigError
        If ``seed`` is invalid for a synthetic dataset.
    """
    if not isinstance(name, str) or name not in BUILTIN_DATASETS:
        raise DatasetError(f"unknown built-in dataset {name!r}; known datasets: {', '.join(BUILTIN_DATASETS)}")
    if name == "linear":
        return make_linear(seed=seed)
    if name == "moons":
        return make_moons(seed=seed)
    return _load_file(name, _FILE_SPECS[name])


def list_builtins() -> list[BuiltinInfo]:
    """Summarise every built-in dataset without loading any data.

    Returns
    -------
    list of BuiltinInfo
        One dict per name in :data:`BUILTIN_DATASETS`, in that order, with
        keys ``name``, ``n_samples``, ``n_features``, ``task`` and
        ``description``.  Synthetic datasets report their default sizes.
    """
    infos: list[BuiltinInfo] = []
    for name in BUILTIN_DATASETS:
        if name == "linear":
            infos.append(
                BuiltinInfo(
                    name=name,
                    n_samples=int(_LINEAR_DEFAULTS["n_samples"]),
                    n_features=int(_LINEAR_DEFAULTS["n_features"]),
                    task="regression",
                    description=(
                        "Synthetic sparse linear regression: X ~ U(0, 1), about "
                        "half the true coefficients exactly zero, Gaussian noise "
                        "(generated from the seed)."
                    ),
                )
            )
        elif name == "moons":
            infos.append(
                BuiltinInfo(
                    name=name,
                    n_samples=int(_MOONS_DEFAULTS["n_samples"]),
                    n_features=2,
                    task="classification",
                    description=(
                        "Synthetic two interleaving half circles with Gaussian "
                        "noise, labels 0/1 (generated from the seed)."
                    ),
                )
            )
        else:
            spec = _FILE_SPECS[name]
            infos.append(
                BuiltinInfo(
                    name=name,
                    n_samples=spec.n_samples,
                    n_features=spec.n_features,
                    task=spec.task,
                    description=spec.description,
                )
            )
    return infos


def linear_true_coefficients(seed: int = 0, n_features: int = 10) -> tuple[NDArray[np.float64], float]:
    """Return the true coefficients and intercept behind :func:`make_linear`.

    The coefficients are the first draws of ``np.random.default_rng(seed)``,
    so they depend only on ``seed`` and ``n_features``, not on ``n_samples``
    or ``noise``.  ``max(1, n_features // 2)`` of them are non-zero, with
    magnitudes in [1, 3) and random signs; the rest are exactly zero.

    Parameters
    ----------
    seed : int, default 0
        Non-negative seed.
    n_features : int, default 10
        Number of coefficients.

    Returns
    -------
    coef : ndarray of shape (n_features,), float64
        The true weight vector ``w_true``.
    intercept : float
        The true bias ``b``, in [-1, 1).

    Raises
    ------
    ConfigError
        If ``seed`` or ``n_features`` is invalid.
    """
    _check_int("seed", seed, 0)
    _check_int("n_features", n_features, 1)
    coef, intercept = _draw_linear_truth(np.random.default_rng(seed), n_features)
    return coef, intercept


def make_linear(n_samples: int = 1000, n_features: int = 10, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Generate a noisy, sparse linear regression problem.

    ``y = X @ w_true + b + noise * N(0, 1)`` with ``X ~ U(0, 1)``; about half
    of ``w_true`` is exactly zero, which makes it an L1 sparse-recovery demo.
    ``w_true`` and ``b`` are available from :func:`linear_true_coefficients`.

    Parameters
    ----------
    n_samples : int, default 1000
        Number of rows, >= 1.
    n_features : int, default 10
        Number of columns, >= 1.
    noise : float, default 0.1
        Standard deviation of the Gaussian noise on ``y``, >= 0.
    seed : int, default 0
        Non-negative seed of ``np.random.default_rng``.

    Returns
    -------
    Dataset
        ``X`` float64 of shape (n_samples, n_features) and ``y`` float64 of
        shape (n_samples,); task ``"regression"``.

    Raises
    ------
    ConfigError
        If an argument is out of range.
    """
    _check_int("n_samples", n_samples, 1)
    _check_int("n_features", n_features, 1)
    _check_noise(noise)
    _check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    # Draw order is part of the contract: truth first, then X, then noise.
    coef, intercept = _draw_linear_truth(rng, n_features)
    X = rng.uniform(0.0, 1.0, size=(n_samples, n_features))
    y = X @ coef + intercept + noise * rng.standard_normal(n_samples)
    n_zero = int(np.count_nonzero(coef == 0.0))
    return Dataset(
        name="linear",
        X=X,
        y=y,
        feature_names=tuple(f"x{j}" for j in range(n_features)),
        target_name="target",
        task="regression",
        description=(
            f"Synthetic sparse linear regression (seed {seed}): X ~ U(0, 1), "
            f"{n_zero} of {n_features} true coefficients are zero, Gaussian "
            f"noise sd {noise:g}; see linear_true_coefficients({seed}, "
            f"{n_features})."
        ),
    )


def make_moons(n_samples: int = 200, noise: float = 0.3, seed: int = 0) -> Dataset:
    """Generate two interleaving half circles (like scikit-learn's make_moons).

    The outer moon is ``(cos t, sin t)`` (label 0, ``n_samples // 2`` points)
    and the inner moon ``(1 - cos t, 1 - sin t - 0.5)`` (label 1, the rest),
    with ``t`` evenly spaced on [0, pi].  The rows are shuffled, then Gaussian
    noise of standard deviation ``noise`` is added to every coordinate.

    Parameters
    ----------
    n_samples : int, default 200
        Total number of points, >= 2 (so both classes are present).
    noise : float, default 0.3
        Standard deviation of the Gaussian noise, >= 0.
    seed : int, default 0
        Non-negative seed of ``np.random.default_rng``.

    Returns
    -------
    Dataset
        ``X`` float64 of shape (n_samples, 2) and ``y`` int64 of shape
        (n_samples,) with values 0 and 1; task ``"classification"``.

    Raises
    ------
    ConfigError
        If an argument is out of range.
    """
    _check_int("n_samples", n_samples, 2)
    _check_noise(noise)
    _check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0.0, np.pi, n_out)
    t_in = np.linspace(0.0, np.pi, n_in)
    X = np.empty((n_samples, 2), dtype=np.float64)
    X[:n_out, 0] = np.cos(t_out)
    X[:n_out, 1] = np.sin(t_out)
    X[n_out:, 0] = 1.0 - np.cos(t_in)
    X[n_out:, 1] = 1.0 - np.sin(t_in) - 0.5
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    order = rng.permutation(n_samples)
    X = X[order]
    y = y[order]
    X += noise * rng.standard_normal((n_samples, 2))
    return Dataset(
        name="moons",
        X=X,
        y=y,
        feature_names=("x0", "x1"),
        target_name="class",
        task="classification",
        description=(
            f"Synthetic two interleaving half circles (seed {seed}), Gaussian "
            f"noise sd {noise:g}, labels 0/1 (construction of scikit-learn's "
            f"make_moons)."
        ),
    )


def _draw_linear_truth(rng: np.random.Generator, n_features: int) -> tuple[NDArray[np.float64], float]:
    """Draw ``(w_true, b)``: ``max(1, n_features // 2)`` non-zero weights."""
    n_nonzero = max(1, n_features // 2)
    support = rng.permutation(n_features)[:n_nonzero]
    magnitudes = rng.uniform(1.0, 3.0, size=n_nonzero)
    signs = rng.choice(np.array([-1.0, 1.0]), size=n_nonzero)
    coef = np.zeros(n_features, dtype=np.float64)
    coef[support] = signs * magnitudes
    intercept = float(rng.uniform(-1.0, 1.0))
    return coef, intercept


def _check_int(field: str, value: object, minimum: int) -> None:
    """Raise ConfigError unless ``value`` is an int (not bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(field, f"must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(field, f"must be >= {minimum}, got {value}")


def _check_noise(noise: object) -> None:
    """Raise ConfigError unless ``noise`` is a finite real number >= 0."""
    if isinstance(noise, bool) or not isinstance(noise, int | float | np.integer | np.floating):
        raise ConfigError("noise", f"must be a number, got {noise!r}")
    if not math.isfinite(float(noise)) or noise < 0:
        raise ConfigError("noise", f"must be finite and >= 0, got {noise}")


def _load_file(name: str, spec: _FileSpec) -> Dataset:
    """Read ``engine/data/<name>.npz`` and check it against ``spec``."""
    path = _DATA_DIR / f"{name}.npz"
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise DatasetError(
            f"data file for built-in dataset {name!r} is missing ({path.name}); the package data was not installed"
        ) from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"data file for built-in dataset {name!r} is unreadable: {exc}") from None

    required = {"X", "y", "feature_names"}
    if spec.task == "classification":
        required.add("target_names")
    missing = required - set(arrays)
    if missing:
        raise DatasetError(f"data file for built-in dataset {name!r} lacks {sorted(missing)}")
    X = arrays["X"]
    raw_y = arrays["y"]
    feature_names = arrays["feature_names"]
    shape = (spec.n_samples, spec.n_features)
    if X.dtype != np.float64 or X.shape != shape:
        raise DatasetError(f"built-in dataset {name!r}: expected float64 X of shape {shape}, got {X.dtype} {X.shape}")
    if raw_y.shape != (spec.n_samples,) or feature_names.shape != (spec.n_features,):
        raise DatasetError(f"built-in dataset {name!r}: y or feature_names mis-shaped")

    y: NDArray[Any]
    if spec.labels == "none":
        y = raw_y.astype(np.float64, copy=False)
    else:
        target_names = arrays["target_names"]
        if raw_y.dtype.kind not in "iu" or raw_y.min() < 0 or raw_y.max() >= target_names.shape[0]:
            raise DatasetError(f"built-in dataset {name!r}: bad class indices")
        y = target_names.astype(np.str_)[raw_y] if spec.labels == "names" else raw_y.astype(np.int64, copy=False)

    return Dataset(
        name=name,
        X=X,
        y=y,
        feature_names=tuple(str(f) for f in feature_names),
        target_name=spec.target_name,
        task=spec.task,
        description=spec.description,
    )
