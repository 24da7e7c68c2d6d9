"""Dataset uploads: bytes (CSV, NPZ) or decoded JSON in, validated arrays out.

Pure functions over NumPy and the standard library: no FastAPI, no Redis, so
the rules can be tested (and reused) without a server.  Every problem with the
uploaded data is a :class:`ParseError` whose ``detail`` says what is wrong and
where (row, line, column), with the HTTP ``status`` it maps to (422 bad data,
413 too large, 415 unsupported type) and the request ``field`` it concerns.

Row numbers in messages are 1-based data rows as a user counts them; CSV
messages add the physical line (``row 3 (line 4)``: the header is line 1).
JSON messages use the 0-based index of the JSON path instead
(``features[3][1]``, field ``features.3.1``), since that is how the client
addresses the value.
"""

from __future__ import annotations

import array
import csv
import io
import math
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_MAX_COLUMNS",
    "DEFAULT_MAX_ROWS",
    "NPZ_MAX_UNCOMPRESSED_BYTES",
    "ParseError",
    "ParsedDataset",
    "distinct_labels",
    "parse_csv",
    "parse_json",
    "parse_npz",
    "parse_upload",
]

DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_MAX_COLUMNS = 10_000

#: Largest decompressed size of one ``.npz`` member, and of ``X`` once
#: converted to float64.  The upload limit bounds the *compressed* bytes only;
#: deflate expands up to ~1000x, so without this a small zip could ask for
#: tens of gigabytes.
NPZ_MAX_UNCOMPRESSED_BYTES = 1 << 30

CSV_MEDIA_TYPES = frozenset({"text/csv", "application/csv", "application/vnd.ms-excel"})
NPZ_MEDIA_TYPES = frozenset({"application/x-npz"})
#: Generic binary types: NPZ only when the name says ``.npz`` (or the bytes are a zip).
_BINARY_MEDIA_TYPES = frozenset({"application/octet-stream", "application/zip", "application/x-zip-compressed"})
_ACCEPTED = "a CSV file (text/csv, *.csv) or a NumPy archive (application/x-npz, *.npz)"

_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_NPY_MAGIC = b"\x93NUMPY"

#: Rows converted per NumPy call: bounds the Python strings alive at once
#: (a 64 MB CSV is tens of millions of cells) while keeping the fast path fast.
_CHUNK_ROWS = 8192

#: What reading a damaged or hostile archive can raise besides BadZipFile:
#: zlib/bz2/lzma errors, truncated headers, encrypted or exotic members.
_NPZ_READ_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    ValueError,
    OSError,
    EOFError,
    KeyError,
    TypeError,
    struct.error,
    NotImplementedError,  # unsupported compression method
    RuntimeError,  # encrypted member ("password required")
    UnicodeDecodeError,
    SyntaxError,  # a mangled .npy header: NumPy evaluates it as a Python literal
    tokenize.TokenError,
)


