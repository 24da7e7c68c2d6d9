"""The OpenAPI document is valid and true: problem+json errors, enums, date-times, readable operationIds,
the bearer scheme optional only in open mode, and 405s that list every method of the path. And it serves
client generators: binary weights, string event streams, an info block that names no one else's package,
request schemas whose defaults are optional, links between operations, and sweep parameters as one of two
shapes (tests/api/test_generated_clients.py runs two generators on it)."""

from __future__ import annotations

import asyncio
import typing
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate
from pydantic import ValidationError

from api import openapi
from api.main import create_app
from api.schemas.jobs import JobStatus
from api.schemas.sweeps import Parameter
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


def test_weights_are_binary_and_event_streams_text(documents):
    paths = documents["keyed"]["paths"]
    weights = paths["/v1/jobs/{job_id}/weights"]["get"]["responses"]["200"]["content"]
    assert list(weights) == ["application/octet-stream", "application/json"]  # npz, safetensors, onnx; json
    assert all(media["schema"] == {"type": "string", "format": "binary"} for media in weights.values())
    for path in ("/v1/jobs/{job_id}/events", "/v1/sweeps/{sweep_id}/events"):
        assert paths[path]["get"]["responses"]["200"]["content"] == {
            "text/event-stream": {"schema": {"type": "string"}}
        }


def test_the_info_names_no_one_elses_package(documents):
    info = documents["keyed"]["info"]
    # openapi-python-client names its distribution after the title: "<title>-client".
    slug = "-".join(info["title"].lower().split())
    assert f"{slug}-client" != "trainapi-client"
    assert info["version"] and info["summary"] and info["description"]
    assert info["license"] == {"name": "MIT", "identifier": "MIT"}


def test_request_schemas_leave_defaults_optional(documents):
    document = documents["keyed"]
    schemas = document["components"]["schemas"]
    request_side = openapi.request_schemas(document)
    assert {"JobSpec", "TrainingSpec", "SweepCreate", "Pruning", "WebhookCreate", "PredictRequest"} <= request_side
    for name in request_side:
        for prop, schema in schemas[name].get("properties", {}).items():
            # openapi-typescript makes a property with a default required, outside request bodies' own schemas.
            assert "default" not in schema, (name, prop)
    training = schemas["TrainingSpec"]
    assert (
        "epochs" not in training.get("required", [])
        and "Default: `50`" in training["properties"]["epochs"]["description"]
    )
    sweep = schemas["SweepCreate"]
    assert set(sweep["required"]) == {"base", "parameters"}
    assert "Default: `2`" in sweep["properties"]["max_concurrent_trials"]["description"]


def test_links_lead_from_each_resource_to_the_operations_on_it(documents):
    document = documents["keyed"]
    operations = {op["operationId"]: (path, op) for path, ops in document["paths"].items() for op in ops.values()}
    expected = {
        "create_job": {"get_job", "get_metrics", "job_events", "get_weights", "predict", "cancel_job", "delete_job"},
        "create_sweep": {"get_sweep", "sweep_events", "cancel_sweep"},
        "create_dataset": {"get_dataset", "dataset_rows", "delete_dataset"},
        "create_webhook": {"get_webhook", "list_deliveries", "rotate_secret", "send_test", "delete_webhook"},
    }
    for source, targets in expected.items():
        getter = targets & {"get_job", "get_sweep", "get_dataset", "get_webhook"}
        for operation_id in (source, *getter):
            _, op = operations[operation_id]
            [status] = [s for s in op["responses"] if s.startswith("2")]
            links = dict(op["responses"][status]["links"])
            assert set(links) == targets, operation_id
            for link in links.values():
                target_path, _ = operations[link["operationId"]]
                [(parameter, expression)] = link["parameters"].items()
                assert f"{{{parameter}}}" in target_path and expression == "$response.body#/id"


@pytest.mark.parametrize(
    "parameter",
    [
        {"values": [0, 0.001]},
        {"values": [1], "distribution": None, "low": None},
        {"distribution": "log_uniform", "low": 0.0001, "high": 0.1},
        {"distribution": "int_uniform", "low": 1, "high": 8, "values": None},
        {},
        {"values": [1], "distribution": "uniform", "low": 0, "high": 1},
        {"distribution": "uniform", "low": 0},
        {"distribution": "uniform", "low": None, "high": 1},
        {"values": []},
        {"values": [1], "other": 2},
    ],
)
def test_a_sweep_parameter_is_values_or_a_distribution(documents, parameter):
    """The schema says what the model accepts, but for the rules that span values (low < high, ...)."""
    schema = documents["keyed"]["components"]["schemas"]["Parameter"]
    try:
        Parameter.model_validate(parameter)
        accepted = True
    except ValidationError:
        accepted = False
    valid = jsonschema.Draft202012Validator(schema).is_valid(parameter)
    assert valid == accepted, parameter
    assert [option["title"] for option in schema["oneOf"]] == ["ValuesParameter", "DistributionParameter"]


def test_predict_rows_are_no_union_of_primitives(documents):
    """openapi-generator cannot build a row typed as a list or an object of any of four primitives."""
    inputs = documents["keyed"]["components"]["schemas"]["PredictRequest"]["properties"]["inputs"]
    assert inputs["type"] == "array" and inputs["minItems"] == 1 and inputs["maxItems"] == 10_000
    assert not {"anyOf", "oneOf", "type"} & set(inputs["items"]) and inputs["items"]["title"] == "Row"
