"""The OpenAPI document is valid and true: problem+json errors, enums, date-times, readable operationIds,
the bearer scheme optional only in open mode, and 405s that list every method of the path."""

from __future__ import annotations

import asyncio
import typing
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from api.main import create_app
from api.schemas.jobs import JobStatus
from store.statuses import STATUSES
from trainapi.keys import add_key
from trainapi.settings import Settings


def _app(tmp_path: Path, keyed: bool) -> Any:
    # Open mode is no keys file at all: a configured one that is missing or empty refuses every request.
    keys = tmp_path / "api_keys" if keyed else None
    if keys is not None:
        add_key(keys, "alpha")
    return create_app(Settings(redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path, api_keys_file=keys))


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return {
        "open": _app(tmp_path_factory.mktemp("open"), keyed=False).openapi(),
        "keyed": _app(tmp_path_factory.mktemp("keyed"), keyed=True).openapi(),
    }


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_the_document_passes_openapi_spec_validator(documents):
    # The open document: the keyed one differs only in requiring the scheme (checked below).
    validate(documents["open"])
    assert "$defs" not in str(documents["open"])  # every reference resolves within components


def test_error_responses_are_problem_documents(documents):
    document = documents["keyed"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, op in _operations(document):
        for status, response in op["responses"].items():
            if status[0] in "45":
                assert list(response.get("content", {})) == ["application/problem+json"], (method, path, status)
        if "requestBody" in op:
            assert {"400", "413"} <= set(op["responses"]), (method, path)


def test_operation_ids_are_the_route_names(documents):
    ids = [op["operationId"] for _, _, op in _operations(documents["keyed"])]
    assert len(ids) == len(set(ids))
    assert {"create_job", "get_job", "list_jobs", "get_weights", "predict", "create_sweep", "create_dataset"} <= set(
        ids
    )
    assert all("_v1_" not in i and not i.endswith(("_get", "_post", "_delete")) for i in ids)


def test_enums_and_date_times(documents):
    document = documents["keyed"]
    schemas = document["components"]["schemas"]
    parameters = {
        (path, p["name"]): p["schema"]
        for path, ops in document["paths"].items()
        for op in ops.values()
        for p in op.get("parameters", [])
    }
    status = parameters[("/v1/jobs", "status")]["anyOf"][0]
    assert status["enum"] == list(STATUSES)
    assert parameters[("/v1/jobs/{job_id}/weights", "format")]["enum"] == ["npz", "safetensors", "json", "onnx"]
    job = schemas.get("JobPublic") or schemas["JobPublic-Output"]
    assert job["properties"]["status"]["enum"] == list(STATUSES)
    assert job["properties"]["created_at"]["format"] == "date-time"
    assert job["properties"]["latest_metrics"]["anyOf"][0]["$ref"].endswith("/EpochMetrics")
    assert schemas["MetricsList"]["properties"]["items"]["items"]["$ref"].endswith("/EpochMetrics")
    assert list(typing.get_args(JobStatus)) == list(STATUSES)


def test_the_bearer_scheme_is_optional_only_in_open_mode(documents):
    for mode, expected in (("open", [{}, {"HTTPBearer": []}]), ("keyed", [{"HTTPBearer": []}])):
        secured = [op["security"] for _, path, op in _operations(documents[mode]) if path.startswith("/v1/")]
        assert secured and all(s == expected for s in secured), mode


def test_a_405_lists_every_method_of_the_path(tmp_path):
    app = _app(tmp_path, keyed=True)

    async def call() -> dict[str, str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return {
                p: (await client.request("PATCH", p)).headers.get("allow", "") for p in ("/v1/jobs/x", "/v1/datasets")
            }

    allow = asyncio.run(call())
    assert set(allow["/v1/jobs/x"].split(", ")) >= {"GET", "DELETE"}
    assert set(allow["/v1/datasets"].split(", ")) >= {"GET", "POST"}
