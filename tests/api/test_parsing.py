"""Upload parsing: good CSV / NPZ / JSON become arrays; bad ones a ParseError saying what and where."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from api import parsing
from api.parsing import (
    ParsedDataset,
    ParseError,
    distinct_labels,
    parse_csv,
    parse_json,
    parse_npz,
    parse_upload,
)


def npz(compressed: bool = False, **arrays: Any) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def upload(data: bytes, filename: str | None = None, content_type: str | None = None, target: str | None = None):
    return lambda: parse_upload(data, filename=filename, content_type=content_type, target=target)


GOOD_NPZ = npz(X=np.arange(6.0).reshape(3, 2), y=np.array([0.5, 1.5, 2.5]))


# --------------------------------------------------------------------------- good inputs


def test_csv_numeric_target_defaults_to_last_column():
    parsed = parse_csv(b"a,b,price\n1,2,3.5\n4,5e-1,-6\n")
    assert isinstance(parsed, ParsedDataset)
    assert parsed.X.dtype == np.float64 and parsed.X.shape == (2, 2)
    np.testing.assert_array_equal(parsed.X, [[1, 2], [4, 0.5]])
    assert parsed.y.dtype == np.float64
    np.testing.assert_array_equal(parsed.y, [3.5, -6])
    assert parsed.feature_names == ("a", "b")
    assert parsed.target_name == "price"


def test_csv_string_labels_are_stripped_unicode_not_object():
    parsed = parse_csv(b"a,b,species\n1,2, setosa\n3,4,virginica \n5,6,1\n")
    assert parsed.y.dtype.kind == "U"
    assert parsed.y.tolist() == ["setosa", "virginica", "1"]
    assert distinct_labels(parsed.y) == 3


def test_csv_target_in_the_middle():
    parsed = parse_csv(b"a, label ,b\n1,cat,2\n3,dog,4\n", target="label")
    np.testing.assert_array_equal(parsed.X, [[1, 2], [3, 4]])
    assert parsed.y.tolist() == ["cat", "dog"]
    assert parsed.feature_names == ("a", "b")
    assert parsed.target_name == "label"


def test_csv_bom_crlf_quotes_whitespace_and_trailing_blank_lines():
    data = b'\xef\xbb\xbfa,b,y\r\n 1 ,"2",0\r\n3,4,1\r\n\r\n\n  \n'
    parsed = parse_csv(data)
    assert parsed.feature_names == ("a", "b")
    np.testing.assert_array_equal(parsed.X, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(parsed.y, [0, 1])


def test_csv_large_file_is_exact():
    # 100,000 rows x 51 columns (~48 MB): 1,000 random rows repeated, so building the input is quick.
    rng = np.random.default_rng(0)
    block = rng.normal(size=(1_000, 51)).round(6)
    text = io.StringIO()
    csv.writer(text).writerows(block.tolist())
    data = (",".join(f"c{i}" for i in range(51)) + "\n" + text.getvalue() * 100).encode()
    parsed = parse_csv(data)
    values = np.tile(block, (100, 1))
    np.testing.assert_array_equal(parsed.X, values[:, :50])
    np.testing.assert_array_equal(parsed.y, values[:, 50])
    assert parsed.feature_names[-1] == "c49" and parsed.target_name == "c50"


def test_csv_error_in_a_late_chunk_names_the_right_row():
    rows = "\n".join(f"{i},{i}" for i in range(20_000))
    with pytest.raises(ParseError) as info:
        parse_csv(f"a,y\n{rows}\nx,1\n".encode())
    assert "row 20001 (line 20002)" in info.value.detail


def test_csv_bad_cells_are_listed_in_file_order():
    with pytest.raises(ParseError) as info:
        parse_csv(b"a,b,y\n1,2,3\n1,oops,3\n" + b"1,2,3\n" * 10 + b"1,2\n")
    cells = info.value.cells
    assert [(c.row, c.column, c.value) for c in cells] == [(2, "b", "oops"), (13, None, "1,2")]
    assert info.value.detail.startswith("2 bad cells") and "row 2 (line 3), column 'b'" in info.value.detail


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_good(compressed: bool):
    data = npz(
        compressed,
        X=np.array([[1, 2], [3, 4], [5, 6]], dtype=np.int32),
        y=np.array([b"a", b"b ", b"a"]),
        feature_names=np.array(["width", "height"]),
    )
    parsed = parse_upload(data, filename="d.npz", content_type="application/octet-stream", target=None)
    assert parsed.X.dtype == np.float64 and parsed.X.shape == (3, 2)
    assert parsed.y.dtype.kind == "U" and parsed.y.tolist() == ["a", "b", "a"]
    assert parsed.feature_names == ("width", "height")
    assert parsed.target_name == "target"
    assert distinct_labels(parsed.y) == 2


def test_npz_defaults_and_sniffing_without_name_or_type():
    parsed = parse_upload(GOOD_NPZ, filename=None, content_type=None, target=None)
    assert parsed.feature_names == ("x0", "x1")
    assert parsed.y.dtype == np.float64
    assert distinct_labels(parsed.y) == 3


def test_json_good_numeric_and_labels():
    parsed = parse_json([[1, 2.5], [3, 4]], [1, 2.5], feature_names=["a", "b"])
    assert parsed.X.dtype == np.float64 and parsed.X.shape == (2, 2)
    assert parsed.y.dtype == np.float64
    assert parsed.feature_names == ("a", "b") and parsed.target_name == "target"
    labels = parse_json([[0, 0], [0, 1]], ["no", "yes"])
    assert labels.y.dtype.kind == "U" and labels.y.tolist() == ["no", "yes"]
    assert labels.feature_names == ("x0", "x1")


@pytest.mark.parametrize(
    ("content_type", "filename"),
    [
        ("text/csv", None),
        ("application/csv", "data"),
        ("application/vnd.ms-excel", "data.csv"),
        ("text/csv; charset=utf-8", None),
        ("application/octet-stream", "DATA.CSV"),
        (None, "data.csv"),
    ],
)
def test_upload_dispatches_csv(content_type: str | None, filename: str | None):
    parsed = parse_upload(b"a,y\n1,2\n", filename=filename, content_type=content_type, target="y")
    assert parsed.target_name == "y"


# --------------------------------------------------------------------------- bad inputs

BAD_CSV = b"a,b,y\n1,2,3\n"

CASES: list[tuple[str, Callable[[], object], str, str | None, tuple[str, ...]]] = [
    # id, call, kind, field, words the detail must contain
    (
        "csv-inf-cell",
        lambda: parse_csv(b"a,b,y\n1,2,3\n4,inf,6\n"),
        "invalid",
        "file",
        ("NaN or Inf", "row 2 (line 3)", "'b'"),
    ),
    ("csv-inf", lambda: parse_csv(b"a,b,y\n1,-INF,3\n"), "invalid", "file", ("NaN or Inf", "row 1 (line 2)", "'b'")),
    ("csv-infinity", lambda: parse_csv(b"a,b,y\n1,2,3\nInfinity,2,3\n"), "invalid", "file", ("NaN or Inf", "'a'")),
    ("csv-overflow", lambda: parse_csv(b"a,b,y\n1,1e999,3\n"), "invalid", "file", ("NaN or Inf", "'b'")),
    ("csv-target-inf", lambda: parse_csv(b"a,y\n1,2\n3,inf\n"), "invalid", "file", ("NaN or Inf", "row 2", "'y'")),
    (
        "csv-ragged",
        lambda: parse_csv(b"a,b,y\n1,2,3\n1,2\n"),
        "invalid",
        "file",
        ("row 2 (line 3)", "2 fields", "expected 3"),
    ),
    ("csv-ragged-long", lambda: parse_csv(b"a,b,y\n1,2,3,4\n"), "invalid", "file", ("row 1", "4 fields")),
    (
        "csv-text-in-numbers",
        lambda: parse_csv(b"a,b,y\n" + b"1,2,3\n" * 12 + b"5,abc,6\n"),
        "invalid",
        "file",
        ("not a number", "'abc'", "row 13", "'b'"),
    ),
    ("csv-target-all-missing", lambda: parse_csv(b"a,y\n1,NA\n2,\n"), "invalid", "target", ("'y'", "no values")),
    ("csv-empty-file", lambda: parse_csv(b""), "invalid", "file", ("the file is empty",)),
    ("csv-blank-file", lambda: parse_csv(b"\xef\xbb\xbf \n\n"), "invalid", "file", ("the file is empty",)),
    ("csv-header-only", lambda: parse_csv(b"a,b,y\n\n"), "invalid", "file", ("no data rows",)),
    ("csv-one-column", lambda: parse_csv(b"y\n1\n"), "invalid", "file", ("single column", "feature")),
    (
        "csv-wrong-delimiter",
        lambda: parse_csv(b"a;b;y\n1;2;3\n", delimiter="|"),
        "invalid",
        "file",
        ("single column", "'|'"),
    ),
    ("csv-bad-delimiter", lambda: parse_csv(BAD_CSV, delimiter="ab"), "invalid", "delimiter", ("one character",)),
    ("csv-bad-decimal", lambda: parse_csv(BAD_CSV, decimal=";"), "invalid", "decimal", ("'.' or ','",)),
    ("csv-unknown-target", lambda: parse_csv(BAD_CSV, "price"), "invalid", "target", ("'price'", "'a'", "'b'", "'y'")),
    ("csv-duplicate", lambda: parse_csv(b"a,b,a\n1,2,3\n"), "invalid", "file", ("duplicate", "'a'")),
    ("csv-empty-name", lambda: parse_csv(b"a,,y\n1,2,3\n"), "invalid", "file", ("column 2", "empty name")),
    ("csv-bad-quote", lambda: parse_csv(b'a,b,y\n1,"2,3\n'), "invalid", "file", ("malformed CSV", "line")),
    ("csv-latin1", lambda: parse_csv(b"a,b,y\n1,2,caf\xe9\n"), "invalid", "file", ("UTF-8", "line 2")),
    ("csv-utf16", lambda: parse_csv("a,y\n1,2\n".encode("utf-16")), "invalid", "file", ("UTF-16",)),
    ("csv-max-rows", lambda: parse_csv(b"a,y\n1,2\n3,4\n5,6\n", max_rows=2), "too_large", "file", ("2", "rows")),
    (
        "csv-max-cols",
        lambda: parse_csv(b"a,b,c,y\n1,2,3,4\n", max_columns=3),
        "too_large",
        "file",
        ("4", "columns", "3"),
    ),
    (
        "upload-pdf",
        upload(b"%PDF-1.7", "a.pdf", "application/pdf"),
        "unsupported_type",
        "file",
        ("application/pdf", "text/csv", "npz"),
    ),
    ("upload-txt", upload(BAD_CSV, "a.txt", "text/plain"), "unsupported_type", "file", ("text/plain", "a.txt", "csv")),
    ("upload-none", upload(BAD_CSV), "unsupported_type", "file", ("no media type",)),
    (
        "upload-octet-no-name",
        upload(BAD_CSV, None, "application/octet-stream"),
        "unsupported_type",
        "file",
        ("octet-stream",),
    ),
    (
        "upload-xlsx",
        upload(b"PK\x03\x04...", "a.xlsx", "application/octet-stream"),
        "unsupported_type",
        "file",
        ("CSV",),
    ),
    ("upload-npz-target", upload(GOOD_NPZ, "d.npz", None, "price"), "invalid", "target", ("y", "npz")),
    (
        "npz-object",
        lambda: parse_npz(npz(X=np.array([[1, "a"], [2, None]], dtype=object), y=np.array([1, 2]))),
        "invalid",
        "file",
        ("object arrays are not allowed", "'X'"),
    ),
    (
        "npz-object-y",
        lambda: parse_npz(npz(X=np.ones((2, 1)), y=np.array(["a", 1], dtype=object))),
        "invalid",
        "file",
        ("object arrays are not allowed", "'y'"),
    ),
    ("npz-missing-y", lambda: parse_npz(npz(X=np.ones((2, 2)))), "invalid", "file", ("no array y", "found: X")),
    (
        "npz-lengths",
        lambda: parse_npz(npz(X=np.ones((3, 2)), y=np.ones(2))),
        "invalid",
        "file",
        ("3 rows", "y has 2"),
    ),
    ("npz-X-1d", lambda: parse_npz(npz(X=np.ones(3), y=np.ones(3))), "invalid", "file", ("X must be 2-D", "(3,)")),
    ("npz-y-2d", lambda: parse_npz(npz(X=np.ones((3, 1)), y=np.ones((3, 1)))), "invalid", "file", ("1-D", "ravel")),
    (
        "npz-nan",
        lambda: parse_npz(npz(X=np.array([[1.0, 2.0], [3.0, np.inf]]), y=np.ones(2))),
        "invalid",
        "file",
        ("NaN or Inf", "row 2", "column 2", "'x1'"),
    ),
    (
        "npz-y-nan",
        lambda: parse_npz(npz(X=np.ones((2, 1)), y=np.array([1, np.nan]))),
        "invalid",
        "file",
        ("y", "row 2"),
    ),
    ("npz-complex", lambda: parse_npz(npz(X=np.ones((2, 1)) * 1j, y=np.ones(2))), "invalid", "file", ("complex",)),
    ("npz-strings-X", lambda: parse_npz(npz(X=np.array([["1"]]), y=np.ones(1))), "invalid", "file", ("X must hold",)),
    (
        "npz-names-length",
        lambda: parse_npz(npz(X=np.ones((1, 2)), y=np.ones(1), feature_names=np.array(["a"]))),
        "invalid",
        "file",
        ("feature_names", "(2,)"),
    ),
    (
        "npz-names-duplicate",
        lambda: parse_npz(npz(X=np.ones((1, 2)), y=np.ones(1), feature_names=np.array(["a", "a"]))),
        "invalid",
        "file",
        ("duplicate", "'a'"),
    ),
    ("npz-corrupt", lambda: parse_npz(b"this is not a zip"), "invalid", "file", ("not a valid .npz file",)),
    ("npz-truncated", lambda: parse_npz(GOOD_NPZ[: len(GOOD_NPZ) // 2]), "invalid", "file", ("not a valid .npz file",)),
    ("npz-empty", lambda: parse_npz(b""), "invalid", "file", ("empty",)),
    (
        "npz-sniffed-corrupt",
        upload(b"PK\x03\x04garbage", "d.csv", "text/csv"),
        "invalid",
        "file",
        ("not a valid .npz",),
    ),
    ("npz-max-rows", lambda: parse_npz(GOOD_NPZ, max_rows=2), "too_large", "file", ("3 rows", "2")),
    ("npz-max-cols", lambda: parse_npz(GOOD_NPZ, max_columns=1), "too_large", "file", ("2 columns", "1")),
    (
        "json-ragged",
        lambda: parse_json([[1, 2], [3, 4], [5]], [1, 2, 3]),
        "invalid",
        "features.2",
        ("features[2] has 1 value, expected 2",),
    ),
    (
        "json-bool",
        lambda: parse_json([[1, 2], [3, True]], [1, 2]),
        "invalid",
        "features.1.1",
        ("features[1][1]", "boolean"),
    ),
    (
        "json-none",
        lambda: parse_json([[None, 2]], [1]),
        "invalid",
        "features.0.0",
        ("features[0][0]", "null", "missing"),
    ),
    ("json-nan", lambda: parse_json([[1, float("nan")]], [1]), "invalid", "features.0.1", ("features[0][1]", "NaN")),
    ("json-string", lambda: parse_json([[1, "2"]], [1]), "invalid", "features.0.1", ("string", "'2'", "number")),
    ("json-not-list", lambda: parse_json({"a": [1]}, [1]), "invalid", "features", ("list of rows", "object")),
    ("json-empty", lambda: parse_json([], []), "invalid", "features", ("empty",)),
    ("json-empty-row", lambda: parse_json([[]], [1]), "invalid", "features.0", ("features[0]", "empty")),
    (
        "json-target-length",
        lambda: parse_json([[1], [2]], [1]),
        "invalid",
        "target",
        ("target has 1 value but features has 2 rows",),
    ),
    ("json-mixed", lambda: parse_json([[1], [2], [3]], [1, 2.5, "a"]), "invalid", "target.2", ("mixes", "target[2]")),
    ("json-target-bool", lambda: parse_json([[1], [2]], [1, False]), "invalid", "target.1", ("target[1]", "boolean")),
    ("json-target-none", lambda: parse_json([[1], [2]], ["a", None]), "invalid", "target.1", ("target[1]", "null")),
    ("json-target-nan", lambda: parse_json([[1], [2]], [1, float("inf")]), "invalid", "target.1", ("target[1]", "NaN")),
    ("json-target-blank", lambda: parse_json([[1], [2]], ["a", "  "]), "invalid", "target.1", ("target[1]", "empty")),
    (
        "json-names-length",
        lambda: parse_json([[1, 2]], [1], feature_names=["a"]),
        "invalid",
        "feature_names",
        ("1 name but", "2 values"),
    ),
    (
        "json-names-duplicate",
        lambda: parse_json([[1, 2]], [1], feature_names=["a", "a"]),
        "invalid",
        "feature_names.1",
        ("repeats", "'a'"),
    ),
    ("json-names-type", lambda: parse_json([[1]], [1], feature_names=[3]), "invalid", "feature_names.0", ("string",)),
    ("json-max-rows", lambda: parse_json([[1], [2]], [1, 2], max_rows=1), "too_large", "features", ("2 rows",)),
    ("json-max-cols", lambda: parse_json([[1, 2]], [1], max_columns=1), "too_large", "features.0", ("2 values",)),
]


@pytest.mark.parametrize(("call", "kind", "field", "words"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_parse_error(
    call: Callable[[], object], kind: str, field: str | None, words: tuple[str, ...]
) -> None:
    with pytest.raises(ParseError) as info:
        call()
    error = info.value
    assert error.kind == kind, error.detail
    assert error.field == field, error.detail
    for word in words:
        assert word in error.detail, f"{word!r} not in {error.detail!r}"
    assert str(error) == error.detail


def test_parse_error_defaults():
    error = ParseError("bad")
    assert (error.detail, error.kind, error.field) == ("bad", "invalid", None)


def test_npz_bad_crc_is_a_parse_error():
    data = bytearray(npz(X=np.arange(40.0).reshape(20, 2), y=np.arange(20.0)))
    data[200] ^= 0xFF  # inside X's array data (stored uncompressed): the CRC no longer matches
    with pytest.raises(ParseError) as info:
        parse_npz(bytes(data))
    assert "not a valid .npz file" in info.value.detail


@pytest.mark.parametrize("shape", [(10**6, 10**3), (10**4, 10)], ids=["8-GB-claim", "800-kB-claim"])
def test_npz_lying_header_is_refused_before_allocating(shape: tuple[int, int]):
    # The header claims far more data than the member holds; NumPy would allocate for the claim first.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("X.npy", header.getvalue() + b"\0" * 16)
        zf.writestr("y.npy", header.getvalue())
    with pytest.raises(ParseError) as info:
        parse_npz(buffer.getvalue())
    assert info.value.kind == "invalid"
    assert "truncated" in info.value.detail


def test_npz_decompressed_size_limit(monkeypatch: pytest.MonkeyPatch):
    # The upload limit bounds compressed bytes; a member's declared size is capped before reading it.
    monkeypatch.setattr(parsing.npz, "NPZ_MAX_UNCOMPRESSED_BYTES", 100)
    with pytest.raises(ParseError) as info:
        parse_npz(npz(True, X=np.zeros((100, 10)), y=np.zeros(100)))
    assert info.value.kind == "too_large"
    assert "uncompressed" in info.value.detail


def zip_of(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in members.items():
            zf.writestr(f"{name}.npy", content)
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("mangle", [b"'<,1'", b"\x10", b"(((("], ids=["descr", "control-byte", "parens"])
def test_npz_mangled_header_is_a_parse_error(mangle: bytes):
    # NumPy evaluates the header as a Python literal: SyntaxError / TokenError must not escape.
    good = npy(np.ones((2, 1)))
    bad = good.replace(b"'<f8'" if mangle.startswith(b"'") else b"(", mangle, 1)
    with pytest.raises(ParseError) as info:
        parse_npz(zip_of(X=bad, y=npy(np.ones(2))))
    assert "'X'" in info.value.detail


def test_npz_invalid_code_point_in_labels():
    # UCS-4 data beyond U+10FFFF: NumPy's tolist() would raise SystemError.
    y = np.array(["a", "b"])
    raw = bytearray(npy(y))
    raw[-4:] = (0x110000).to_bytes(4, "little")
    with pytest.raises(ParseError) as info:
        parse_npz(zip_of(X=npy(np.ones((2, 1))), y=bytes(raw)))
    assert "row 2" in info.value.detail and "Unicode" in info.value.detail


def test_json_lone_surrogate_label():
    with pytest.raises(ParseError) as info:
        parse_json([[1], [2]], ["a", "\ud800"])
    assert info.value.field == "target.1"


def test_npz_member_that_is_not_an_array():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("X.npy", b"hello")
        zf.writestr("y.npy", b"world")
    with pytest.raises(ParseError) as info:
        parse_npz(buffer.getvalue())
    assert "'X'" in info.value.detail


def test_distinct_labels():
    assert distinct_labels(np.array(["a", "b", "a"])) == 2
    assert distinct_labels(np.array([1.0, 1.0])) == 1
    assert distinct_labels(np.array([], dtype=np.float64)) == 0


# --------------------------------------------------------------------------- decompressed and converted sizes


def bomb(shape: tuple[int, ...], dtype: str, *, extra: dict[str, np.ndarray] | None = None) -> bytes:
    """A deflated .npz whose X is zeros of ``shape``: a few KB that ask for megabytes (written in pieces)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("X.npy", "w", force_zip64=True) as member:
            header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(member, header)
            left = int(np.prod(shape)) * np.dtype(dtype).itemsize
            piece = bytes(1 << 20)
            while left:
                member.write(piece[: min(left, len(piece))])
                left -= min(left, len(piece))
        for name, array in {"y.npy": np.zeros(shape[0]), **(extra or {})}.items():
            with zf.open(name, "w") as member:
                np.lib.format.write_array(member, array)
    return buffer.getvalue()


