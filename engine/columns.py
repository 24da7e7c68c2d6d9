"""Typed table columns: their summary, and the column transformer fitted on the train split.

A table's feature matrix ``X`` (float64, shape (n_samples, n_columns)) holds
numeric columns as values, boolean columns as 0/1 and categorical columns as
the index of the cell's level in that column's ``levels``; NaN marks a
missing cell. :class:`ColumnEncoder` turns such columns into the model's
inputs, the way scikit-learn's ``ColumnTransformer`` with ``SimpleImputer``
and ``OneHotEncoder(handle_unknown="ignore", max_categories=…)`` does:

- numeric and boolean columns: one output each, missing cells filled with the
  train split's mean, median or zero (``impute_numeric``);
- categorical columns: one output per level kept (sorted), plus one output
  for the rarer levels pooled when the train split has more than
  ``max_categories`` levels (the ``max_categories - 1`` most frequent are
  kept), plus one for missing cells with ``impute_categorical:
  missing_level``; ``most_frequent`` fills with the train split's most
  frequent level (the smallest on a tie). A level the train split never saw
  encodes as all zeros;
- with ``missing_indicators``, each column that has a gap in the train split
  gains one more output, 1 where the cell was missing.

Every statistic comes from the train rows only. The fitted encoder is a plain
JSON-able dict (:meth:`ColumnEncoder.to_dict`, documented in docs/weights.md) that
travels in the weights file, so a download reproduces ``/predict`` with
NumPy alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import ConfigError, InputError

__all__ = ["COLUMN_TYPES", "ColumnEncoder", "summarize", "summarize_target"]

COLUMN_TYPES: tuple[str, ...] = ("numeric", "boolean", "categorical")
#: Most frequent levels a column summary lists.
TOP_LEVELS = 5
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
#: Position codes of a categorical cell besides an output index.
_UNSEEN, _MISSING = -1, -2


def summarize(
    X: np.ndarray,
    column_types: Sequence[str],
    levels: Sequence[tuple[str, ...] | None] | None,
    names: Sequence[str],
) -> list[dict[str, Any]]:
    """One summary per column of ``X`` (shape (n_samples, n_columns), coded as above).

    Returns
    -------
    list of dict
        ``name``, ``type``, ``missing`` (count); numeric and boolean columns
        add ``min``, ``mean``, ``max`` over the present cells (null if none);
        categorical ones ``distinct`` (levels present) and ``top`` (the
        :data:`TOP_LEVELS` most frequent, ``{"level", "count"}``).
    """
    out: list[dict[str, Any]] = []
    for j, (name, kind) in enumerate(zip(names, column_types, strict=True)):
        column = X[:, j]
        present = column[~np.isnan(column)]
        entry: dict[str, Any] = {"name": name, "type": kind, "missing": int(len(column) - len(present))}
        if kind == "categorical":
            names_j = levels[j] if levels is not None else None
            assert names_j is not None
            counts = np.bincount(present.astype(np.intp), minlength=len(names_j))
            top = np.argsort(-counts, kind="stable")[:TOP_LEVELS]
            entry["distinct"] = int(np.count_nonzero(counts))
            entry["top"] = [{"level": names_j[i], "count": int(counts[i])} for i in top if counts[i]]
        else:
            empty = len(present) == 0
            entry["min"] = None if empty else float(present.min())
            entry["mean"] = None if empty else float(present.mean())
            entry["max"] = None if empty else float(present.max())
        out.append(entry)
    return out


def summarize_target(name: str, y: np.ndarray) -> dict[str, Any]:
    """The summary of a target ``y`` (shape (n_samples,)): numeric, or labels (``""`` or NaN is missing)."""
    if y.dtype.kind in "iuf":
        return summarize(y.astype(np.float64)[:, None], ("numeric",), [None], (name,))[0]
    present = y != ""
    levels, codes = np.unique(y[present], return_inverse=True)
    column = np.full(len(y), np.nan)
    column[present] = codes
    return summarize(column[:, None], ("categorical",), [tuple(str(v) for v in levels)], (name,))[0]


@dataclass(frozen=True)
class ColumnEncoder:
    """A fitted column transformer; ``columns`` is the documented metadata (see :meth:`to_dict`)."""

    columns: tuple[dict[str, Any], ...]
    ignored: tuple[str, ...] = ()

    # -- fitting -------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        X_train: np.ndarray,
        names: Sequence[str],
        column_types: Sequence[str],
        levels: Sequence[tuple[str, ...] | None],
        options: Any,
        ignored: Sequence[str] = (),
    ) -> ColumnEncoder:
        """Fit on the train rows ``X_train`` (shape (n_train, n_columns), coded as above).

        ``options`` is an :class:`engine.spec.PreprocessingSpec`; ``ignored``
        names the dataset's other columns (the target, unselected features),
        which ``/predict`` accepts in objects and leaves unused.
        """
        columns: list[dict[str, Any]] = []
        for j, (name, kind) in enumerate(zip(names, column_types, strict=True)):
            x = X_train[:, j]
            gaps = bool(np.isnan(x).any())
            entry: dict[str, Any] = {"name": name, "type": kind}
            if kind == "categorical":
                known = levels[j]
                assert known is not None
                entry.update(_fit_categorical(x, known, options))
            else:
                entry["fill"] = _numeric_fill(x, options.impute_numeric)
            entry["indicator"] = bool(options.missing_indicators and gaps)
            columns.append(entry)
        return cls(tuple(columns), tuple(ignored))

    @staticmethod
    def check_gaps(X: np.ndarray, names: Sequence[str], column_types: Sequence[str], options: Any) -> None:
        """ConfigError naming the first column with a gap that ``none`` imputation cannot fill."""
        for j, (name, kind) in enumerate(zip(names, column_types, strict=True)):
            field = "preprocessing.impute_categorical" if kind == "categorical" else "preprocessing.impute_numeric"
            strategy = options.impute_categorical if kind == "categorical" else options.impute_numeric
            if strategy != "none":
                continue
            n_missing = int(np.count_nonzero(np.isnan(X[:, j])))
            if n_missing:
                raise ConfigError(field, f"column {name!r} has {n_missing} missing value(s); 'none' cannot fill them")

    # -- the outputs -----------------------------------------------------------

    @property
    def output_names(self) -> list[str]:
        """One name per output: ``age``, ``color=red``, ``color=<other>``, ``color=<missing>``, ``age<missing>``."""
        out: list[str] = []
        for c in self.columns:
            if c["type"] == "categorical":
                out += [f"{c['name']}={level}" for level in c["levels"]]
                if c["pooled"]:
                    out.append(f"{c['name']}=<other>")
                if c["missing_level"]:
                    out.append(f"{c['name']}=<missing>")
            else:
                out.append(c["name"])
            if c["indicator"]:
                out.append(f"{c['name']}<missing>")
        return out

    @property
    def standardized(self) -> np.ndarray:
        """Boolean mask over the outputs: the numeric and boolean values (standardization applies to these)."""
        mask: list[bool] = []
        for c in self.columns:
            if c["type"] == "categorical":
                mask += [False] * (len(c["levels"]) + bool(c["pooled"]) + bool(c["missing_level"]))
            else:
                mask.append(True)
            if c["indicator"]:
                mask.append(False)
        return np.array(mask, dtype=bool)

    @property
    def names(self) -> list[str]:
        """The input columns, in order."""
        return [c["name"] for c in self.columns]

    # -- transforming --------------------------------------------------------

    def transform(self, X: np.ndarray, levels: Sequence[tuple[str, ...] | None]) -> np.ndarray:
        """Outputs for rows of a coded table ``X`` whose categorical levels are ``levels``; shape (n, n_outputs)."""
        values: list[np.ndarray] = []
        for j, c in enumerate(self.columns):
            x = X[:, j]
            if c["type"] == "categorical":
                table_levels = levels[j]
                assert table_levels is not None
                lookup = self._positions(c)
                codes = np.array([lookup.get(level, _UNSEEN) for level in table_levels], dtype=np.intp)
                present = ~np.isnan(x)
                position = np.full(len(x), _MISSING, dtype=np.intp)
                position[present] = codes[x[present].astype(np.intp)] if len(codes) else _UNSEEN
                values.append(position)
            else:
                values.append(x)
        return self._encode(values)

    def encode_rows(self, rows: Sequence[Any]) -> np.ndarray:
        """Outputs for raw rows: lists in column order, or objects keyed by column name; None is missing.

        Numeric columns take numbers, boolean columns true/false (or
        ``"true"``/``"false"``/``"yes"``/``"no"``, 0/1), categorical columns
        strings (numbers are written as text). Raises InputError naming the
        row and column of a bad value.
        """
        n_columns = len(self.columns)
        known = set(self.names) | set(self.ignored)
        table: list[Sequence[Any]] = []
        for i, row in enumerate(rows):
            if isinstance(row, dict):
                unknown = sorted(set(row) - known)
                if unknown:
                    raise InputError(
                        f"row {i}: unknown column {unknown[0]!r}; the model's columns: {', '.join(self.names)}"
                    )
                table.append([row.get(name) for name in self.names])
            elif isinstance(row, list | tuple):
                if len(row) != n_columns:
                    raise InputError(
                        f"row {i} has {len(row)} values; the model takes {n_columns} columns: {', '.join(self.names)}"
                    )
                table.append(row)
            else:
                raise InputError(f"row {i} must be a list of values or an object keyed by column name")
        values: list[np.ndarray] = []
        for j, c in enumerate(self.columns):
            cells = [row[j] for row in table]
            if c["type"] == "categorical":
                lookup = self._positions(c)
                values.append(
                    np.array(
                        [
                            _MISSING if v is None else lookup.get(_level_text(v, i, c["name"]), _UNSEEN)
                            for i, v in enumerate(cells)
                        ],
                        dtype=np.intp,
                    )
                )
            else:
                values.append(np.array([_number(v, i, c) for i, v in enumerate(cells)], dtype=np.float64))
        return self._encode(values)

    def _positions(self, c: dict[str, Any]) -> dict[str, int]:
        """Level -> output position within the column's block (kept levels, then the pooled bucket)."""
        lookup = {level: k for k, level in enumerate(c["levels"])}
        other = len(c["levels"])
        for level in c["pooled"]:
            lookup[level] = other
        return lookup

    def _encode(self, values: list[np.ndarray]) -> np.ndarray:
        n = len(values[0]) if values else 0
        blocks: list[np.ndarray] = []
        for c, v in zip(self.columns, values, strict=True):
            if c["type"] == "categorical":
                width = len(c["levels"]) + bool(c["pooled"]) + bool(c["missing_level"])
                block = np.zeros((n, width), dtype=np.float64)
                missing = v == _MISSING
                position = v.copy()
                if c["fill"] is not None:
                    position[missing] = self._positions(c)[c["fill"]]
                elif c["missing_level"]:
                    position[missing] = width - 1
                elif missing.any() and width:  # a column with no level in the train split encodes as nothing
                    raise InputError(_unfillable(c["name"], missing, "impute_categorical"))
                rows = np.flatnonzero(position >= 0)
                block[rows, position[rows]] = 1.0
                blocks.append(block)
            else:
                missing = np.isnan(v)
                filled = v
                if missing.any():
                    if c["fill"] is None:
                        raise InputError(_unfillable(c["name"], missing, "impute_numeric"))
                    filled = np.where(missing, c["fill"], v)
                blocks.append(filled[:, None])
            if c["indicator"]:
                blocks.append(missing.astype(np.float64)[:, None])
        return np.hstack(blocks) if blocks else np.zeros((n, 0))

    # -- metadata ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fitted transformer as plain JSON data: ``{"columns": [...], "ignored": [...], "outputs": [...]}``."""
        return {"columns": [dict(c) for c in self.columns], "ignored": list(self.ignored), "outputs": self.output_names}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnEncoder:
        return cls(tuple(dict(c) for c in data["columns"]), tuple(data.get("ignored", ())))


