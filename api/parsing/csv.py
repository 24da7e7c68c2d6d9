"""CSV uploads: any common delimiter, quoted fields, typed columns with gaps, every bad cell at once.

The file is read twice, line by line, from a re-readable binary source (the
upload's spooled temporary file), so memory stays near the size of the parsed
arrays however large the file: the first pass counts rows and decides each
column's type, the second converts the cells into a preallocated matrix.

- Delimiter: given (``delimiter``), declared by a first line ``sep=X`` (as
  Excel writes it; the line is skipped, and a given ``delimiter`` still wins),
  or detected among comma, semicolon, tab and pipe from the first lines: the
  candidate that splits the header into the most columns *and* the rows into
  as many fields wins.
- Decimal mark: given (``decimal``), else ``.`` — except that in a file
  delimited by a semicolon, tab or pipe a column that is not all numbers with
  ``.`` but is all numbers with ``,`` as the decimal mark (``22,5``) is read
  that way, with a note; ``decimal=.`` keeps such a column as text. A cell
  that uses both marks (``1.234,5``: a thousands separator) keeps its column
  as text, with a note.
- Quoting: RFC 4180 (delimiters, doubled quotes and newlines inside quotes);
  UTF-8 with or without a byte-order mark; LF or CRLF line ends.
- Missing values: an empty cell, and by default ``NA``, ``N/A``, ``NaN``,
  ``null`` and ``?`` in any letter case; ``na_values`` replaces that list
  (an empty cell stays missing).
- Column types: *numeric* when every present cell is a number (``decimal``
  ``,`` reads ``3,5`` as 3.5), *boolean* when every present cell is
  true/false or yes/no, *categorical* otherwise — except that a column whose
  present cells are at least 90% numbers is numeric and its other cells are
  *bad cells* (most likely typos).  A column with no value at all is dropped
  with a note.  The target is numeric when all its present cells are
  numbers, else labels.
- Bad cells (a text cell in a numeric column, NaN or Inf, a row with the wrong
  number of fields) are collected over the whole file; the error lists the
  first :data:`MAX_BAD_CELLS` with row, line, column, value and reason.
- Memory: the header's columns are counted in pieces before it is split (a
  60 MB single line is refused after reading its first ``max_columns``
  delimiters); no record may exceed :data:`MAX_RECORD_BYTES`; rows are
  converted in chunks of at most :data:`_CHUNK_CELLS` cells; the float64
  matrix of rows x columns is held to the decoded budget
  (:func:`api.parsing.dataset.decoded_budget`) before it is allocated.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from api.parsing.dataset import (
    DEFAULT_MAX_COLUMNS,
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    DEFAULT_MAX_EXPANSION,
    DEFAULT_MAX_ROWS,
    ParsedDataset,
    budget_detail,
    decoded_budget,
    unique_names,
)
from api.parsing.errors import BadCell, ParseError, count, shorten, shorten_list
from engine.columns import summarize, summarize_target

__all__ = ["DELIMITERS", "MAX_BAD_CELLS", "MAX_RECORD_BYTES", "NA_VALUES", "parse_csv"]

#: Delimiters detected when none is given, in order of preference on a tie.
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
#: Cells read as missing by default (compared ignoring letter case), besides the empty cell.
NA_VALUES: tuple[str, ...] = ("NA", "N/A", "NaN", "null", "?")
#: Most bad cells one error lists.
MAX_BAD_CELLS = 20
#: A column whose present cells are at least this share numbers is numeric; its other cells are bad.
NUMERIC_MAJORITY = 0.9

#: A number's text starts with one of these (``float`` also reads inf, nan, infinity).
_NUMBER_STARTS = frozenset("0123456789+-.iInN")
_TRUE = frozenset({"true", "yes"})
_FALSE = frozenset({"false", "no"})
#: Longest record (a row, its quoted line breaks included), in bytes: what one row may cost as
#: Python strings is bounded by it. 10,000 columns of 100-byte cells fit.
MAX_RECORD_BYTES = 1 << 20
#: Rows converted per NumPy call, and most cells in those rows: bound the Python strings alive at once
#: (a chunk of 10,000-column rows holds 26 rows).
_CHUNK_ROWS = 8192
_CHUNK_CELLS = 1 << 18
#: Lines, and bytes, looked at to detect the delimiter.
_SNIFF_LINES = 50
_SNIFF_BYTES = 256 << 10
#: Size of the pieces the header is read in while its columns are counted.
_HEADER_PIECE = 64 << 10
#: Excel's first line declaring the delimiter, ``sep=;`` (also quoted, any letter case, any line end).
_SEP_LINE = re.compile(rb'"?[sS][eE][pP]=([\t\x20-\x7e])"?[ \t]*(?:\r\n|\n|\r)?')
#: A number with '.' grouping thousands and ',' as the decimal mark: 1.234,5 or -12.000.000.
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:\.\d{3})+(?:,\d*)?")
_SEP_LINE_BYTES = 64
#: The delimiters of files in which a column may use a decimal comma without ``decimal`` given.
_COMMA_DECIMAL_DELIMITERS = frozenset(";\t|")


def parse_csv(
    data: bytes | IO[bytes],
    target: str | None = None,
    *,
    delimiter: str | None = None,
    decimal: str | None = None,
    na_values: Iterable[str] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_columns: int = DEFAULT_MAX_COLUMNS,
    max_expansion: float = DEFAULT_MAX_EXPANSION,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> ParsedDataset:
    """Parse a delimited text file with a header row.

    Parameters
    ----------
    data : bytes or binary file
        UTF-8 text, optionally with a byte-order mark.  A file must be
        seekable (it is read twice).  Blank lines are skipped; messages give
        both the data row and the physical line.
    target : str or None
        Name of the target column (surrounding whitespace ignored); ``None``
        or ``""``: the last column.
    delimiter : str or None
        One character (``"\\t"`` or ``"tab"`` for a tab); None: detected.
    decimal : {".", ","} or None
        The decimal mark of numbers.  None: ``.``, except for the columns of a
        semicolon-, tab- or pipe-delimited file that read as numbers only with
        a decimal comma (each read with ``,``, and a note says which).
    na_values : iterable of str or None
        Cells read as missing besides the empty cell (any letter case); None:
        :data:`NA_VALUES`.
    max_rows : int
        Most data rows accepted (``too_large`` above).
    max_columns : int
        Most columns accepted, target included (``too_large`` above); counted
        before the header is split.
    max_expansion, max_decompressed_bytes : float, int
        The float64 matrix of rows x columns may take at most
        ``max_expansion`` times the file's size and ``max_decompressed_bytes``
        (``too_large`` above; text is at most 8x smaller, so only a tight
        ``max_decompressed_bytes`` refuses a file that the other limits let in).

    Returns
    -------
    ParsedDataset
        ``X`` of shape (n_rows, n_feature_columns), float64 with NaN for a
        missing cell and level indices for categorical columns; ``y`` of shape
        (n_rows,).

    Raises
    ------
    ParseError
        On undecodable or malformed text, a bad header, an unknown target,
        bad cells (listed, up to :data:`MAX_BAD_CELLS`), a target without any
        value, or a size limit.
    """
    source: IO[bytes] = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
    if decimal is not None and decimal not in (".", ","):
        raise ParseError(f"decimal must be '.' or ',', got {decimal!r}", field="decimal")
    size = source.seek(0, io.SEEK_END)
    budget = decoded_budget(size, max_expansion, max_decompressed_bytes)
    source.seek(0)
    if source.read(2) in (b"\xff\xfe", b"\xfe\xff"):
        raise ParseError("the file is UTF-16 encoded; save it as UTF-8 (CSV UTF-8)", field="file")
    declared, body_start = _declared_delimiter(source)
    given = _given_delimiter(delimiter, decimal or ".") or declared
    if given is not None and given == decimal:
        raise ParseError(f"the delimiter and the decimal mark are both {given!r}", field="delimiter")
    seps = [given] if given else [d for d in DELIMITERS if d != decimal]
    _check_header_width(source, seps, max_columns, body_start)
    sep = given or _detect_delimiter(source, decimal or ".")
    missing = _na_set(na_values)
    # Without a given decimal mark, a column may turn out to use a decimal comma: it is counted both ways.
    guess_comma = decimal is None and sep in _COMMA_DECIMAL_DELIMITERS
    decimal = decimal or "."
    skip = 1 if body_start else 0

    # Pass 1: header, row count, ragged rows, and what each column holds.
    records = _records(source, sep, skip)
    first = next(records, None)
    if first is None:
        raise ParseError("the file is empty", field="file")
    _, raw_header = first
    names = [cell.strip() for cell in raw_header]
    if len(names) > max_columns:
        raise ParseError(
            f"the header has {len(names):,} columns, more than the limit of {max_columns:,}",
            kind="too_large",
            field="file",
        )
    _check_header(names, raw_header, delimiter)
    t = _target_index(names, target)
    width = len(names)
    stats = [_Stats() for _ in names]
    comma_stats = [_Stats() for _ in names] if guess_comma else None
    ragged: list[BadCell] = []
    n_ragged = 0
    n_rows = 0
    # Complete numeric chunks as converted by pass 1: kept (the size of the result) for pass 2.
    blocks: list[NDArray[np.float64] | None] = []
    for chunk in _chunks(records):
        good: list[tuple[int, int, list[str]]] = []
        for line, row in chunk:
            n_rows += 1
            if n_rows > max_rows:
                raise ParseError(
                    f"the file has more than {count(max_rows, 'data row')} (the limit)", kind="too_large", field="file"
                )
            if n_rows * width * 8 > budget:  # X and y as float64: what pass 2 allocates
                raise ParseError(
                    f"{count(n_rows, 'row')} x {count(width, 'column')} need more than {budget:,} bytes as float64: "
                    f"{budget_detail(size, max_expansion, max_decompressed_bytes)}",
                    kind="too_large",
                    field="file",
                )
            if len(row) != width:
                n_ragged += 1
                if len(ragged) < MAX_BAD_CELLS:
                    value = shorten(sep.join(row))
                    reason = f"has {count(len(row), 'field')}, expected {width}"
                    ragged.append(BadCell(n_rows, line, None, value, reason))
                continue
            good.append((n_rows, line, row))
        block = _all_numbers([row for _, _, row in good]) if decimal == "." else None
        blocks.append(block)
        if block is not None:
            for column_stats in [*stats, *(comma_stats or ())]:  # the common case, a complete numeric chunk
                column_stats.numbers += len(good)
            continue
        for c, column_stats in enumerate(stats):
            seen = column_stats.missing, column_stats.numbers
            clean = column_stats.scan(good, c, missing, decimal)
            if comma_stats is None:
                continue
            if clean:  # only numbers with '.': the same numbers with ','
                comma_stats[c].missing += column_stats.missing - seen[0]
                comma_stats[c].numbers += column_stats.numbers - seen[1]
            else:
                comma_stats[c].scan(good, c, missing, ",")
    if n_rows == 0:
        raise ParseError("no data rows: the file has a header but no data", field="file")

    decimals = [decimal] * width
    comma_notes: list[str] = []
    if comma_stats is not None:
        decimals, comma_notes = _choose_decimal_commas(names, stats, comma_stats)
    types = [s.kind(target=(c == t)) for c, s in enumerate(stats)]
    _raise_bad_cells(names, types, stats, ragged, n_ragged)
    if types[t] == "empty":
        raise ParseError(f"the target column {names[t]!r} has no values", field="target")

    # Pass 2: convert, into arrays sized by pass 1.
    keep = [c for c in range(width) if c != t and types[c] != "empty"]
    if not keep:
        raise ParseError("every feature column is empty: the file has no values besides the target", field="file")
    X = np.empty((n_rows, len(keep)), dtype=np.float64)
    target_numeric = types[t] == "numeric"
    y_values = np.empty(n_rows, dtype=np.float64)
    indexes: dict[int, dict[str, int]] = {c: {} for c in keep if types[c] == "categorical"}
    if not target_numeric:
        indexes[t] = {}
    if not all(types[c] == "numeric" for c in [*keep, t]):
        blocks = [None] * len(blocks)
    start = 0
    for k, rows in enumerate(_pass_two(source, sep, blocks, skip)):
        block, blocks[k] = blocks[k], None  # freed as X fills
        stop = start + (len(block) if block is not None else len(rows))
        if block is not None:
            X[start:stop] = block[:, keep]
            y_values[start:stop] = block[:, t]
            start = stop
            continue
        for j, c in enumerate(keep):
            cells = [row[c].strip() for row in rows]
            X[start:stop, j] = _convert(cells, types[c], missing, decimals[c], indexes.get(c))
        cells = [row[t].strip() for row in rows]
        y_values[start:stop] = _convert(
            cells, types[t] if target_numeric else "categorical", missing, decimals[t], indexes.get(t)
        )
        start = stop

    levels: list[tuple[str, ...] | None] = []
    for j, c in enumerate(keep):
        levels.append(_sort_levels(X[:, j], indexes[c]) if c in indexes else None)
    y: NDArray[Any]
    if target_numeric:
        y = y_values
    else:
        labels = _sort_levels(y_values, indexes[t])
        table = np.array(["", *labels], dtype=np.str_)
        codes = np.where(np.isnan(y_values), 0, y_values + 1).astype(np.intp)
        y = table[codes]

    feature_names = tuple(names[c] for c in keep)
    column_types = tuple(types[c] for c in keep)
    summary = summarize(X, column_types, levels, feature_names)
    summary.append(summarize_target(names[t], y))
    notes = (
        *comma_notes,
        *(
            f"column {names[c]!r} has no values (every cell is missing) and was left out"
            for c in range(width)
            if types[c] == "empty"
        ),
    )
    categorical = any(k == "categorical" for k in column_types)
    return ParsedDataset(
        X=X,
        y=y,
        feature_names=feature_names,
        target_name=names[t],
        column_types=column_types,
        levels=tuple(levels) if categorical else None,
        columns=summary,
        notes=notes,
    )


# --------------------------------------------------------------------------- reading


class _Lines:
    """The file's lines, decoded one at a time (a BOM dropped), with their ends; none longer than a record may be.

    ``record_bytes`` counts the bytes since the last record ended (the reader of
    records resets it), so a record that spans lines through quoted line breaks
    is bounded too.
    """

    def __init__(self, source: IO[bytes], skip: int = 0) -> None:
        self.source = source
        self.skip = skip  # leading lines not yielded (a ``sep=`` line); they still count in line numbers
        self.record_bytes = 0

    def __iter__(self) -> Iterator[str]:
        source = self.source
        source.seek(0)
        offset = 0
        number = 0
        while raw := source.readline(MAX_RECORD_BYTES + 1):
            number += 1
            self.record_bytes += len(raw)
            if self.record_bytes > MAX_RECORD_BYTES:
                raise ParseError(
                    f"line {number} is longer than {MAX_RECORD_BYTES:,} bytes, the most one row may take",
                    kind="too_large",
                    field="file",
                )
            if number <= self.skip:
                self.record_bytes = 0
            else:
                yield _decode_line(raw, number, offset)
            offset += len(raw)


def _decode_line(raw: bytes, number: int, offset: int) -> str:
    text = raw[3:] if number == 1 and raw.startswith(codecs.BOM_UTF8) else raw
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = offset + (len(raw) - len(text)) + exc.start
        raise ParseError(
            f"the file is not valid UTF-8: byte {at} (line {number}) cannot be decoded; save it as UTF-8",
            field="file",
        ) from exc


def _records(source: IO[bytes], sep: str, skip: int = 0) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(first physical line, fields)`` of each non-blank record, after the first ``skip`` lines.

    ``strict=True`` turns stray or unclosed quotes into errors instead of
    silently swallowing the rest of the file into one field.
    """
    lines = _Lines(source, skip)
    reader = csv.reader(lines, delimiter=sep, strict=True)
    previous = skip
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ParseError(f"malformed CSV at line {skip + reader.line_num}: {exc}", field="file") from exc
        lines.record_bytes = 0
        start = previous + 1  # a quoted field may span lines: report where the record starts
        previous = skip + reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        yield start, row


