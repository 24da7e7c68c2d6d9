"""The OpenAPI document: FastAPI's, made true to what the service sends.

- Every error response is ``application/problem+json`` with the ``Problem`` schema (FastAPI
  documents its own validation errors as ``application/json`` ``HTTPValidationError``, a shape
  the service never sends); an operation with a body also documents 400 (malformed JSON) and
  413 (over the body limit), which the body parsing and ``BodyLimit`` send for any of them.
- operationIds are the route functions' names (``create_job``, not ``create_job_v1_jobs_post``).
- In open mode (no API keys) the bearer scheme is optional: ``security: [{}, {"HTTPBearer": []}]``.
  Keys can be added while serving, so the document is built per mode, each once.
- Written for client generators too (openapi-python-client, openapi-generator, openapi-typescript;
  ``tools/generated_clients.py`` checks the first two):
  - the schemas that request bodies use carry no ``default``: openapi-typescript makes a property with a
    ``default`` required in ``components/schemas`` (a service fills it in, a caller may leave it out); the
    default is stated in the description instead, and the properties stay out of ``required``;
  - ``links`` lead from a created (or fetched) job, sweep, dataset and webhook to the operations on it,
    ``{id}: $response.body#/id``, so schemathesis' stateful phase and link-aware clients use real ids.
    (No link sets a request body: openapi-generator's parser accepts only a string there.)
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from trainapi.keys import KeyRing

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
BODY_ERRORS = {
    "400": "Malformed JSON",
    "413": "Body too large",
    "415": "Body not sent as `Content-Type: application/json`",
}
SUMMARY = "Train regularized models over HTTP: datasets, jobs, sweeps, weights, predictions, webhooks."
LICENSE = {"name": "MIT", "identifier": "MIT"}

#: For each resource: its path parameter, the responses that return it (operationId, status), and the
#: operations on it those responses link to.
LINKS: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    "job_id": (
        (("create_job", "202"), ("get_job", "200")),
        ("get_job", "get_metrics", "job_events", "get_weights", "predict", "cancel_job", "delete_job"),
    ),
    "sweep_id": ((("create_sweep", "202"), ("get_sweep", "200")), ("get_sweep", "sweep_events", "cancel_sweep")),
    "dataset_id": (
        (("create_dataset", "201"), ("get_dataset", "200")),
        ("get_dataset", "dataset_rows", "delete_dataset"),
    ),
    "webhook_id": (
        (("create_webhook", "201"), ("get_webhook", "200")),
        ("get_webhook", "list_deliveries", "rotate_secret", "send_test", "delete_webhook"),
    ),
}


def operation_id(route: APIRoute) -> str:
    """``generate_unique_id_function`` of the app: the route function's name."""
    return route.name


def document(app: FastAPI, open_mode: bool) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=SUMMARY,
        description=app.description,
        license_info=LICENSE,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    schemas = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for operations in schema["paths"].values():
        for operation in operations.values():
            responses = operation["responses"]
            if "requestBody" in operation:
                for status, title in BODY_ERRORS.items():
                    responses.setdefault(status, {"description": title})
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = PROBLEM
                    if response.get("description") == "Validation Error":
                        response["description"] = "Invalid request: `errors` names each field"
            if open_mode and operation.get("security"):
                operation["security"] = [{}, *operation["security"]]
    for name in sorted(request_schemas(schema)):
        _defaults_to_descriptions(schemas[name])
    _add_links(schema)
    return schema


def _refs(node: Any) -> set[str]:
    """The component schema names ``node`` refers to directly."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        found = {ref.rsplit("/", 1)[1]} if isinstance(ref, str) else set()
        return found.union(*(_refs(value) for key, value in node.items() if key != "$ref"))
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node))
    return set()


def request_schemas(schema: dict[str, Any]) -> set[str]:
    """The component schemas a request body uses, directly or through others."""
    schemas = schema.get("components", {}).get("schemas", {})
    todo = _refs([op.get("requestBody", {}) for ops in schema["paths"].values() for op in ops.values()])
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen and name in schemas:
            seen.add(name)
            todo |= _refs(schemas[name])
    return seen


def _defaults_to_descriptions(component: dict[str, Any]) -> None:
    for prop in component.get("properties", {}).values():
        if "default" not in prop:
            continue
        default = prop.pop("default")
        description = prop.get("description", "")
        if "default" not in description.lower():
            note = f"Default: `{json.dumps(default)}`."
            prop["description"] = f"{description} {note}" if description else note


def _add_links(schema: dict[str, Any]) -> None:
    operations = {op["operationId"]: op for ops in schema["paths"].values() for op in ops.values()}
    for parameter, (sources, targets) in LINKS.items():
        links = {target: {"operationId": target, "parameters": {parameter: "$response.body#/id"}} for target in targets}
        for operation_id, status in sources:
            operations[operation_id]["responses"][status]["links"] = links


def install(app: FastAPI, keys: KeyRing) -> None:
    """Serve :func:`document` at ``/openapi.json`` for the mode the keys file is in now."""
    built: dict[bool, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        mode = keys.open_mode
        if mode not in built:
            built[mode] = document(app, mode)
        return built[mode]

    app.openapi = openapi  # type: ignore[method-assign]