class ParseError(Exception):
    """Bad uploaded data.

    Parameters
    ----------
    detail : str
        Human message naming what is wrong and where (row, line, column).
    status : int, default 422
        HTTP status: 422 invalid data, 413 too large, 415 unsupported media type.
    field : str or None
        The request field concerned, e.g. ``"file"``, ``"target"``,
        ``"features"`` or ``"features.3.1"`` (a dotted JSON path, 0-based).
    """

    def __init__(self, detail: str, *, status: int = 422, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.field = field

    def __repr__(self) -> str:
        return f"ParseError({self.detail!r}, status={self.status}, field={self.field!r})"


# eq=False: the generated __eq__/__hash__ would compare (and hash) arrays,
# which raises; compare the arrays themselves instead (as engine.Dataset does).
@dataclass(frozen=True, eq=False)
class ParsedDataset:
    """A validated upload.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float64
        Features, all finite; ``n_samples >= 1`` and ``n_features >= 1``.
    y : ndarray of shape (n_samples,)
        Targets: float64 (all finite) when every value is numeric, else a
        unicode string array (``'<U..'``, stripped, non-empty; never object).
    feature_names : tuple of str, length n_features
        Unique, non-empty column names.
    target_name : str
        Name of the target column.
    """

    X: NDArray[np.float64]
    y: NDArray[Any]
    feature_names: tuple[str, ...]
    target_name: str


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


# --------------------------------------------------------------------------- dispatch


def parse_upload(
    data: bytes,
    *,
    filename: str | None,
    content_type: str | None,
    target: str | None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_columns: int = DEFAULT_MAX_COLUMNS,
) -> ParsedDataset:
    """Parse an uploaded file as CSV or NPZ, chosen by type, name and content.

    Rules, first match wins: bytes starting with the zip magic are NPZ (a CSV
    never does); ``application/x-npz`` or a ``*.npz`` name is NPZ; a CSV media
    type (``text/csv``, ``application/csv``, ``application/vnd.ms-excel``,
    which Windows reports for ``.csv``) or a ``*.csv`` name is CSV.  Anything
    else is refused with status 415.

    Parameters
    ----------
    data : bytes
        The file's content.  Its size limit is the caller's (enforced while
        the body streams in).
    filename : str or None
        Client-side file name; only its extension is used.
    content_type : str or None
        The part's media type; parameters (``; charset=...``) are ignored.
    target : str or None
        CSV target column (default: the last).  For NPZ the target is ``y``;
        ``None``, ``""`` or ``"target"`` are accepted, any other name is refused.
    max_rows, max_columns : int
        Size limits; exceeding one is a 413.

    Returns
    -------
    ParsedDataset

    Raises
    ------
    ParseError
        415 for an unsupported type, else as :func:`parse_csv` / :func:`parse_npz`.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    name = (filename or "").strip().lower()
    ext = name.rsplit(".", 1)[-1] if "." in name else ""

    # An .xlsx/.ods workbook is a zip too: let it reach the 415 with its hint.
    zipped = data.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)) and ext not in ("xlsx", "ods")
    if zipped or ext == "npz" or media in NPZ_MEDIA_TYPES:
        kind = "npz"
    elif ext == "csv" or (media in CSV_MEDIA_TYPES and ext not in ("xls", "xlsx", "ods")):
        kind = "csv"
    else:
        shown = repr(content_type) if content_type else "no media type"
        if filename:
            shown += f" (file {filename!r})"
        hint = "; export spreadsheets as CSV" if ext in ("xls", "xlsx", "ods") or "spreadsheet" in media else ""
        raise ParseError(f"unsupported upload: {shown}; send {_ACCEPTED}{hint}", status=415, field="file")

    if kind == "csv":
        return parse_csv(data, target, max_rows=max_rows, max_columns=max_columns)
    # Checked before parsing: an .npz's target is always its y, named "target".
    if target is not None and target.strip() not in ("", "target"):
        raise ParseError(
            f"'target' selects a CSV column; the target of a .npz upload is its array y (got target={target!r})",
            field="target",
        )
    return parse_npz(data, max_rows=max_rows, max_columns=max_columns)


# --------------------------------------------------------------------------- CSV


def parse_csv(
    data: bytes,
    target: str | None = None,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_columns: int = DEFAULT_MAX_COLUMNS,
) -> ParsedDataset:
    """Parse a comma-separated file with a header row.

    Parameters
    ----------
    data : bytes
        UTF-8 text, optionally with a byte-order mark.  Blank lines are
        skipped (a data row has at least two fields, so a blank line is never
        one); messages give both the data row and the physical line.
    target : str or None
        Name of the target column (surrounding whitespace ignored); ``None``
        or ``""``: the last column.
    max_rows : int
        Most data rows accepted (413 above).
    max_columns : int
        Most columns accepted, target included (413 above).

    Returns
    -------
    ParsedDataset
        ``X`` of shape (n_rows, n_columns - 1), float64; ``y`` of shape
        (n_rows,), float64 if every target cell is a finite number, else the
        stripped cells as a unicode array.

    Raises
    ------
    ParseError
        On undecodable or malformed text, a bad header, an unknown target,
        a ragged row, a non-numeric / empty / NaN / Inf feature cell, an empty
        target cell, a numeric target with NaN or Inf, or a size limit.
    """
    text = _decode_text(data)
    if not text.strip():
        raise ParseError("the file is empty", field="file")
    records = _csv_records(text)
    first = next(records, None)
    if first is None:  # defensive: non-blank text always yields a record
        raise ParseError("the file is empty", field="file")
    _, raw_header = first
    names = [cell.strip() for cell in raw_header]
    n_columns = len(names)
    if n_columns > max_columns:
        raise ParseError(
            f"the header has {n_columns:,} columns, more than the limit of {max_columns:,}", status=413, field="file"
        )
    _check_header(names, raw_header)
    t = _target_index(names, target)
    feature_names = tuple(name for i, name in enumerate(names) if i != t)

    blocks: list[NDArray[np.float64]] = []
    labels: list[str] = []
    lines = array.array("q")  # physical line of every data row, for target messages
    chunk: list[list[str]] = []
    chunk_lines: list[int] = []
    n_rows = 0
    for line, row in records:
        n_rows += 1
        if n_rows > max_rows:
            raise ParseError(
                f"the file has more than {_count(max_rows, 'data row')} (the limit)", status=413, field="file"
            )
        if len(row) != n_columns:
            # Convert what came before first, so the earliest error is the one reported.
            _flush(chunk, chunk_lines, n_rows - len(chunk), t, names, blocks, labels, lines)
            raise ParseError(
                f"row {n_rows} (line {line}) has {_count(len(row), 'field')}, expected {n_columns}", field="file"
            )
        chunk.append(row)
        chunk_lines.append(line)
        if len(chunk) >= _CHUNK_ROWS:
            _flush(chunk, chunk_lines, n_rows - len(chunk) + 1, t, names, blocks, labels, lines)
            chunk, chunk_lines = [], []
    _flush(chunk, chunk_lines, n_rows - len(chunk) + 1, t, names, blocks, labels, lines)
    if n_rows == 0:
        raise ParseError("no data rows: the file has a header but no data", field="file")

    X = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=0)
    y = _csv_target(labels, lines, names[t])
    return ParsedDataset(X=X, y=y, feature_names=feature_names, target_name=names[t])


def _decode_text(data: bytes) -> str:
    """UTF-8 (BOM allowed) to text, or a ParseError saying where decoding failed."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ParseError("the file is UTF-16 encoded; save it as UTF-8 (CSV UTF-8)", field="file")
    try:
        return bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ParseError(
            f"the file is not valid UTF-8: byte {exc.start} (line {line}) cannot be decoded; save it as UTF-8",
            field="file",
        ) from exc


def _csv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(first physical line, fields)`` of each non-blank record.

    ``strict=True`` turns stray or unclosed quotes into errors instead of
    silently swallowing the rest of the file into one field.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    previous = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ParseError(f"malformed CSV at line {reader.line_num}: {exc}", field="file") from exc
        start = previous + 1  # a quoted field may span lines: report where the record starts
        previous = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        yield start, row


def _check_header(names: list[str], raw: list[str]) -> None:
    """Column names must be non-empty and unique, with at least one feature besides the target."""
    if len(names) < 2:
        hint = ""
        if ";" in raw[0] or "\t" in raw[0]:
            hint = "; the file seems to use ';' or tabs, but only commas separate columns"
        raise ParseError(
            f"the header has a single column {names[0]!r}: need at least one feature column and a target column{hint}",
            field="file",
        )
    _unique_names(
        names,
        "column {i} of the header has an empty name",
        "duplicate column name {name!r} (columns {first} and {i})",
    )


def _target_index(names: list[str], target: str | None) -> int:
    if target is None or not target.strip():
        return len(names) - 1
    key = target.strip()
    if key not in names:
        raise ParseError(f"no column {key!r} in the file; columns: {_shorten_list(names)}", field="target")
    return names.index(key)


def _flush(
    rows: list[list[str]],
    rows_lines: list[int],
    first_row: int,
    t: int,
    names: list[str],
    blocks: list[NDArray[np.float64]],
    labels: list[str],
    lines: array.array[int],
) -> None:
    """Convert one chunk of rectangular rows, appending to ``blocks``, ``labels`` and ``lines``."""
    if not rows:
        return
    features = [row[:t] + row[t + 1 :] for row in rows]
    targets = [row[t].strip() for row in rows]
    block: NDArray[np.float64] | None
    try:
        # Fast path: NumPy parses strings with Python's float() rules, in C.
        block = np.array(features, dtype=np.float64)
    except (ValueError, OverflowError):
        block = None
    if block is None or not np.isfinite(block).all() or "" in targets:
        block = _scan_rows(rows, rows_lines, first_row, t, names)
    blocks.append(block)
    labels.extend(targets)
    lines.extend(rows_lines)


def _scan_rows(
    rows: list[list[str]], rows_lines: list[int], first_row: int, t: int, names: list[str]
) -> NDArray[np.float64]:
    """Cell-by-cell conversion: raises at the first bad cell in reading order.

    Only reached when the fast path failed; if no cell is bad after all (a
    parser corner where NumPy is stricter than ``float()``), the converted
    values are returned.
    """
    out = np.empty((len(rows), len(names) - 1), dtype=np.float64)
    for i, row in enumerate(rows):
        where = f"row {first_row + i} (line {rows_lines[i]})"
        j = 0
        for c, cell in enumerate(row):
            value = cell.strip()
            if c == t:
                if not value:
                    raise ParseError(f"empty target value at {where}, column {names[c]!r}", field="file")
                continue
            if not value:
                raise ParseError(
                    f"empty value at {where}, column {names[c]!r}; missing values are not supported", field="file"
                )
            try:
                number = float(value)
            except ValueError:
                raise ParseError(
                    f"non-numeric value {_shorten(value)!r} at {where}, column {names[c]!r}", field="file"
                ) from None
            if not math.isfinite(number):
                raise ParseError(f"NaN or Inf ({_shorten(value)!r}) at {where}, column {names[c]!r}", field="file")
            out[i, j] = number
            j += 1
    return out


def _csv_target(values: list[str], lines: array.array[int], name: str) -> NDArray[Any]:
    """Float64 when every cell is a number, else string labels.

    A column of numbers with a NaN or Inf among them is refused rather than
    turned into labels: that is almost surely a regression target with a
    missing value, not thousands of classes.
    """
    y: NDArray[np.float64]
    try:
        y = np.array(values, dtype=np.float64)
    except (ValueError, OverflowError):
        return np.array(values, dtype=np.str_)
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        i = int(bad[0])
        raise ParseError(
            f"NaN or Inf ({_shorten(values[i])!r}) at row {i + 1} (line {lines[i]}), target column {name!r}",
            field="file",
        )
    return y


# --------------------------------------------------------------------------- NPZ


def parse_npz(
    data: bytes,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_columns: int = DEFAULT_MAX_COLUMNS,
) -> ParsedDataset:
    """Parse a NumPy ``.npz`` archive holding ``X``, ``y`` and optionally ``feature_names``.

    Array headers are read and checked (dtype, shape, limits) before any
    array data is loaded, so an object array, a lying header or a zip bomb is
    refused without allocating for it.

    Parameters
    ----------
    data : bytes
        The archive, as written by :func:`numpy.savez` or :func:`numpy.savez_compressed`.
        Required members: ``X`` of shape (n_samples, n_features), bool,
        integer or real float; ``y`` of shape (n_samples,), bool, integer,
        real float or string (``U``, or ``S`` decoded as UTF-8).  Optional:
        ``feature_names`` of shape (n_features,), strings.  Other members are
        ignored.
    max_rows, max_columns : int
        Size limits on ``X`` (413 above); see also :data:`NPZ_MAX_UNCOMPRESSED_BYTES`.

    Returns
    -------
    ParsedDataset
        ``X`` as float64; ``y`` as float64 if numeric, else stripped unicode
        labels (string arrays stay labels even when they look numeric);
        feature names default to ``x0, x1, ...``; target name ``"target"``.

    Raises
    ------
    ParseError
        422 for anything but a valid archive of valid arrays, 413 over a limit.
    """
    if not data:
        raise ParseError("the file is empty", field="file")
    # np.load would read a bare .npy (allocating what its header claims) or
    # try pickle on anything else; only a zip is an .npz.
    if not data.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        hint = ""
        if data.startswith(_NPY_MAGIC):
            hint = ": it is a single .npy array; save X and y together with np.savez"
        raise ParseError(f"not a valid .npz file{hint}", field="file")
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
    except _NPZ_READ_ERRORS as exc:
        raise ParseError(f"not a valid .npz file: {exc}", field="file") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):  # pragma: no cover - excluded by the magic check
        raise ParseError("not a valid .npz file", field="file")
    with archive:
        return _parse_archive(archive, max_rows, max_columns)


