"""NumPy ``.npz`` uploads: sizes checked from the zip and array headers before any data is read.

An archive is read from its file (the spooled upload), member by member, never
as a whole. Before a byte of array data is decompressed, the members' declared
sizes and the float64 conversion they imply are held to a budget relative to the
upload (:func:`api.parsing.dataset.decoded_budget`: ``max_expansion`` times its
size, at most ``max_decompressed_bytes``); while a member is read, no more than
its declared size is accepted, so a lying header is caught too.
"""

from __future__ import annotations

import io
import math
import struct
import tokenize
import zipfile
import zlib
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
    default_names,
    reject_empty_labels,
    unique_names,
)
from api.parsing.errors import ParseError, count

__all__ = ["MAX_MEMBERS", "NPZ_MAX_UNCOMPRESSED_BYTES", "ZIP_MAGICS", "parse_npz"]

#: Largest decompressed size of one ``.npz`` member, whatever the budget below (a ceiling for
#: callers that pass a huge ``max_decompressed_bytes``).
NPZ_MAX_UNCOMPRESSED_BYTES = 1 << 30
#: Most members an archive may list: X, y, feature_names and a few others. Reading the central
#: directory of a zip of a million empty members would cost more memory than any dataset.
MAX_MEMBERS = 64
#: Bytes counted for each Python string made of a string array's element (labels, names).
_PY_STR_BYTES = 64

#: A zip (and so an .npz) starts with one of these; a CSV never does.
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"
_END_OF_CENTRAL_DIRECTORY = b"PK\x05\x06"

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