def _pass_two(
    source: IO[bytes], sep: str, blocks: list[NDArray[np.float64] | None], skip: int
) -> Iterator[list[list[str]]]:
    """The data rows of each chunk of pass 1 — without reading the file again when pass 1 kept every chunk."""
    if all(block is not None for block in blocks):
        yield from ([] for _ in blocks)
        return
    records = _records(source, sep, skip)
    next(records)  # the header
    for chunk in _chunks(records):
        yield [row for _, row in chunk]


def _chunks(records: Iterator[tuple[int, list[str]]]) -> Iterator[list[tuple[int, list[str]]]]:
    """Records in chunks of at most :data:`_CHUNK_ROWS` rows and about :data:`_CHUNK_CELLS` cells (the same
    chunks on both passes: they depend on the records alone)."""
    chunk: list[tuple[int, list[str]]] = []
    cells = 0
    for record in records:
        chunk.append(record)
        cells += len(record[1])
        if len(chunk) >= _CHUNK_ROWS or cells >= _CHUNK_CELLS:
            yield chunk
            chunk = []
            cells = 0
    if chunk:
        yield chunk


def _given_delimiter(given: str | None, decimal: str) -> str | None:
    """The given delimiter, checked (``"\\t"`` or ``"tab"`` for a tab); None when it is to be detected."""
    if given is None or given == "":
        return None
    sep = "\t" if given in ("\\t", "tab", "TAB") else given
    if len(sep) != 1 or sep in '"\r\n' or sep.isalnum():
        raise ParseError(
            f"delimiter must be one character such as ',', ';', '|' or '\\t', got {given!r}", field="delimiter"
        )
    if sep == decimal:
        raise ParseError(f"the delimiter and the decimal mark are both {sep!r}", field="delimiter")
    return sep


