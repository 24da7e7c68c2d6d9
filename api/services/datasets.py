"""Datasets: an upload admitted, parsed and stored within this process's limits.

The route (``api/routes/datasets.py``) reads the request and renders the
record; this module decides. Every upload, whatever its format, is parsed and
stored while holding one of the process's ``max_concurrent_parses`` slots
(:attr:`api.state.AppState.parses`): the parsed arrays live until they are
stored, so the slot bounds the memory of uploads in flight; the others wait
their turn. Parsing and storing run in worker threads, never on the event loop.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import IO, Any

import anyio
import numpy as np
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

import engine
from api.errors import invalid
from api.parsing import ParsedDataset, parse_json, parse_upload
from api.schemas.datasets import DATASET_NAME, DatasetCreate
from api.state import AppState
from engine.preprocessing import target_present
from store.errors import StorageFull

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileUpload:
    """A multipart upload as the route read it: the spooled file and the text fields (None when absent)."""

    file: IO[bytes]
    filename: str | None
    content_type: str | None
    name: str | None
    target: str | None
    delimiter: str | None
    decimal: str | None
    na_values: list[str] | None


def check_room(state: AppState) -> None:
    """StorageFull (507) before anything is read when the data directory is down to its reserve of free space."""
    free = state.artifacts.storage.free_bytes()
    reserve = state.settings.storage_min_free_bytes
    if free is not None and free < reserve:
        raise StorageFull(f"the data directory has {free:,} bytes free, less than the {reserve:,} kept free")


def dataset_name(upload: FileUpload) -> str:
    """The ``name`` field, else the file's name, else ``upload``; validated as the JSON ``name`` (422 on it)."""
    value = upload.name if upload.name is not None else upload.filename
    if value is None or (upload.name is None and not value):
        return "upload"
    try:
        return DATASET_NAME.validate_python(value)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"]
        if upload.name is None:
            message = f"the file's name is no dataset name ({message}); send a `name` field"
        raise invalid("name", message) from None


async def create_from_file(state: AppState, tenant: str, upload: FileUpload) -> dict[str, Any]:
    """Parse a CSV or NPZ file and store it as the tenant's dataset; the record."""
    name = dataset_name(upload)
    settings = state.settings
    async with state.parses:
        parsed = await anyio.to_thread.run_sync(
            lambda: parse_upload(
                upload.file,
                filename=upload.filename,
                content_type=upload.content_type,
                target=upload.target,
                delimiter=upload.delimiter,
                decimal=upload.decimal,
                na_values=upload.na_values,
                max_rows=settings.max_upload_rows,
                max_columns=settings.max_upload_columns,
                max_expansion=settings.max_upload_expansion,
                max_decompressed_bytes=settings.max_decompressed_bytes,
            )
        )
        return await _store(state, tenant, parsed, name)


async def create_from_json(state: AppState, tenant: str, body: bytes) -> dict[str, Any]:
    """Validate a JSON dataset body (off the event loop) and store it; the record."""
    settings = state.settings

    def parse() -> tuple[ParsedDataset, str]:
        try:
            payload = DatasetCreate.model_validate_json(body)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        parsed = parse_json(
            payload.features,
            payload.target,
            feature_names=payload.feature_names,
            max_rows=settings.max_upload_rows,
            max_columns=settings.max_upload_columns,
        )
        if payload.target_name:
            parsed = dataclasses.replace(parsed, target_name=payload.target_name)
        return parsed, payload.name

    async with state.parses:
        parsed, name = await anyio.to_thread.run_sync(parse)
        return await _store(state, tenant, parsed, name)


async def _store(state: AppState, tenant: str, parsed: ParsedDataset, name: str) -> dict[str, Any]:
    _check_target(parsed.y)
    dataset = engine.Dataset(
        name,
        parsed.X,
        parsed.y,
        parsed.feature_names,
        parsed.target_name,
        None,
        "uploaded",
        parsed.column_types,
        parsed.levels,
    )
    about = {"columns": parsed.columns, "notes": list(parsed.notes)}
    quota = state.settings.tenant_storage_bytes
    return await anyio.to_thread.run_sync(lambda: state.catalog.add(tenant, dataset, about, quota=quota))


def _check_target(y: np.ndarray) -> None:
    present = y[target_present(y)]
    if len(np.unique(present)) < 2:
        shown = f" ({present[0]!r})" if len(present) else ""
        raise invalid("target", f"the target has a single value{shown}; nothing to learn")
