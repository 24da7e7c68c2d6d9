"""The parse error and the wording helpers its messages share.

A :class:`ParseError` carries a *kind* — what went wrong, in the upload's
terms — never an HTTP status: ``api.errors`` maps kinds to statuses in one
place (``invalid`` 422, ``too_large`` 413, ``unsupported_type`` 415).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["KINDS", "BadCell", "ParseError", "ParseErrorKind", "count", "shorten", "shorten_list"]

ParseErrorKind = Literal["invalid", "too_large", "unsupported_type"]
#: Every kind a :class:`ParseError` may have.
KINDS: tuple[str, ...] = ("invalid", "too_large", "unsupported_type")


@dataclass(frozen=True)
class BadCell:
    """One bad cell of a table.

    ``row`` is the 1-based data row (the header is not a row), ``line`` the
    physical line where the row starts, ``column`` the column's name (None for
    a row-level problem such as a wrong number of fields).
    """

    row: int
    line: int
    column: str | None
    value: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "line": self.line, "column": self.column, "value": self.value, "reason": self.reason}

    def describe(self) -> str:
        where = f"row {self.row} (line {self.line})"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: {self.value!r} {self.reason}"


class ParseError(Exception):
    """Bad uploaded data.

    Parameters
    ----------
    detail : str
        Human message naming what is wrong and where (row, line, column).
    kind : {"invalid", "too_large", "unsupported_type"}, default "invalid"
        What is wrong: invalid data, over a size limit, or a file type that is
        not accepted.
    field : str or None
        The request field concerned, e.g. ``"file"``, ``"target"``,
        ``"features"`` or ``"features.3.1"`` (a dotted JSON path, 0-based).
    cells : sequence of BadCell
        For a table with bad cells: the first of them (at most
        :data:`api.parsing.csv.MAX_BAD_CELLS`), in reading order.
    """

    def __init__(
        self,
        detail: str,
        *,
        kind: ParseErrorKind = "invalid",
        field: str | None = None,
        cells: Sequence[BadCell] = (),
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.kind = kind
        self.field = field
        self.cells = tuple(cells)

    def __repr__(self) -> str:
        return f"ParseError({self.detail!r}, kind={self.kind!r}, field={self.field!r})"


def count(n: int, noun: str) -> str:
    """``"1 row"``, ``"2 rows"``, ``"1,000 rows"``."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def shorten(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def shorten_list(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(repr(name) for name in names[:limit])
    return shown if len(names) <= limit else f"{shown}, … ({len(names) - limit:,} more)"