def _parse_archive(archive: np.lib.npyio.NpzFile, max_rows: int, max_columns: int) -> ParsedDataset:
    zf = archive.zip
    if zf is None:  # pragma: no cover - only once closed
        raise ParseError("not a valid .npz file", field="file")
    members = _members(zf)
    missing = [key for key in ("X", "y") if key not in members]
    if missing:
        found = ", ".join(sorted(members)) or "none"
        raise ParseError(
            f"the .npz file has no array {' or '.join(missing)} (found: {found}); "
            "it needs X (n_samples, n_features) and y (n_samples,)",
            field="file",
        )

    # Headers first: every check that needs no data.
    x_shape, x_dtype = _header(zf, members["X"], "X")
    if len(x_shape) != 2:
        raise ParseError(f"X must be 2-D (n_samples, n_features), got shape {x_shape}", field="file")
    n, p = x_shape
    if n > max_rows:
        raise ParseError(f"X has {n:,} rows, more than the limit of {max_rows:,}", status=413, field="file")
    if p > max_columns:
        raise ParseError(f"X has {p:,} columns, more than the limit of {max_columns:,}", status=413, field="file")
    if n * p * 8 > NPZ_MAX_UNCOMPRESSED_BYTES:
        raise ParseError(
            f"X of shape {x_shape} needs more than {NPZ_MAX_UNCOMPRESSED_BYTES:,} bytes as float64",
            status=413,
            field="file",
        )
    _check_kind(x_dtype, "X", "biuf", "numbers (bool, integer or float)")
    if n == 0:
        raise ParseError("no data rows: X has 0 rows", field="file")
    if p == 0:
        raise ParseError("X has no feature columns", field="file")

    y_shape, y_dtype = _header(zf, members["y"], "y")
    if len(y_shape) != 1:
        hint = "; flatten it with y.ravel()" if len(y_shape) == 2 and 1 in y_shape else ""
        raise ParseError(f"y must be 1-D (n_samples,), got shape {y_shape}{hint}", field="file")
    if y_shape[0] != n:
        raise ParseError(f"X has {_count(n, 'row')} but y has {_count(y_shape[0], 'value')}", field="file")
    _check_kind(y_dtype, "y", "biufUS", "numbers or strings")

    names_member = members.get("feature_names")
    if names_member is not None:
        f_shape, f_dtype = _header(zf, names_member, "feature_names")
        if f_shape != (p,):
            raise ParseError(
                f"feature_names must have shape ({p},), one name per column of X, got {f_shape}", field="file"
            )
        _check_kind(f_dtype, "feature_names", "US", "strings")

    X = np.ascontiguousarray(_load(archive, "X"), dtype=np.float64)
    feature_names = _npz_feature_names(archive, p) if names_member is not None else _default_names(p)
    if not np.isfinite(X).all():
        r, c = (int(v) for v in np.argwhere(~np.isfinite(X))[0])
        raise ParseError(f"NaN or Inf in X at row {r + 1}, column {c + 1} ({feature_names[c]!r})", field="file")
    y = _npz_target(_load(archive, "y"))
    return ParsedDataset(X=X, y=y, feature_names=feature_names, target_name="target")