@pytest.mark.parametrize("dtype", ["int8", "float64"])
def test_npz_bombs_are_refused_from_their_headers(dtype: str):
    import tracemalloc

    data = bomb((2000, 4000), dtype)  # 8 MB (int8) or 64 MB (float64) of zeros: X as float64 is 64 MB
    assert len(data) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(ParseError) as info:
            parse_npz(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.kind == "too_large"
    assert "32x" in info.value.detail and "decompressed" in info.value.detail, info.value.detail
    assert peak < 2 << 20, peak  # nothing of the array was allocated


def test_npz_budget_counts_the_float64_conversion():
    # Uncompressed int8: the archive is as large as X, but X as float64 is 8x more.
    X = np.ones((1000, 1000), dtype=np.int8)
    data = npz(X=X, y=np.arange(1000.0) % 2)
    assert parse_npz(data, max_expansion=10).X.dtype == np.float64
    with pytest.raises(ParseError) as info:
        parse_npz(data, max_expansion=4)
    assert info.value.kind == "too_large"
    with pytest.raises(ParseError) as info:
        parse_npz(data, max_decompressed_bytes=4_000_000)
    assert info.value.kind == "too_large" and "4,000,000" in info.value.detail


def test_npz_member_larger_than_its_zip_header_says_is_caught_while_reading():
    # The central directory declares fewer bytes than the member holds (and the .npy header agrees with it).
    good = npz(X=np.zeros((4, 2)), y=np.zeros(4))
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        info = zf.getinfo("X.npy")
    reader = parsing.npz._Bounded(io.BytesIO(b"\0" * (info.file_size + 10)), info.file_size, "X")
    with pytest.raises(ParseError) as error:
        reader.read()
    assert error.value.kind == "too_large" and "declares" in error.value.detail


def test_npz_with_too_many_members_is_refused_before_reading_them():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("X.npy", npy(np.zeros((2, 2))))
        zf.writestr("y.npy", npy(np.zeros(2)))
        for i in range(parsing.npz.MAX_MEMBERS):
            zf.writestr(f"pad{i}", b"")
    with pytest.raises(ParseError) as info:
        parse_npz(buffer.getvalue())
    assert info.value.kind == "too_large" and "members" in info.value.detail


def test_npz_is_read_from_a_file_without_reading_it_whole():
    class Counting(io.BytesIO):
        largest = 0

        def read(self, n: int | None = -1) -> bytes:
            data = super().read(n)
            Counting.largest = max(Counting.largest, len(data))
            return data

    X = np.random.default_rng(0).normal(size=(20_000, 20))
    parsed = parse_upload(Counting(npz(X=X, y=X[:, 0])), filename="d.npz", content_type=None, target=None)
    np.testing.assert_array_equal(parsed.X, X)
    assert Counting.largest < X.nbytes // 2


def test_csv_single_huge_header_line_is_refused_from_its_first_pieces():
    import tracemalloc

    line = b"c," * 3_000_000 + b"y\n"  # 6 MB, one line
    tracemalloc.start()
    try:
        with pytest.raises(ParseError) as info:
            parse_csv(line)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.kind == "too_large" and "more than 10,000 columns" in info.value.detail
    assert peak < 1 << 20, peak


def test_csv_header_columns_are_counted_outside_quotes():
    header = '"a,b,c",' + ",".join(f'"x{i}"' for i in range(3)) + ",y\n"
    parsed = parse_csv((header + "1,2,3,4,5\n6,7,8,9,0\n").encode(), max_columns=5)
    assert parsed.feature_names == ("a,b,c", "x0", "x1", "x2")
    with pytest.raises(ParseError) as info:
        parse_csv((header + "1,2,3,4,5\n").encode(), max_columns=4)
    assert info.value.kind == "too_large" and "5 columns" in info.value.detail


@pytest.mark.parametrize("where", ["header", "row"])
def test_csv_record_longer_than_the_bound_is_refused(where: str):
    long = "a" * (parsing.csv.MAX_RECORD_BYTES + 10)
    text = f"{long},y\n1,2\n" if where == "header" else f"a,y\n1,2\n{long},3\n"
    with pytest.raises(ParseError) as info:
        parse_csv(text.encode())
    assert info.value.kind == "too_large" and "bytes" in info.value.detail


def test_csv_quoted_line_breaks_cannot_chain_a_record_past_the_bound():
    piece = '"x\n",' + "," * 200_000
    text = "a,y\n1,2\n" + piece * 8 + "\n"
    with pytest.raises(ParseError) as info:
        parse_csv(text.encode())
    assert info.value.kind == "too_large"


def test_csv_wide_rows_are_chunked_by_cells():
    width = 2000
    header = ",".join(f"c{i}" for i in range(width)) + "\n"
    rows = "".join(",".join(str((r + c) % 7) for c in range(width)) + "\n" for r in range(300))
    parsed = parse_csv((header + rows).encode())
    assert parsed.X.shape == (300, width - 1)
    assert parsed.X[299, 5] == (299 + 5) % 7


def test_csv_float64_size_is_bounded_like_a_decompression():
    data = b"a,b,y\n" + b"1,2,3\n" * 50_000
    assert parse_csv(data).X.shape == (50_000, 2)
    with pytest.raises(ParseError) as info:
        parse_csv(data, max_decompressed_bytes=1_000_000)
    assert info.value.kind == "too_large" and "float64" in info.value.detail


# --------------------------------------------------------------------------- decimal commas and sep= lines

# A semicolon export with decimal commas: a numeric target, a column of integers with one decimal, text, gaps.
COMMA_DECIMALS = "price;rooms;city;area\n22,5;3;Lyon;80,25\n1,5e3;2;Paris;NA\n-0,75;4;Lyon;100\n;1,5;Nice;45,5\n"


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_csv_decimal_commas_are_detected_with_a_note(sep: str):
    data = COMMA_DECIMALS.replace(";", sep).encode()
    detected, given = parse_csv(data), parse_csv(data, decimal=",")
    np.testing.assert_array_equal(detected.X, given.X)
    np.testing.assert_array_equal(detected.y, given.y)
    assert detected.column_types == given.column_types == ("numeric", "numeric", "categorical")
    np.testing.assert_array_equal(detected.X[:, 0], [22.5, 1500.0, -0.75, np.nan])
    np.testing.assert_array_equal(detected.X[:, 1], [3, 2, 4, 1.5])
    np.testing.assert_array_equal(detected.y, [80.25, np.nan, 100.0, 45.5])
    assert detected.notes == (
        "3 columns ('price', 'rooms', 'area') use a decimal comma (as in 22,5) and were read as numbers; "
        "send decimal=. to keep such columns as text",
    )
    assert given.notes == ()


def test_csv_explicit_decimal_point_keeps_decimal_comma_columns_as_text():
    parsed = parse_csv(b"a;b;y\n22,5;1;0\n1,5;2;1\n3,25;3;1\n", decimal=".")
    assert parsed.column_types == ("categorical", "numeric") and parsed.notes == ()
    plain = parse_csv(b"a;b;y\n22.5;1;0\n1.5;2;1\n3;3;1\n")
    assert plain.column_types == ("numeric", "numeric") and plain.notes == ()
    np.testing.assert_array_equal(plain.X[:, 0], [22.5, 1.5, 3])


def test_csv_comma_delimited_files_never_read_a_decimal_comma():
    parsed = parse_csv(b'a,b,y\n"22,5",1,0\n"1,5",2,1\n')
    assert parsed.column_types == ("categorical", "numeric") and parsed.notes == ()


def test_csv_header_after_a_sep_line_is_counted_before_it_is_split():
    header = ";".join(f"c{i}" for i in range(50)).encode()
    with pytest.raises(ParseError, match="the header has 50 columns") as info:
        parse_csv(b"sep=;\r\n" + header + b"\r\n" + b"1;" * 49 + b"1\r\n", max_columns=10)
    assert info.value.kind == "too_large"


def test_csv_thousands_separators_keep_the_column_as_text_with_a_note():
    parsed = parse_csv(b"a;b;y\n1.234,5;x;1\n2.000;y;2\n3,5;x;3\n")
    assert parsed.column_types == ("categorical", "categorical")
    assert parsed.levels is not None and parsed.levels[0] == ("1.234,5", "2.000", "3,5")
    (note,) = parsed.notes
    assert note.startswith("column 'a' looks like numbers with a decimal comma, but 1 of its 3 cells")
    assert "'1.234,5'" in note and "decimal=," in note


def test_csv_a_typo_in_a_decimal_comma_column_keeps_it_as_text_with_a_note():
    rows = "".join(f"{i},5;{i}\n" for i in range(19))
    parsed = parse_csv(f"a;y\n{rows}1,5x;3\n".encode())
    assert parsed.column_types == ("categorical",)
    (note,) = parsed.notes
    assert "1 of its 20 cells (such as '1,5x') is not" in note
    with pytest.raises(ParseError, match="'1,5x' is not a number"):
        parse_csv(f"a;y\n{rows}1,5x;3\n".encode(), decimal=",")


def test_csv_decimal_comma_first_seen_in_a_late_chunk():
    rows = "\n".join(f"{i};{i}" for i in range(20_000))
    parsed = parse_csv(f"a;y\n{rows}\n2,5;1\n".encode())
    assert parsed.column_types == ("numeric",) and parsed.X[-1, 0] == 2.5 and parsed.X[0, 0] == 0
    assert parsed.X.shape == (20_001, 1) and "'a'" in parsed.notes[0]


@pytest.mark.parametrize(
    ("first", "sep"),
    [(b"sep=;", ";"), (b'"sep=;"', ";"), (b"SEP=|", "|"), (b"sep=\t", "\t"), (b"\xef\xbb\xbfsep=;", ";")],
)
def test_csv_excel_sep_line_declares_the_delimiter(first: bytes, sep: str):
    body = "a;b;y\r\n1,5;x;0\r\n2;y;1\r\n".replace(";", sep).encode()
    parsed = parse_csv(first + b"\r\n" + body)
    assert parsed.feature_names == ("a", "b") and parsed.target_name == "y"
    np.testing.assert_array_equal(parsed.X[:, 0], [1.5, 2])
    assert parsed.y.tolist() == [0, 1]


def test_csv_sep_line_counts_in_line_numbers_and_a_given_delimiter_wins():
    with pytest.raises(ParseError) as info:
        parse_csv(b"sep=;\na;y\n1;2\noops;3\n" + b"4;5\n" * 20)
    assert "row 2 (line 4)" in info.value.detail
    parsed = parse_csv(b"sep=,\na;b;y\n1;2;3\n", delimiter=";")
    assert parsed.feature_names == ("a", "b")
    with pytest.raises(ParseError, match="both ','"):
        parse_csv(b"sep=,\na,y\n1,2\n", decimal=",")


def test_csv_a_header_named_like_sep_is_only_skipped_when_it_declares_one_character():
    parsed = parse_csv(b"sep=ab,y\n1,2\n3,4\n")
    assert parsed.feature_names == ("sep=ab",)