def parse_npz(
    data: bytes | IO[bytes],
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_columns: int = DEFAULT_MAX_COLUMNS,
    max_expansion: float = DEFAULT_MAX_EXPANSION,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> ParsedDataset:
    """Parse a NumPy ``.npz`` archive holding ``X``, ``y`` and optionally ``feature_names``.

    Zip and array headers are read and checked (member count, dtype, shape,
    declared sizes, limits) before any array data is decompressed, so an
    object array, a lying header or a zip bomb is refused without allocating
    for it.

    Parameters
    ----------
    data : bytes or seekable binary file
        The archive, as written by :func:`numpy.savez` or :func:`numpy.savez_compressed`.
        Required members: ``X`` of shape (n_samples, n_features), bool,
        integer or real float; ``y`` of shape (n_samples,), bool, integer,
        real float or string (``U``, or ``S`` decoded as UTF-8).  Optional:
        ``feature_names`` of shape (n_features,), strings.  Other members are
        ignored.
    max_rows, max_columns : int
        Size limits on ``X`` (413 above).
    max_expansion, max_decompressed_bytes : float, int
        The members read, decompressed, plus ``X`` (and a numeric ``y``) as
        float64, may take at most ``max_expansion`` times the archive's own
        size and at most ``max_decompressed_bytes`` (413 above; see
        :func:`api.parsing.dataset.decoded_budget`).

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
    source: IO[bytes] = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
    size = source.seek(0, io.SEEK_END)
    source.seek(0)
    if not size:
        raise ParseError("the file is empty", field="file")
    head = source.read(len(_NPY_MAGIC))
    source.seek(0)
    # A bare .npy would be allocated as its header claims, anything else tried as pickle: only a zip is an .npz.
    if not head.startswith(ZIP_MAGICS):
        hint = ""
        if head.startswith(_NPY_MAGIC):
            hint = ": it is a single .npy array; save X and y together with np.savez"
        raise ParseError(f"not a valid .npz file{hint}", field="file")
    _check_member_count(source, size)
    try:
        zf = zipfile.ZipFile(source)
    except _NPZ_READ_ERRORS as exc:
        raise ParseError(f"not a valid .npz file: {exc}", field="file") from exc
    limits = _Budget(
        decoded_budget(size, max_expansion, max_decompressed_bytes),
        budget_detail(size, max_expansion, max_decompressed_bytes),
    )
    with zf:
        return _parse_archive(zf, max_rows, max_columns, limits)


class _Budget:
    """The bytes an archive may decompress and convert to, and how to say so."""

    def __init__(self, total: int, detail: str) -> None:
        self.total = total
        self.detail = detail

    def refuse(self, what: str, needed: int) -> ParseError:
        return ParseError(
            f"{what} needs {needed:,} bytes decompressed (arrays converted to float64 included), "
            f"more than allowed: {self.detail}",
            kind="too_large",
            field="file",
        )


def _check_member_count(source: IO[bytes], size: int) -> None:
    """Refuse an archive whose end record lists more than :data:`MAX_MEMBERS` members (before ZipFile reads them)."""
    tail_len = min(size, 22 + 0xFFFF)  # the end record, and a comment of at most 64 KiB
    source.seek(size - tail_len)
    tail = source.read(tail_len)
    source.seek(0)
    at = tail.rfind(_END_OF_CENTRAL_DIRECTORY)
    if at < 0 or len(tail) - at < 22:
        return  # not a zip's end: ZipFile says so
    entries, directory_size = struct.unpack_from("<HI", tail, at + 10)
    # 0xFFFF / 0xFFFFFFFF defer to a zip64 end record: only archives of millions of members or of
    # gigabytes need one, neither an upload.
    if entries > MAX_MEMBERS or directory_size > MAX_MEMBERS * 1024:
        shown = "more than 65,535" if entries == 0xFFFF else f"{entries:,}"
        raise ParseError(
            f"the .npz file lists {shown} members (a central directory of {directory_size:,} bytes); "
            f"at most {MAX_MEMBERS} are accepted",
            kind="too_large",
            field="file",
        )


class _Header:
    """What a member's zip and .npy headers say: declared size, shape, dtype."""

    def __init__(self, info: zipfile.ZipInfo, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self.info = info
        self.shape = shape
        self.dtype = dtype


def _parse_archive(zf: zipfile.ZipFile, max_rows: int, max_columns: int, budget: _Budget) -> ParsedDataset:
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
    x = _header(zf, members["X"], "X", budget)
    if len(x.shape) != 2:
        raise ParseError(f"X must be 2-D (n_samples, n_features), got shape {x.shape}", field="file")
    n, p = x.shape
    if n > max_rows:
        raise ParseError(f"X has {n:,} rows, more than the limit of {max_rows:,}", kind="too_large", field="file")
    if p > max_columns:
        raise ParseError(f"X has {p:,} columns, more than the limit of {max_columns:,}", kind="too_large", field="file")
    _check_kind(x.dtype, "X", "biuf", "numbers (bool, integer or float)")
    if n == 0:
        raise ParseError("no data rows: X has 0 rows", field="file")
    if p == 0:
        raise ParseError("X has no feature columns", field="file")

    y = _header(zf, members["y"], "y", budget)
    if len(y.shape) != 1:
        hint = "; flatten it with y.ravel()" if len(y.shape) == 2 and 1 in y.shape else ""
        raise ParseError(f"y must be 1-D (n_samples,), got shape {y.shape}{hint}", field="file")
    if y.shape[0] != n:
        raise ParseError(f"X has {count(n, 'row')} but y has {count(y.shape[0], 'value')}", field="file")
    _check_kind(y.dtype, "y", "biufUS", "numbers or strings")

    names_member = members.get("feature_names")
    names = None
    if names_member is not None:
        names = _header(zf, names_member, "feature_names", budget)
        if names.shape != (p,):
            raise ParseError(
                f"feature_names must have shape ({p},), one name per column of X, got {names.shape}", field="file"
            )
        _check_kind(names.dtype, "feature_names", "US", "strings")

    # What reading and converting will hold at its peak: every member read, X as float64 beside a
    # narrower X (an int8 X is 8x larger converted), a numeric y as float64, strings as Python str.
    needed = sum(h.info.file_size for h in (x, y, names) if h is not None)
    needed += 0 if x.dtype == np.float64 else n * p * 8
    needed += n * (_PY_STR_BYTES if y.dtype.kind in "US" else 0 if y.dtype == np.float64 else 8)
    needed += p * _PY_STR_BYTES if names is not None else 0
    if needed > budget.total:
        raise budget.refuse(f"X of shape {x.shape} ({x.dtype}) with its y", needed)

    X = np.ascontiguousarray(_read(zf, x, "X"), dtype=np.float64)
    feature_names = _npz_feature_names(_read(zf, names, "feature_names"), p) if names is not None else default_names(p)
    if not np.isfinite(X).all():
        r, c = (int(v) for v in np.argwhere(~np.isfinite(X))[0])
        raise ParseError(f"NaN or Inf in X at row {r + 1}, column {c + 1} ({feature_names[c]!r})", field="file")
    target = _npz_target(_read(zf, y, "y"))
    return ParsedDataset(X=X, y=target, feature_names=feature_names, target_name="target")


def _members(zf: zipfile.ZipFile) -> dict[str, str]:
    """Array name -> zip member name, resolved the way :class:`numpy.lib.npyio.NpzFile` does."""
    out: dict[str, str] = {}
    for member in zf.namelist():
        key = member[:-4] if member.endswith(".npy") else member
        # NpzFile looks up the literal name before adding ".npy".
        if key not in out or member == key:
            out[key] = member
    return out


def _header(zf: zipfile.ZipFile, member: str, key: str, budget: _Budget) -> _Header:
    """Shape and dtype from a member's .npy header, checked against its declared size and the budget."""
    try:
        info = zf.getinfo(member)
        if info.file_size > NPZ_MAX_UNCOMPRESSED_BYTES:
            raise ParseError(
                f"array {key!r} is {info.file_size:,} bytes uncompressed, "
                f"more than the limit of {NPZ_MAX_UNCOMPRESSED_BYTES:,}",
                kind="too_large",
                field="file",
            )
        if info.file_size > budget.total:
            raise budget.refuse(f"array {key!r}", info.file_size)
        with zf.open(info) as fp:
            bounded = _Bounded(fp, info.file_size, key)
            version = np.lib.format.read_magic(bounded)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(bounded)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(bounded)
            else:  # 3.0 only exists for structured dtypes with non-Latin-1 field names: refused anyway
                raise ParseError(f"array {key!r} uses unsupported .npy format version {version}", field="file")
            header_end = bounded.seen
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
    return _Header(info, shape, dtype)


class _Bounded:
    """A member being decompressed that may not yield more than its declared size (a lying header is caught here)."""

    def __init__(self, fp: IO[bytes], limit: int, key: str) -> None:
        self.fp = fp
        self.limit = limit
        self.key = key
        self.seen = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fp.read(self.limit - self.seen + 1 if n < 0 else n)
        self.seen += len(data)
        if self.seen > self.limit:
            raise ParseError(
                f"array {self.key!r} decompresses to more than the {self.limit:,} bytes its zip header declares",
                kind="too_large",
                field="file",
            )
        return data


def _read(zf: zipfile.ZipFile, header: _Header, key: str) -> NDArray[Any]:
    """A member's array, decompressed in pieces into an array of the checked shape."""
    try:
        with zf.open(header.info) as fp:
            value = np.lib.format.read_array(_Bounded(fp, header.info.file_size, key), allow_pickle=False)
    except _NPZ_READ_ERRORS as exc:
        raise ParseError(f"not a valid .npz file: cannot read array {key!r} ({exc})", field="file") from exc
    if value.shape != header.shape or value.dtype != header.dtype:  # pragma: no cover - the same header read twice
        raise ParseError(f"not a valid .npz file: array {key!r} changed while read", field="file")
    return value


def _check_kind(dtype: np.dtype[Any], key: str, kinds: str, wanted: str) -> None:
    if dtype.kind == "c":
        raise ParseError(f"{key} has complex dtype {dtype}; only real numbers are supported", field="file")
    if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
        raise ParseError(f"{key} must hold {wanted}, got dtype {dtype}", field="file")


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


def _npz_feature_names(values: NDArray[Any], p: int) -> tuple[str, ...]:
    names = _decode_strings(values, "feature_names", "position")
    seen = unique_names(
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
    reject_empty_labels(labels, lambda i: f"empty label in y at row {i + 1}", lambda i: "file")
    return np.array(labels, dtype=np.str_)