def _members(zf: zipfile.ZipFile) -> dict[str, str]:
    """Array name -> zip member name, resolved the way :class:`numpy.lib.npyio.NpzFile` does."""
    out: dict[str, str] = {}
    for member in zf.namelist():
        key = member[:-4] if member.endswith(".npy") else member
        # NpzFile looks up the literal name before adding ".npy".
        if key not in out or member == key:
            out[key] = member
    return out


def _header(zf: zipfile.ZipFile, member: str, key: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype from a member's .npy header, checked against its real size."""
    try:
        info = zf.getinfo(member)
        if info.file_size > NPZ_MAX_UNCOMPRESSED_BYTES:
            raise ParseError(
                f"array {key!r} is {info.file_size:,} bytes uncompressed, "
                f"more than the limit of {NPZ_MAX_UNCOMPRESSED_BYTES:,}",
                status=413,
                field="file",
            )
        with zf.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
            else:  # 3.0 only exists for structured dtypes with non-Latin-1 field names: refused anyway
                raise ParseError(f"array {key!r} uses unsupported .npy format version {version}", field="file")
            header_end = fp.tell()
    except _NPZ_READ_ERRORS as exc:
        raise ParseError(f"not a valid .npz file: cannot read array {key!r} ({exc})", field="file") from exc
    shape = tuple(int(d) for d in shape)
    if dtype.hasobject:
        raise ParseError(
            f"object arrays are not allowed: {key!r} has dtype {dtype}; save plain numeric or string arrays",
            field="file",
        )
    # A header may claim any shape; NumPy would allocate for it before reading.
    if header_end + math.prod(shape) * dtype.itemsize > info.file_size:
        raise ParseError(f"not a valid .npz file: array {key!r} is truncated", field="file")
    return shape, dtype


def _check_kind(dtype: np.dtype[Any], key: str, kinds: str, wanted: str) -> None:
    if dtype.kind == "c":
        raise ParseError(f"{key} has complex dtype {dtype}; only real numbers are supported", field="file")
    if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
        raise ParseError(f"{key} must hold {wanted}, got dtype {dtype}", field="file")


def _load(archive: np.lib.npyio.NpzFile, key: str) -> NDArray[Any]:
    try:
        value = archive[key]
    except _NPZ_READ_ERRORS as exc:
        raise ParseError(f"not a valid .npz file: cannot read array {key!r} ({exc})", field="file") from exc
    if not isinstance(value, np.ndarray):  # NpzFile returns raw bytes for non-.npy members
        raise ParseError(f"not a valid .npz file: member {key!r} is not a NumPy array", field="file")
    return value


def _decode_strings(values: NDArray[Any], key: str, unit: str) -> list[str]:
    """Stripped Python strings from a 1-D U or S array (S decoded as UTF-8).

    ``unit`` names an element in messages (``"row"``, ``"position"``).
    """
    if values.dtype.kind == "U" and values.dtype.itemsize:
        # NumPy stores UCS-4 code units unchecked: beyond U+10FFFF tolist()
        # fails with SystemError, and surrogates cannot be written out as UTF-8.
        codes = values.astype(values.dtype.newbyteorder("=")).view(np.uint32).reshape(len(values), -1)
        bad = np.flatnonzero(((codes > 0x10FFFF) | ((codes >= 0xD800) & (codes <= 0xDFFF))).any(axis=1))
        if bad.size:
            raise ParseError(f"{key} at {unit} {int(bad[0]) + 1} holds an invalid Unicode character", field="file")
    out: list[str] = []
    for i, value in enumerate(values.tolist()):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise ParseError(f"{key} at {unit} {i + 1} is not valid UTF-8", field="file") from None
        out.append(value.strip())
    return out


def _unique_names(names: Sequence[str], empty: str, duplicate: str) -> dict[str, int]:
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


def _npz_feature_names(archive: np.lib.npyio.NpzFile, p: int) -> tuple[str, ...]:
    names = _decode_strings(_load(archive, "feature_names"), "feature_names", "position")
    seen = _unique_names(
        names,
        "feature_names has an empty name at position {i}",
        "duplicate feature name {name!r} (positions {first} and {i})",
    )
    if "target" in seen:
        # The target of an .npz is called "target"; one name must not mean two columns.
        raise ParseError("feature name 'target' is reserved for y; rename that column", field="file")
    return tuple(names)


def _npz_target(y: NDArray[Any]) -> NDArray[Any]:
    if y.dtype.kind in "biuf":
        out = np.ascontiguousarray(y, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(out))
        if bad.size:
            raise ParseError(f"NaN or Inf in y at row {int(bad[0]) + 1}", field="file")
        return out
    labels = _decode_strings(y, "y", "row")
    _reject_empty_labels(labels, lambda i: f"empty label in y at row {i + 1}", lambda i: "file")
    return np.array(labels, dtype=np.str_)


# --------------------------------------------------------------------------- JSON


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
        return f"a string ({_shorten(value)!r})"
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
            f"features has {len(features):,} rows, more than the limit of {max_rows:,}", status=413, field="features"
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
                    status=413,
                    field=f"features.{i}",
                )
        elif len(row) != width:
            raise ParseError(f"{path} has {_count(len(row), 'value')}, expected {width}", field=f"features.{i}")
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
        raise ParseError(
            f"target has {_count(len(target), 'value')} but features has {_count(n, 'row')}", field="target"
        )
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
    _reject_unencodable(labels, "target")
    # Stripped like CSV cells, so the same data gives the same labels either way.
    _reject_empty_labels(labels, lambda i: f"target[{i}] is an empty string", lambda i: f"target.{i}")
    return np.array(labels, dtype=np.str_)