def _choose_decimal_commas(names: list[str], dot: list[_Stats], comma: list[_Stats]) -> tuple[list[str], list[str]]:
    """Each column's decimal mark when none was given, and the notes that say which columns use a comma.

    A column is read with a decimal comma when it is not all finite numbers with ``.`` and it is with ``,``;
    its stats in ``dot`` are replaced by those in ``comma``. A column most of whose cells read with a comma
    but some not (typically ``1.234,5``, a thousands separator) stays as it was, with a note.
    """
    decimals = ["."] * len(names)
    converted: list[str] = []
    notes: list[str] = []
    for c, (d, k) in enumerate(zip(dot, comma, strict=True)):
        if d.all_numbers():
            continue
        if k.all_numbers():  # some cells read as numbers only with ','
            decimals[c] = ","
            dot[c] = k
            converted.append(names[c])
            continue
        present = k.numbers + k.booleans + k.others
        grouped = [value for _, _, value, _ in k.odd if _THOUSANDS.fullmatch(value)]
        if grouped or (k.numbers > d.numbers and k.numbers >= NUMERIC_MAJORITY * present):
            example = (grouped or [k.odd[0][2]])[0]
            n_other = present - k.numbers
            notes.append(
                f"column {names[c]!r} looks like numbers with a decimal comma, but {n_other:,} of its {present:,} "
                f"cells (such as {shorten(example)!r}) {'is' if n_other == 1 else 'are'} not, so it was read as "
                "text; remove thousands separators, or send decimal=, to have those cells listed as errors"
            )
    if converted:
        listed = ", ".join(repr(name) for name in converted)
        notes.insert(
            0,
            f"{count(len(converted), 'column')} ({listed}) {'uses' if len(converted) == 1 else 'use'} a decimal "
            f"comma (as in 22,5) and {'was' if len(converted) == 1 else 'were'} read as numbers; send decimal=. "
            "to keep such columns as text",
        )
    return decimals, notes


