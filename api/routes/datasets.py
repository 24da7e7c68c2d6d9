"""Datasets: the built-ins and uploads (multipart CSV or NPZ, or a JSON body)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import anyio
import numpy as np
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

import engine
from api.deps import CatalogDep, StateDep, TenantDep
from api.errors import ApiError, invalid
from api.parsing import ParsedDataset, parse_json, parse_upload
from api.schemas.datasets import DatasetCreate, DatasetList, DatasetPublic, DatasetRows
from api.schemas.problems import responses
from engine.preprocessing import target_present

router = APIRouter(prefix="/datasets", tags=["datasets"])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "CSV with a header row, or NPZ."},
                        "target": {"type": "string", "description": "Target column (CSV); default the last."},
                        "name": {"type": "string"},
                        "delimiter": {
                            "type": "string",
                            "description": "CSV column separator (one character; `\\t` for tab); default: detected "
                            "among comma, semicolon, tab and pipe.",
                        },
                        "decimal": {"type": "string", "enum": [".", ","], "description": "CSV decimal mark."},
                        "na_values": {
                            "type": "string",
                            "description": "Comma-separated markers of a missing cell, replacing the default "
                            "NA, N/A, NaN, null, ? (an empty cell is always missing).",
                        },
                    },
                }
            },
            "application/json": {"schema": DatasetCreate.model_json_schema()},
        },
    }
}


def view(record: dict[str, Any]) -> DatasetPublic:
    target = next((c for c in record.get("columns") or () if c["name"] == record["target_name"]), None)
    missing = int(target["missing"]) if target else 0
    return DatasetPublic.model_validate({**record, "rows_missing_target": missing}, from_attributes=False)


@router.post(
    "",
    status_code=201,
    summary="Upload a dataset",
    openapi_extra=UPLOAD_BODY,
    responses=responses(400, 401, 413, 415, 422),
)
async def create_dataset(request: Request, response: Response, tenant: TenantDep, state: StateDep) -> DatasetPublic:
    limits = {"max_rows": state.settings.max_upload_rows, "max_columns": state.settings.max_upload_columns}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # A ParseError or a schema error leaves as its problem document (api/errors.py maps them).
    if content_type == "multipart/form-data":
        parsed, name = await _from_form(request, limits)
    elif content_type == "application/json":
        body = await request.body()
        try:
            payload = DatasetCreate.model_validate_json(body)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        parsed = await anyio.to_thread.run_sync(
            lambda: parse_json(payload.features, payload.target, feature_names=payload.feature_names, **limits)
        )
        if payload.target_name:
            parsed = dataclasses.replace(parsed, target_name=payload.target_name)
        name = payload.name
    else:
        raise ApiError(
            415,
            "Unsupported media type",
            f"send multipart/form-data (a CSV or NPZ file) or application/json, not {content_type or 'nothing'}",
        )

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
    record = await anyio.to_thread.run_sync(lambda: state.catalog.add(tenant, dataset, about))
    response.headers["Location"] = f"/v1/datasets/{record['id']}"
    return view(record)


async def _from_form(request: Request, limits: dict[str, int]) -> tuple[ParsedDataset, str]:
    form = await request.form(max_files=1, max_fields=20)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise invalid("file", "a multipart field `file` with the CSV or NPZ data is required")
    text: dict[str, str | None] = {}
    for key in ("target", "name", "delimiter", "decimal"):
        value = form.get(key)
        if value is not None and not isinstance(value, str):
            raise invalid(key, "must be a text field")
        text[key] = value or None
    na_fields = form.getlist("na_values")
    if any(not isinstance(value, str) for value in na_fields):
        raise invalid("na_values", "must be a text field")
    na_values = [v for value in na_fields if isinstance(value, str) for v in value.split(",")] if na_fields else None
    # The body is spooled to a temporary file; the CSV parser reads it from there line by line.
    parsed = await anyio.to_thread.run_sync(
        lambda: parse_upload(
            upload.file,
            filename=upload.filename,
            content_type=upload.content_type,
            target=text["target"],
            delimiter=text["delimiter"],
            decimal=text["decimal"] or ".",
            na_values=na_values,
            **limits,
        )
    )
    return parsed, text["name"] or upload.filename or "upload"


def _check_target(y: np.ndarray) -> None:
    present = y[target_present(y)]
    if len(np.unique(present)) < 2:
        shown = f" ({present[0]!r})" if len(present) else ""
        raise invalid("target", f"the target has a single value{shown}; nothing to learn")


DatasetId = Annotated[str, Path(max_length=100, description="A built-in name or an upload id.")]


@router.get("", summary="Built-in datasets and your uploads", responses=responses(401))
def list_datasets(tenant: TenantDep, catalog: CatalogDep) -> DatasetList:
    return DatasetList(items=[view(r) for r in catalog.list(tenant)])


@router.get("/{dataset_id}", summary="One dataset", responses=responses(401, 404))
def get_dataset(dataset_id: DatasetId, tenant: TenantDep, catalog: CatalogDep) -> DatasetPublic:
    return view(catalog.resolve(tenant, dataset_id))


@router.get("/{dataset_id}/rows", summary="The first rows of a dataset", responses=responses(401, 404, 422))
def dataset_rows(
    dataset_id: DatasetId,
    tenant: TenantDep,
    catalog: CatalogDep,
    limit: Annotated[int, Query(ge=1, le=100, description="How many rows, from the first.")] = 10,
) -> DatasetRows:
    return DatasetRows.model_validate(catalog.head(tenant, dataset_id, limit))


@router.delete("/{dataset_id}", status_code=204, summary="Delete an upload", responses=responses(401, 404, 409))
def delete_dataset(dataset_id: DatasetId, tenant: TenantDep, catalog: CatalogDep) -> Response:
    """409 for a built-in, and while queued or running jobs or sweeps use the dataset (the detail names them)."""
    catalog.delete(tenant, dataset_id)
    return Response(status_code=204)