def _json_feature_names(feature_names: object, p: int) -> tuple[str, ...]:
    if feature_names is None:
        return _default_names(p)
    if not isinstance(feature_names, list | tuple):
        raise ParseError(
            f"feature_names must be a list of strings, got {_json_type(feature_names)}", field="feature_names"
        )
    if len(feature_names) != p:
        raise ParseError(
            f"feature_names has {_count(len(feature_names), 'name')} but each row of features has {_count(p, 'value')}",
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
    _reject_unencodable(names, "feature_names")
    return names


# --------------------------------------------------------------------------- helpers


def _default_names(p: int) -> tuple[str, ...]:
    return tuple(f"x{i}" for i in range(p))


def _reject_empty_labels(labels: list[str], message: Callable[[int], str], field: Callable[[int], str]) -> None:
    """Raise for the first empty label; ``message(i)`` and ``field(i)`` render it."""
    if "" in labels:
        i = labels.index("")
        raise ParseError(message(i), field=field(i))


def _reject_unencodable(strings: Sequence[str], key: str) -> None:
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


def _count(n: int, noun: str) -> str:
    """``"1 row"``, ``"2 rows"``, ``"1,000 rows"``."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _shorten(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _shorten_list(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(repr(name) for name in names[:limit])
    return shown if len(names) <= limit else f"{shown}, … ({len(names) - limit:,} more)"