def _declared_delimiter(source: IO[bytes]) -> tuple[str | None, int]:
    """A first line ``sep=X`` (as Excel writes it): ``(X, the byte offset after the line)``, else ``(None, 0)``."""
    source.seek(0)
    raw = source.readline(_SEP_LINE_BYTES)
    text = raw[3:] if raw.startswith(codecs.BOM_UTF8) else raw
    match = _SEP_LINE.fullmatch(text)
    if match is None:
        return None, 0
    sep = match.group(1).decode("ascii")
    if sep in '"\r\n' or sep.isalnum():
        return None, 0
    return sep, len(raw)


def _check_header_width(source: IO[bytes], seps: list[str], max_columns: int, start: int = 0) -> None:
    """Refuse a header of more than ``max_columns`` columns, or longer than a record may be, before it is split.

    The header (the first line with content, quoted line breaks included) is read
    in pieces of :data:`_HEADER_PIECE` bytes; the delimiters outside quotes are
    counted for each candidate, so a single 60 MB line costs one piece per
    ``max_columns`` delimiters, never a list of millions of strings.  ``start``:
    the byte offset the header's search begins at (after a ``sep=`` line).
    """
    source.seek(start)
    marks = [sep.encode() for sep in seps]
    counts = [0] * len(marks)
    quoted = content = False
    read = 0
    while piece := source.read(_HEADER_PIECE):
        read += len(piece)
        for k, part in enumerate(piece.split(b'"')):
            if k:  # each quote toggles; a doubled quote inside a quoted field toggles twice
                quoted = not quoted
                content = True
            if quoted:
                continue
            rest = part
            while True:
                end = rest.find(b"\n")
                line = rest if end < 0 else rest[:end]
                if not content and (line.strip(b" \t\r") or any(m in line for m in marks)):
                    content = True
                if content:
                    for i, mark in enumerate(marks):
                        counts[i] += line.count(mark)
                if end < 0:
                    break
                if content:
                    if max(counts) >= max_columns:  # the whole header read: say how many
                        raise ParseError(
                            f"the header has {max(counts) + 1:,} columns, more than the limit of {max_columns:,}",
                            kind="too_large",
                            field="file",
                        )
                    return
                rest = rest[end + 1 :]
        if max(counts) >= max_columns:
            raise ParseError(
                f"the header has more than {max_columns:,} columns (the limit)", kind="too_large", field="file"
            )
        if read > MAX_RECORD_BYTES:
            raise ParseError(
                f"the header is longer than {MAX_RECORD_BYTES:,} bytes, the most one row may take",
                kind="too_large",
                field="file",
            )


