"""The OpenAPI document: FastAPI's, made true to what the service sends.

- Every error response is ``application/problem+json`` with the ``Problem`` schema (FastAPI
  documents its own validation errors as ``application/json`` ``HTTPValidationError``, a shape
  the service never sends); an operation with a body also documents 400 (malformed JSON) and
  413 (over the body limit), which the body parsing and ``BodyLimit`` send for any of them.
- operationIds are the route functions' names (``create_job``, not ``create_job_v1_jobs_post``).
- In open mode (no API keys) the bearer scheme is optional: ``security: [{}, {"HTTPBearer": []}]``.
  Keys can be added while serving, so the document is built per mode, each once.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from trainapi.keys import KeyRing

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
BODY_ERRORS = {"400": "Malformed JSON", "413": "Body too large"}


def operation_id(route: APIRoute) -> str:
    """``generate_unique_id_function`` of the app: the route function's name."""
    return route.name


def document(app: FastAPI, open_mode: bool) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
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
    return schema


def install(app: FastAPI, keys: KeyRing) -> None:
    """Serve :func:`document` at ``/openapi.json`` for the mode the keys file is in now."""
    built: dict[bool, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        mode = keys.open_mode
        if mode not in built:
            built[mode] = document(app, mode)
        return built[mode]

    app.openapi = openapi  # type: ignore[method-assign]
