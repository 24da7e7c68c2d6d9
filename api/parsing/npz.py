"""NumPy ``.npz`` uploads: array headers checked before any data is read."""

from __future__ import annotations

import io
import math
import struct
import tokenize
import zipfile
import zlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from api.parsing.dataset import (
    DEFAULT_MAX_COLUMNS,
    DEFAULT_MAX_ROWS,
    ParsedDataset,
    default_names,
    reject_empty_labels,
    unique_names,
)
from api.parsing.errors import ParseError, count

__all__ = ["NPZ_MAX_UNCOMPRESSED_BYTES", "ZIP_MAGICS", "parse_npz"]

#: Largest decompressed size of one ``.npz`` member, and of ``X`` once
#: converted to float64.  The upload limit bounds the *compressed* bytes only;
#: deflate expands up to ~1000x, so without this a small zip could ask for
#: tens of gigabytes.
NPZ_MAX_UNCOMPRESSED_BYTES = 1 << 30

#: A zip (and so an .npz) starts with one of these; a CSV never does.
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"

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
    if not data.startswith(ZIP_MAGICS):
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
        raise ParseError(f"X has {n:,} rows, more than the limit of {max_rows:,}", kind="too_large", field="file")
    if p > max_columns:
        raise ParseError(f"X has {p:,} columns, more than the limit of {max_columns:,}", kind="too_large", field="file")
    if n * p * 8 > NPZ_MAX_UNCOMPRESSED_BYTES:
        raise ParseError(
            f"X of shape {x_shape} needs more than {NPZ_MAX_UNCOMPRESSED_BYTES:,} bytes as float64",
            kind="too_large",
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
        raise ParseError(f"X has {count(n, 'row')} but y has {count(y_shape[0], 'value')}", field="file")
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
    feature_names = _npz_feature_names(archive, p) if names_member is not None else default_names(p)
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
                kind="too_large",
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


def _npz_feature_names(archive: np.lib.npyio.NpzFile, p: int) -> tuple[str, ...]:
    names = _decode_strings(_load(archive, "feature_names"), "feature_names", "position")
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
