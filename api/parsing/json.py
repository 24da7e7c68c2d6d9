"""JSON bodies ``{"name", "features": [[...]], "target": [...]}``: small, numeric datasets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeGuard

import numpy as np
from numpy.typing import NDArray

from api.parsing.dataset import (
    DEFAULT_MAX_COLUMNS,
    DEFAULT_MAX_ROWS,
    ParsedDataset,
    default_names,
    reject_empty_labels,
    reject_unencodable,
)
from api.parsing.errors import ParseError, count, shorten

__all__ = ["parse_json"]


def parse_json(
    features: object,
    target: object,
    *,
    feature_names: object = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_columns: int = DEFAULT_MAX_COLUMNS,
) -> ParsedDataset:
    """Validate a decoded JSON dataset.

    Parameters
    ----------
    features : list of list of number
        Rows, all of one non-zero length; numbers are JSON numbers (``int`` or
        ``float``, finite); booleans, nulls and strings are refused.
    target : list of number, or list of str
        One value per row: all numbers (float64 target) or all strings
        (labels, stripped, non-empty).  Mixing the two is refused.
    feature_names : list of str, optional
        One unique, non-empty name per column (stripped); default ``x0, x1, ...``.
    max_rows, max_columns : int
        Size limits (413 above).

    Returns
    -------
    ParsedDataset
        ``X`` of shape (len(features), len(features[0])), float64; target
        name ``"target"`` (a caller may substitute its own).

    Raises
    ------
    ParseError
        With ``field`` the dotted JSON path of the offending value, 0-based
        like its bracketed form in ``detail``: ``features.3.1`` is ``features[3][1]``.
    """
    rows = _json_rows(features, max_rows, max_columns)
    n, p = len(rows), len(rows[0])
    X = np.array(rows, dtype=np.float64)  # every value is a checked finite int or float
    y = _json_target(target, n)
    names = _json_feature_names(feature_names, p)
    return ParsedDataset(X=X, y=y, feature_names=names, target_name="target")


def _json_type(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"a string ({shorten(value)!r})"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_rows(features: object, max_rows: int, max_columns: int) -> list[Sequence[int | float]]:
    if not isinstance(features, list | tuple):
        raise ParseError(
            f"features must be a list of rows (lists of numbers), got {_json_type(features)}", field="features"
        )
    if not features:
        raise ParseError("features is empty: need at least one row", field="features")
    if len(features) > max_rows:
        raise ParseError(
            f"features has {len(features):,} rows, more than the limit of {max_rows:,}",
            kind="too_large",
            field="features",
        )
    width = -1
    for i, row in enumerate(features):
        path = f"features[{i}]"
        if not isinstance(row, list | tuple):
            raise ParseError(f"{path} must be a list of numbers, got {_json_type(row)}", field=f"features.{i}")
        if not row:
            raise ParseError(f"{path} is empty: every row needs at least one value", field=f"features.{i}")
        if width < 0:
            width = len(row)
            if width > max_columns:
                raise ParseError(
                    f"{path} has {width:,} values, more than the limit of {max_columns:,} columns",
                    kind="too_large",
                    field=f"features.{i}",
                )
        elif len(row) != width:
            raise ParseError(f"{path} has {count(len(row), 'value')}, expected {width}", field=f"features.{i}")
        for j, value in enumerate(row):
            _check_json_number(value, f"{path}[{j}]", f"features.{i}.{j}")
    return features  # type: ignore[return-value]  # checked element by element above


def _check_json_number(value: object, path: str, field: str) -> None:
    if not _is_number(value):
        missing = "; missing values are not supported" if value is None else ""
        raise ParseError(f"{path} is {_json_type(value)}, expected a number{missing}", field=field)
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond float64
        finite = False
    if not finite:
        raise ParseError(f"{path} is NaN, Inf or too large for a float64", field=field)


def _json_target(target: object, n: int) -> NDArray[Any]:
    if not isinstance(target, list | tuple):
        raise ParseError(f"target must be a list of numbers or strings, got {_json_type(target)}", field="target")
    if len(target) != n:
        raise ParseError(f"target has {count(len(target), 'value')} but features has {count(n, 'row')}", field="target")
    first_is_text = isinstance(target[0], str)
    for i, value in enumerate(target):
        path, field = f"target[{i}]", f"target.{i}"
        if isinstance(value, str):
            if not first_is_text:
                raise ParseError(
                    f"target mixes numbers and strings: target[0] is a number but {path} is {_json_type(value)}; "
                    "send every label as a string, or every value as a number",
                    field=field,
                )
        elif _is_number(value):
            if first_is_text:
                raise ParseError(
                    f"target mixes strings and numbers: target[0] is a string but {path} is a number; "
                    "send every label as a string, or every value as a number",
                    field=field,
                )
            _check_json_number(value, path, field)
        else:
            missing = "; missing values are not supported" if value is None else ""
            raise ParseError(f"{path} is {_json_type(value)}, expected a number or a string{missing}", field=field)
    if not first_is_text:
        return np.array(target, dtype=np.float64)
    labels = [value.strip() for value in target]  # all str, checked above
    reject_unencodable(labels, "target")
    # Stripped like CSV cells, so the same data gives the same labels either way.
    reject_empty_labels(labels, lambda i: f"target[{i}] is an empty string", lambda i: f"target.{i}")
    return np.array(labels, dtype=np.str_)


def _json_feature_names(feature_names: object, p: int) -> tuple[str, ...]:
    if feature_names is None:
        return default_names(p)
    if not isinstance(feature_names, list | tuple):
        raise ParseError(
            f"feature_names must be a list of strings, got {_json_type(feature_names)}", field="feature_names"
        )
    if len(feature_names) != p:
        raise ParseError(
            f"feature_names has {count(len(feature_names), 'name')} but each row of features has {count(p, 'value')}",
            field="feature_names",
        )
    seen: dict[str, int] = {}
    for i, name in enumerate(feature_names):
        path, field = f"feature_names[{i}]", f"feature_names.{i}"
        if not isinstance(name, str):
            raise ParseError(f"{path} is {_json_type(name)}, expected a string", field=field)
        key = name.strip()
        if not key:
            raise ParseError(f"{path} is empty", field=field)
        if key in seen:
            raise ParseError(f"{path} repeats the name {key!r} of feature_names[{seen[key]}]", field=field)
        seen[key] = i
    names = tuple(seen)
    reject_unencodable(names, "feature_names")
    return names
