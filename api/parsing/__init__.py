"""Dataset uploads: a CSV or NPZ file, or a decoded JSON body, in; validated arrays out.

One module per format — :mod:`api.parsing.csv`, :mod:`api.parsing.npz`,
:mod:`api.parsing.json` — and :func:`parse_upload`, which picks the format of
an uploaded file. Pure functions over NumPy and the standard library: no
FastAPI, no Redis, so the rules can be tested (and reused) without a server.
Every problem with the uploaded data is a :class:`ParseError` whose
``detail`` says what is wrong and where (row, line, column), whose ``kind``
says what sort of problem it is (``api.errors`` maps kinds to HTTP statuses)
and whose ``field`` names the request field concerned.

Row numbers in messages are 1-based data rows as a user counts them; CSV
messages add the physical line (``row 3 (line 4)``: the header is line 1).
JSON messages use the 0-based index of the JSON path instead
(``features[3][1]``, field ``features.3.1``), since that is how the client
addresses the value.
"""

from __future__ import annotations

from typing import IO, Any

from api.parsing.csv import parse_csv
from api.parsing.dataset import (
    DEFAULT_MAX_COLUMNS,
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    DEFAULT_MAX_EXPANSION,
    DEFAULT_MAX_ROWS,
    ParsedDataset,
    distinct_labels,
)
from api.parsing.errors import KINDS, BadCell, ParseError
from api.parsing.json import parse_json
from api.parsing.npz import ZIP_MAGICS, parse_npz

__all__ = [
    "DEFAULT_MAX_COLUMNS",
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "DEFAULT_MAX_EXPANSION",
    "DEFAULT_MAX_ROWS",
    "KINDS",
    "BadCell",
    "ParseError",
    "ParsedDataset",
    "distinct_labels",
    "parse_csv",
    "parse_json",
    "parse_npz",
    "parse_upload",
]

CSV_MEDIA_TYPES = frozenset({"text/csv", "application/csv", "application/vnd.ms-excel"})
NPZ_MEDIA_TYPES = frozenset({"application/x-npz"})
_ACCEPTED = "a CSV file (text/csv, *.csv) or a NumPy archive (application/x-npz, *.npz)"


def parse_upload(
    data: bytes | IO[bytes],
    *,
    filename: str | None,
    content_type: str | None,
    target: str | None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_columns: int = DEFAULT_MAX_COLUMNS,
    max_expansion: float = DEFAULT_MAX_EXPANSION,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
    **csv_options: Any,
) -> ParsedDataset:
    """Parse an uploaded file as CSV or NPZ, chosen by type, name and content.

    Rules, first match wins: bytes starting with the zip magic are NPZ (a CSV
    never does); ``application/x-npz`` or a ``*.npz`` name is NPZ; a CSV media
    type (``text/csv``, ``application/csv``, ``application/vnd.ms-excel``,
    which Windows reports for ``.csv``) or a ``*.csv`` name is CSV.  Anything
    else is refused (kind ``unsupported_type``).

    Parameters
    ----------
    data : bytes or seekable binary file
        The file's content.  Its size limit is the caller's (enforced while
        the body streams in).  Either format is read from the file piece by
        piece, never whole.
    filename : str or None
        Client-side file name; only its extension is used.
    content_type : str or None
        The part's media type; parameters (``; charset=...``) are ignored.
    target : str or None
        CSV target column (default: the last).  For NPZ the target is ``y``;
        ``None``, ``""`` or ``"target"`` are accepted, any other name is refused.
    max_rows, max_columns : int
        Size limits; exceeding one is a ``too_large`` error.
    max_expansion, max_decompressed_bytes : float, int
        What the file may decompress or convert to (float64 matrices
        included): at most ``max_expansion`` times its size and
        ``max_decompressed_bytes`` (``too_large`` above).
    **csv_options
        ``delimiter``, ``decimal``, ``na_values``: for a CSV, see :func:`~api.parsing.csv.parse_csv`.

    Returns
    -------
    ParsedDataset

    Raises
    ------
    ParseError
        ``unsupported_type`` for an unsupported file, else as :func:`parse_csv` / :func:`parse_npz`.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        head = bytes(data[:4])
    else:
        data.seek(0)
        head = data.read(4)
        data.seek(0)
    media = (content_type or "").split(";", 1)[0].strip().lower()
    name = (filename or "").strip().lower()
    ext = name.rsplit(".", 1)[-1] if "." in name else ""

    # An .xlsx/.ods workbook is a zip too: let it reach the refusal with its hint.
    zipped = head.startswith(ZIP_MAGICS) and ext not in ("xlsx", "ods")
    if zipped or ext == "npz" or media in NPZ_MEDIA_TYPES:
        kind = "npz"
    elif ext == "csv" or (media in CSV_MEDIA_TYPES and ext not in ("xls", "xlsx", "ods")):
        kind = "csv"
    else:
        shown = repr(content_type) if content_type else "no media type"
        if filename:
            shown += f" (file {filename!r})"
        hint = "; export spreadsheets as CSV" if ext in ("xls", "xlsx", "ods") or "spreadsheet" in media else ""
        raise ParseError(f"unsupported upload: {shown}; send {_ACCEPTED}{hint}", kind="unsupported_type", field="file")

    if kind == "csv":
        return parse_csv(
            data,
            target,
            max_rows=max_rows,
            max_columns=max_columns,
            max_expansion=max_expansion,
            max_decompressed_bytes=max_decompressed_bytes,
            **csv_options,
        )
    # Checked before parsing: an .npz's target is always its y, named "target".
    if target is not None and target.strip() not in ("", "target"):
        raise ParseError(
            f"'target' selects a CSV column; the target of a .npz upload is its array y (got target={target!r})",
            field="target",
        )
    return parse_npz(
        data,
        max_rows=max_rows,
        max_columns=max_columns,
        max_expansion=max_expansion,
        max_decompressed_bytes=max_decompressed_bytes,
    )