def _detect_delimiter(source: IO[bytes], decimal: str) -> str:
    """The best of :data:`DELIMITERS` on the first lines."""
    sample: list[str] = []
    taken = 0
    for line in _Lines(source):
        if line.strip():
            sample.append(line)
            taken += len(line)
        if len(sample) >= _SNIFF_LINES or taken >= _SNIFF_BYTES:
            break
    text = "".join(sample)
    best, best_score = ",", (-1.0, 0)
    for sep in DELIMITERS:
        if sep == decimal:
            continue
        try:
            rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=sep) if row]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        agree = sum(len(row) == len(rows[0]) for row in rows) / len(rows)
        score = (agree, len(rows[0]))
        if score > best_score:
            best, best_score = sep, score
    return best


def _na_set(na_values: Iterable[str] | None) -> frozenset[str]:
    """Missing-value markers as the exact strings to look up (every letter case of the given ones)."""
    markers = NA_VALUES if na_values is None else tuple(v.strip() for v in na_values)
    out = {""}
    for marker in markers:
        out.update({marker, marker.lower(), marker.upper(), marker.capitalize()})
    return frozenset(out)


# --------------------------------------------------------------------------- header


def _check_header(names: list[str], raw: list[str], delimiter: str | None) -> None:
    """Column names must be non-empty and unique, with at least one feature besides the target."""
    if len(names) < 2:
        hint = ""
        if delimiter:
            hint = f"; is {delimiter!r} the file's delimiter?"
        raise ParseError(
            f"the header has a single column {shorten(names[0])!r}: need at least one feature column and a "
            f"target column (columns are separated by one of , ; tab |){hint}",
            field="file",
        )
    unique_names(
        names,
        "column {i} of the header has an empty name",
        "duplicate column name {name!r} (columns {first} and {i})",
    )


