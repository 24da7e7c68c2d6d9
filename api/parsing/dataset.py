"""What a parse produces, and the checks on names and labels every format shares."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from api.parsing.errors import ParseError

__all__ = [
    "DEFAULT_MAX_COLUMNS",
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "DEFAULT_MAX_EXPANSION",
    "DEFAULT_MAX_ROWS",
    "MIN_DECODED_BUDGET",
    "ParsedDataset",
    "budget_detail",
    "decoded_budget",
    "default_names",
    "distinct_labels",
    "reject_empty_labels",
    "reject_unencodable",
    "unique_names",
]

DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_MAX_COLUMNS = 10_000
#: An upload may decompress, or convert to float64, to at most this many times its own size ...
DEFAULT_MAX_EXPANSION = 32.0
#: ... and to at most this many bytes, whatever its size.
DEFAULT_MAX_DECOMPRESSED_BYTES = 512 << 20
#: The ratio alone would refuse a tiny, very compressible file (a 1 KB archive of a few thousand
#: zeros); below this many bytes the ratio does not apply. Harmless at any concurrency.
MIN_DECODED_BUDGET = 1 << 20


def decoded_budget(upload_bytes: int, max_expansion: float, max_decompressed_bytes: int) -> int:
    """Most bytes an upload of ``upload_bytes`` may decompress or convert to (float64 matrices included).

    ``max_expansion`` times its size, at least :data:`MIN_DECODED_BUDGET`, at most ``max_decompressed_bytes``.
    """
    return min(max_decompressed_bytes, max(MIN_DECODED_BUDGET, int(max_expansion * upload_bytes)))


def budget_detail(upload_bytes: int, max_expansion: float, max_decompressed_bytes: int) -> str:
    """How the budget of :func:`decoded_budget` came about, for messages."""
    budget = decoded_budget(upload_bytes, max_expansion, max_decompressed_bytes)
    if budget == max_decompressed_bytes:
        return f"the limit is {budget:,} bytes"
    return f"the limit is {max_expansion:g}x the upload's {upload_bytes:,} bytes ({budget:,})"


# eq=False: the generated __eq__/__hash__ would compare (and hash) arrays,
# which raises; compare the arrays themselves instead (as engine.Dataset does).
@dataclass(frozen=True, eq=False)
class ParsedDataset:
    """A validated upload.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float64
        Features; ``n_samples >= 1`` and ``n_features >= 1``.  Numeric
        columns hold their values, boolean columns 0/1, categorical columns
        the index of the cell's level in ``levels[j]``; NaN marks a missing
        cell.  NPZ and JSON uploads are all numeric and complete.
    y : ndarray of shape (n_samples,)
        Targets: float64 when every present value is numeric (NaN for a
        missing one), else a unicode string array (``'<U..'``, stripped;
        ``""`` for a missing one; never object).
    feature_names : tuple of str, length n_features
        Unique, non-empty column names.
    target_name : str
        Name of the target column.
    column_types : tuple of str or None
        Per feature column ``"numeric"``, ``"boolean"`` or ``"categorical"``;
        None means every column is numeric.
    levels : tuple of (tuple of str or None) or None
        Per feature column, the levels of a categorical column (None for the
        others); None when no column is categorical.
    columns : list of dict or None
        The dataset view's column summary (target included), see
        :func:`engine.tables.column_summary`.
    notes : tuple of str
        What the parser did that the user should know (a dropped empty column).
    """

    X: NDArray[np.float64]
    y: NDArray[Any]
    feature_names: tuple[str, ...]
    target_name: str
    column_types: tuple[str, ...] | None = None
    levels: tuple[tuple[str, ...] | None, ...] | None = None
    columns: list[dict[str, Any]] | None = None
    notes: tuple[str, ...] = field(default=())


def distinct_labels(y: NDArray[Any]) -> int:
    """Number of distinct values of ``y``.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Targets, numeric or string.

    Returns
    -------
    int
        Count of distinct values (0 for an empty array).  Whether one class is
        acceptable depends on the task, which is decided after parsing.
    """
    return int(np.unique(np.asarray(y)).size)


def unique_names(names: Sequence[str], empty: str, duplicate: str) -> dict[str, int]:
    """Name -> 1-based position; a ParseError for an empty or repeated name.

    ``empty`` is formatted with ``i``, ``duplicate`` with ``name``, ``first`` and ``i``.
    """
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if not name:
            raise ParseError(empty.format(i=i), field="file")
        if name in seen:
            raise ParseError(duplicate.format(name=name, first=seen[name], i=i), field="file")
        seen[name] = i
    return seen


def default_names(p: int) -> tuple[str, ...]:
    return tuple(f"x{i}" for i in range(p))


def reject_empty_labels(labels: list[str], message: Callable[[int], str], field: Callable[[int], str]) -> None:
    """Raise for the first empty label; ``message(i)`` and ``field(i)`` render it."""
    if "" in labels:
        i = labels.index("")
        raise ParseError(message(i), field=field(i))


def reject_unencodable(strings: Sequence[str], key: str) -> None:
    """Refuse strings that cannot be stored or sent as UTF-8.

    JSON escapes can produce lone surrogates (``"\\ud800"``); they would only
    fail later, when the dataset is written or returned.
    """
    try:
        "".join(strings).encode("utf-8")
    except UnicodeEncodeError:
        i = next(i for i, s in enumerate(strings) if not _encodable(s))
        raise ParseError(
            f"{key}[{i}] holds an invalid Unicode character (a lone surrogate)", field=f"{key}.{i}"
        ) from None


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
