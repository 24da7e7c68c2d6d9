"""The client's typed results against the live ``/openapi.json``: same fields, same required ones, same types."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from typing import Any

import httpx
import pytest
import trainapi_client
from trainapi_client import models
from trainapi_client.models import JOB_STATUSES, SCHEMAS, WEIGHTS_FORMATS, Model

PRIMITIVES: dict[str, type] = {"integer": int, "number": float, "string": str, "boolean": bool}


@pytest.fixture(scope="module")
def components(service) -> dict[str, Any]:
    document = httpx.get(f"{service.url}/openapi.json", timeout=30).json()
    return document["components"]["schemas"]


def _schema_name(components: dict[str, Any], name: str) -> str:
    # FastAPI splits a model used both ways into "X-Input" and "X-Output"; responses use the latter.
    return name if name in components else f"{name}-Output"


def _nullable(schema: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    options = schema.get("anyOf")
    if not options:
        return False, schema
    rest = [o for o in options if o.get("type") != "null"]
    return len(rest) < len(options), rest[0] if len(rest) == 1 else {"anyOf": rest}


def _mismatch(tp: Any, schema: dict[str, Any], components: dict[str, Any]) -> str | None:
    """Why the Python annotation ``tp`` does not describe values of ``schema`` (None: it does)."""
    nullable, schema = _nullable(schema)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if not nullable:
            return f"{tp} is optional, the schema is not nullable"
        return _mismatch(inner[0], schema, components)
    if nullable:
        return f"{tp} is not optional, the schema is nullable"
    if tp is Any:
        return None
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if isinstance(tp, type) and issubclass(tp, Model):
            return None if _schema_name(components, SCHEMAS[tp]) == name else f"{tp.__name__} is not {name}"
        if tp is dict or origin is dict:  # a typed object kept as a dict (the job spec)
            return None if components[name].get("type") == "object" else f"{name} is not an object"
        return f"{tp} for {name}"
    kind = schema.get("type")
    if kind == "array":
        return _mismatch(args[0] if args else Any, schema.get("items", {}), components) if origin is list else f"{tp}"
    if kind == "object":
        return None if origin is dict or tp is dict else f"{tp} for an object"
    if kind == "string" and schema.get("format") == "date-time":
        return None if tp is datetime else f"{tp} for a date-time"
    if kind in PRIMITIVES:
        return None if tp is PRIMITIVES[kind] else f"{tp} for {kind}"
    if not kind:  # any JSON value
        return None
    return f"unhandled schema {schema}"


@pytest.mark.parametrize("model", list(SCHEMAS), ids=lambda m: m.__name__)
def test_typed_results_match_the_live_schema(model: type[Model], components: dict[str, Any]) -> None:
    name = _schema_name(components, SCHEMAS[model])
    schema = components[name]
    types_ = typing.get_type_hints(model, vars(models))
    # A field keeps its JSON name in metadata when Python cannot use it (``lambda``).
    hints = {models.json_name(f): types_[f.name] for f in dataclasses.fields(model)}
    fields = {models.json_name(f): f for f in dataclasses.fields(model)}
    assert set(fields) == set(schema["properties"]), f"{model.__name__} vs {name}: update client/trainapi_client"
    required = {
        n for n, f in fields.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    assert required == set(schema.get("required", [])), f"{model.__name__}: required fields differ from {name}"
    problems = {n: _mismatch(hints[n], schema["properties"][n], components) for n in fields}
    assert not {n: p for n, p in problems.items() if p}, f"{model.__name__} vs {name}"


def test_every_response_schema_has_a_typed_result(components: dict[str, Any]) -> None:
    mirrored = {_schema_name(components, name) for name in SCHEMAS.values()}
    responses = {
        "DatasetPublic", "JobPublic", "EpochMetrics", "PredictResponse", "SweepPublic", "TrialResult", "PathPublic"
    }  # fmt: skip
    assert {_schema_name(components, n) for n in responses} <= mirrored


def test_the_weights_formats_are_the_services(service) -> None:
    document = httpx.get(f"{service.url}/openapi.json", timeout=30).json()
    [param] = [p for p in document["paths"]["/v1/jobs/{job_id}/weights"]["get"]["parameters"] if p["name"] == "format"]
    schema = param["schema"]
    enum = schema.get("enum") or document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]["enum"]
    assert set(WEIGHTS_FORMATS) == set(enum) and WEIGHTS_FORMATS[0] == schema.get("default", WEIGHTS_FORMATS[0])


def test_the_job_statuses_are_the_services(components: dict[str, Any]) -> None:
    status = components[_schema_name(components, "JobPublic")]["properties"]["status"]
    enum = status.get("enum") or components[status["$ref"].rsplit("/", 1)[1]]["enum"]
    assert list(JOB_STATUSES) == list(enum)


def test_star_import_gives_every_public_name() -> None:
    namespace: dict[str, Any] = {}
    exec("from trainapi_client import *", namespace)
    assert set(trainapi_client.__all__) <= set(namespace)