def _target_index(names: list[str], target: str | None) -> int:
    if target is None or not target.strip():
        return len(names) - 1
    key = target.strip()
    if key not in names:
        raise ParseError(f"no column {key!r} in the file; columns: {shorten_list(names)}", field="target")
    return names.index(key)


# --------------------------------------------------------------------------- types


@dataclass
class _Stats:
    """What pass 1 saw in one column."""

    missing: int = 0
    numbers: int = 0
    booleans: int = 0
    others: int = 0
    nonfinite: int = 0
    #: The first odd cells in reading order: (row, line, value, "text" | "nonfinite").
    odd: list[tuple[int, int, str, str]] = field(default_factory=list)

    def scan(self, rows: list[tuple[int, int, list[str]]], c: int, missing: frozenset[str], decimal: str) -> bool:
        """Count the cells of column ``c`` in ``rows`` ((row number, line, fields) each).

        True when every present cell is a finite number.
        """
        cells = [row[c].strip() for _, _, row in rows]
        present = [v for v in cells if v not in missing]
        self.missing += len(cells) - len(present)
        if not present:
            return True
        numeric = [v.replace(",", ".") for v in present] if decimal == "," else present
        try:
            values = np.array(numeric, dtype=np.float64)
        except (ValueError, OverflowError):
            values = None
        if values is not None and bool(np.isfinite(values).all()):
            self.numbers += len(present)
            return True
        if len(self.odd) >= MAX_BAD_CELLS:
            self._count(present, numeric)
            return False
        for (number, line, _), cell in zip(rows, cells, strict=True):
            if cell in missing:
                continue
            try:
                if cell[0] not in _NUMBER_STARTS:  # text: no exception to pay for
                    raise ValueError(cell)
                value = float(cell.replace(",", ".") if decimal == "," else cell)
            except ValueError:
                lowered = cell.lower()
                if lowered in _TRUE or lowered in _FALSE:
                    self.booleans += 1
                else:
                    self.others += 1
                if len(self.odd) < MAX_BAD_CELLS:
                    self.odd.append((number, line, cell, "text"))
                continue
            self.numbers += 1
            if not math.isfinite(value):
                self.nonfinite += 1
                if len(self.odd) < MAX_BAD_CELLS:
                    self.odd.append((number, line, cell, "nonfinite"))
        return False

    def _count(self, present: list[str], numeric: list[str]) -> None:
        """Only the counts, once the first odd cells are recorded: numbers, non-finite ones, booleans, others."""
        candidates = [v for v in numeric if v[0] in _NUMBER_STARTS]
        try:
            values = np.array(candidates, dtype=np.float64)
        except (ValueError, OverflowError):
            parsed = [_float_or_none(v) for v in candidates]
            values = np.array([v for v in parsed if v is not None], dtype=np.float64)
        n_numbers = len(values)
        self.numbers += n_numbers
        self.nonfinite += int(np.count_nonzero(~np.isfinite(values)))
        n_booleans = sum(v.lower() in _TRUE or v.lower() in _FALSE for v in present) if n_numbers < len(present) else 0
        self.booleans += n_booleans
        self.others += len(present) - n_numbers - n_booleans

    def all_numbers(self) -> bool:
        """Every present cell is a finite number (and there is one)."""
        return self.numbers > 0 and not (self.booleans or self.others or self.nonfinite)

    def kind(self, *, target: bool) -> str:
        """numeric | boolean | categorical | empty (a target is numeric or categorical)."""
        present = self.numbers + self.booleans + self.others
        if present == 0:
            return "empty"
        if self.numbers == present or (not target and self.numbers >= NUMERIC_MAJORITY * present):
            return "numeric"
        if target:
            return "categorical"
        if self.booleans == present:
            return "boolean"
        return "categorical"

    def bad(self, kind: str) -> int:
        """How many of the column's cells are bad for its type."""
        if kind != "numeric":
            return 0
        return self.booleans + self.others + self.nonfinite