def _unfillable(name: str, missing: np.ndarray, option: str) -> str:
    row = int(np.flatnonzero(missing)[0])
    return f"column {name!r} is missing in row {row} and the model cannot fill it (trained with {option} none)"


def _numeric_fill(x: np.ndarray, strategy: str) -> float | None:
    if strategy == "none":
        return None
    if strategy == "zero":
        return 0.0
    present = x[~np.isnan(x)]
    if not len(present):
        return 0.0
    return float(np.median(present) if strategy == "median" else present.mean())


def _fit_categorical(x: np.ndarray, known: tuple[str, ...], options: Any) -> dict[str, Any]:
    """Kept levels, pooled levels and fill of one categorical column from its train cells."""
    present = x[~np.isnan(x)].astype(np.intp)
    counts = np.bincount(present, minlength=len(known))
    seen = np.flatnonzero(counts)
    if len(seen) > options.max_categories:
        # The most frequent first; a tie goes to the smaller level (the levels are sorted).
        by_count = seen[np.argsort(-counts[seen], kind="stable")]
        kept = np.sort(by_count[: options.max_categories - 1])
        pooled = np.sort(by_count[options.max_categories - 1 :])
    else:
        kept, pooled = seen, seen[:0]
    fill: str | None = None
    if options.impute_categorical == "most_frequent" and len(seen):
        fill = known[int(np.argmax(counts))]
    return {
        "levels": [known[i] for i in kept],
        "pooled": [known[i] for i in pooled],
        "fill": fill,
        "missing_level": options.impute_categorical == "missing_level",
    }


def _level_text(value: Any, row: int, column: str) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    raise InputError(f"row {row}, column {column!r}: expected a text level, got {value!r}")


def _number(value: Any, row: int, c: dict[str, Any]) -> float:
    if value is None:
        return math.nan
    if c["type"] == "boolean":
        text = str(value).strip().lower() if not isinstance(value, bool) else ("true" if value else "false")
        if text in _TRUE:
            return 1.0
        if text in _FALSE:
            return 0.0
        raise InputError(f"row {row}, column {c['name']!r}: expected true or false, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"row {row}, column {c['name']!r}: expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"row {row}, column {c['name']!r}: NaN or Inf; send null for a missing value")
    return number
