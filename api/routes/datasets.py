"""Datasets: the built-ins and uploads (multipart CSV or NPZ, or a JSON body)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.datastructures import FormData, UploadFile
from starlette.requests import ClientDisconnect

from api.deps import CatalogDep, StateDep, TenantDep
from api.errors import ApiError, invalid
from api.schemas.datasets import DatasetCreate, DatasetList, DatasetPublic, DatasetRows
from api.schemas.problems import responses
from api.services import datasets

log = logging.getLogger(__name__)

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
                        "name": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 200,
                            "description": "Default: the file's name. No control characters or bidirectional "
                            "overrides (as the JSON `name`).",
                        },
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
    responses=responses(400, 401, 409, 413, 415, 422, 507),
)
async def create_dataset(request: Request, response: Response, tenant: TenantDep, state: StateDep) -> DatasetPublic:
    """409 while another upload or delete of the same content holds it; 507 when storage has no room."""
    datasets.check_room(state)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # A ParseError or a schema error leaves as its problem document (api/errors.py maps them).
    try:
        if content_type == "multipart/form-data":
            async with request.form(max_files=1, max_fields=20) as form:
                record = await datasets.create_from_file(state, tenant, _file_upload(form))
        elif content_type == "application/json":
            record = await datasets.create_from_json(state, tenant, await request.body())
        else:
            raise ApiError(
                415,
                "Unsupported media type",
                f"send multipart/form-data (a CSV or NPZ file) or application/json, not {content_type or 'nothing'}",
            )
    except ClientDisconnect:
        # Nobody to answer; the status is what the metrics count (499, as nginx logs a closed request).
        log.warning("client disconnected during upload (tenant %s)", tenant)
        raise ApiError(499, "Client closed request", "the client disconnected before the upload was complete") from None
    response.headers["Location"] = f"/v1/datasets/{record['id']}"
    return view(record)


def _file_upload(form: FormData) -> datasets.FileUpload:
    """The multipart fields: the file (the body is spooled to a temporary file, parsed from there) and text fields."""
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise invalid("file", "a multipart field `file` with the CSV or NPZ data is required")
    text: dict[str, str | None] = {}
    for key in ("target", "name", "delimiter", "decimal"):
        value = form.get(key)
        if value is not None and not isinstance(value, str):
            raise invalid(key, "must be a text field")
        text[key] = value
    na_fields = form.getlist("na_values")
    if any(not isinstance(value, str) for value in na_fields):
        raise invalid("na_values", "must be a text field")
    na_values = [v for value in na_fields if isinstance(value, str) for v in value.split(",")] if na_fields else None
    return datasets.FileUpload(
        file=upload.file,
        filename=upload.filename,
        content_type=upload.content_type,
        name=text["name"],
        target=text["target"] or None,
        delimiter=text["delimiter"] or None,
        decimal=text["decimal"] or None,
        na_values=na_values,
    )


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