def _raise_bad_cells(
    names: list[str], types: list[str], stats: list[_Stats], ragged: list[BadCell], n_ragged: int
) -> None:
    cells = list(ragged)
    total = n_ragged
    for c, (kind, s) in enumerate(zip(types, stats, strict=True)):
        n_bad = s.bad(kind)
        if not n_bad:
            continue
        total += n_bad
        share = s.numbers / max(s.numbers + s.booleans + s.others, 1)
        for number, line, value, what in s.odd:
            if what == "nonfinite":
                reason = "is NaN or Inf, not a value; leave the cell empty for a missing value"
            else:
                reason = f"is not a number, in a numeric column ({share:.0%} of its values are numbers)"
            cells.append(BadCell(number, line, names[c], shorten(value), reason))
    if not total:
        return
    order = {name: i for i, name in enumerate(names)}
    cells.sort(key=lambda cell: (cell.row, -1 if cell.column is None else order[cell.column]))
    shown = cells[:MAX_BAD_CELLS]
    listed = f"the first {len(shown)} listed" if total > len(shown) else "listed"
    detail = f"{count(total, 'bad cell')} ({listed}): " + "; ".join(cell.describe() for cell in shown[:3])
    if len(shown) > 3:
        detail += "; …"
    raise ParseError(detail, field="file", cells=shown)


# --------------------------------------------------------------------------- values


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _all_numbers(rows: list[list[str]]) -> NDArray[np.float64] | None:
    """The rows as a float64 matrix when every cell is a finite number, else None (NumPy parses in C)."""
    if not rows:
        return None
    try:
        block = np.array(rows, dtype=np.float64)
    except (ValueError, OverflowError):
        return None
    return block if bool(np.isfinite(block).all()) else None


def _convert(
    cells: list[str], kind: str, missing: frozenset[str], decimal: str, index: dict[str, int] | None
) -> NDArray[np.float64]:
    """One column of one chunk as float64: values, 0/1, or level indices (first-seen order); NaN when missing."""
    if kind == "numeric":
        prepared = ["nan" if v in missing else v for v in cells]
        if decimal == ",":
            prepared = [v.replace(",", ".") for v in prepared]
        try:
            return np.array(prepared, dtype=np.float64)
        except (ValueError, OverflowError):  # NumPy stricter than float(): convert one by one
            return np.array([float(v) for v in prepared], dtype=np.float64)
    if kind == "boolean":
        return np.array(
            [math.nan if v in missing else 1.0 if v.lower() in _TRUE else 0.0 for v in cells], dtype=np.float64
        )
    assert index is not None
    return np.array([math.nan if v in missing else index.setdefault(v, len(index)) for v in cells], dtype=np.float64)


def _sort_levels(column: NDArray[np.float64], index: dict[str, int]) -> tuple[str, ...]:
    """Renumber a categorical column in place so its levels are in sorted order; return the levels."""
    levels = sorted(index, key=index.__getitem__)
    order = sorted(range(len(levels)), key=levels.__getitem__)
    rank = np.empty(len(levels), dtype=np.float64)
    rank[order] = np.arange(len(levels), dtype=np.float64)
    present = ~np.isnan(column)
    column[present] = rank[column[present].astype(np.intp)]
    return tuple(levels[i] for i in order)
