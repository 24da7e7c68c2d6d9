"""One exception family and one renderer: every error leaves as RFC 9457 ``application/problem+json``.

Expected failures raise :class:`ApiError`, or an error of their own layer that
:data:`PROBLEMS` maps to its status (store, engine, upload parsing, search
space), so routes need no try/except to translate errors and a 500 always
means a bug; its body never carries a trace.
"""

from __future__ import annotations

import difflib
import email.message
import json
import logging
import re
import types
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.parsing import ParseError
from engine.errors import ConfigError, InputError
from store.errors import (
    Conflict,
    IdempotencyKeyReused,
    NotFound,
    QuotaExceeded,
    StorageFull,
    StoreError,
    TenantStorageQuota,
)
from store.search import SpaceError

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


#: The one map from a parse error's kind to its HTTP status and problem title.
PARSE_ERROR_STATUS: dict[str, tuple[int, str]] = {
    "invalid": (422, "Invalid dataset"),
    "too_large": (413, "Payload too large"),
    "unsupported_type": (415, "Unsupported media type"),
}


class ApiError(Exception):
    """An error with its HTTP status, rendered as a problem document.

    Parameters
    ----------
    status : int
    title : str
        Short, the same for every occurrence of the problem type.
    detail : str
        This occurrence, for a human.
    errors : list of {"field", "message"}, optional
        Per-field details (validation).
    headers : dict, optional
        Extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.extensions = extensions

    @classmethod
    def from_parse_error(cls, exc: ParseError) -> ApiError:
        """The problem for a bad upload: status by kind, the field, and the bad cells (``bad_cells``) if any."""
        status, title = PARSE_ERROR_STATUS[exc.kind]
        errors = [{"field": exc.field, "message": exc.detail}] if exc.field else None
        extensions = {"bad_cells": [cell.as_dict() for cell in exc.cells]} if exc.cells else None
        return cls(status, title, exc.detail, errors=errors, extensions=extensions)


def invalid(field: str, message: str) -> ApiError:
    """A 422 naming one field."""
    return ApiError(422, "Invalid request", f"{field}: {message}", errors=[{"field": field, "message": message}])


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://trainapi.dev/problems/{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    if extensions:
        body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    """``("body", "regularization", "dropout", "constrained-float")`` -> ``"regularization.dropout"``;
    ``("query", "status")`` -> ``"status"``."""
    parts = [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or "-" in p))]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def field_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """One entry per field (a union reports each member; the first message is the useful one)."""
    seen: dict[str, str] = {}
    for e in errors:
        seen.setdefault(_field(tuple(e.get("loc", ()))), str(e.get("msg", "invalid")))
    return [{"field": f, "message": m} for f, m in seen.items()]


def allowed_methods(request: Request) -> str | None:
    """Every method the API documents for this path (Starlette's own 405 names only the first route's)."""
    path = request.url.path
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        pattern = "".join(
            "[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^/}]+\})", template)
        )
        if re.fullmatch(pattern, path):
            methods |= {method.upper() for method in operations}
    return ", ".join(sorted(methods)) or None


def is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/*+json``, parameters aside."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def validation_problem(
    errors: list[Any],
    *,
    body_model: Any = None,
    content_type: str | None = None,
    body: Any = None,
) -> ApiError:
    """A request that fails its schema: 400 for malformed JSON, 415 for a body not sent as JSON, else a 422
    listing each field.

    ``body_model`` is the type the route reads its JSON body as: an unknown field's message then suggests
    the nearest known field at its place (``did you mean `epochs`?``). ``content_type`` and ``body`` are the
    request's: FastAPI reads a body as JSON only when it is sent as JSON, and otherwise hands the model
    the raw bytes, which would read "Input should be a valid dictionary".
    """
    malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        message = malformed.get("ctx", {}).get("error", "")
        return ApiError(400, "Malformed JSON", f"the request body is not valid JSON: {message}".rstrip(": "))
    if isinstance(body, bytes) and body_model is not None and not is_json(content_type):
        return _not_sent_as_json(content_type, body)
    if body_model is not None:
        errors = [_with_suggestion(e, body_model) for e in errors]
    fields = field_errors(errors)
    return ApiError(
        422, "Invalid request", "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5]), errors=fields
    )


def _not_sent_as_json(content_type: str | None, body: bytes) -> ApiError:
    try:
        json.loads(body)
    except ValueError:
        what = "a body"
    else:
        what = "a JSON body"
    sent = f"with Content-Type {content_type!r}" if content_type else "without a Content-Type header"
    return ApiError(
        415,
        "Unsupported media type",
        f"{what} was sent {sent}; send Content-Type: application/json (curl: --json, "
        "or -H 'Content-Type: application/json')",
        errors=[{"field": "Content-Type", "message": "must be application/json"}],
    )


def _with_suggestion(error: Any, body_model: Any) -> Any:
    """An ``extra_forbidden`` error in the body with "; did you mean `X`?" when a known field there is close."""
    loc = tuple(error.get("loc", ()))
    if error.get("type") != "extra_forbidden" or len(loc) < 2 or loc[0] != "body" or not isinstance(loc[-1], str):
        return error
    known = _known_fields(body_model, loc[1:-1])
    close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
    if not close:
        return error
    return {**error, "msg": f"{error.get('msg', 'unknown field')}; did you mean `{close[0]}`?"}


def _known_fields(hint: Any, path: Sequence[Any]) -> list[str]:
    """The field names (aliases where set) of the models that ``path`` leads to from the type ``hint``."""
    found: list[str] = []
    for model in _models_at(hint, tuple(path)):
        for name, info in model.model_fields.items():
            found.append(info.alias or name)
    return list(dict.fromkeys(found))


def _models_at(hint: Any, path: tuple[Any, ...]) -> list[type[BaseModel]]:
    """The pydantic models at ``path`` (a validation error's location) inside ``hint``; [] when it leads elsewhere."""
    origin = get_origin(hint)
    if origin is Annotated:
        return _models_at(get_args(hint)[0], path)
    if origin is Union or origin is types.UnionType:
        members = get_args(hint)
        # pydantic names the union member it tried in the location (the model's name): follow that one.
        tagged = [m for m in members if path and isinstance(m, type) and m.__name__ == path[0]]
        if tagged:
            return _models_at(tagged[0], path[1:])
        return [model for member in members for model in _models_at(member, path)]
    if path and isinstance(path[0], str) and ("[" in path[0] or "-" in path[0]):  # a validator's name
        return _models_at(hint, path[1:])
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        if not path:
            return [hint]
        by_name = {info.alias or name: info for name, info in hint.model_fields.items()}
        info = by_name.get(path[0]) if isinstance(path[0], str) else None
        return [] if info is None else _models_at(info.annotation, path[1:])
    if not path:
        return []
    if origin in (list, tuple, set, frozenset) and isinstance(path[0], int):
        return [model for item in get_args(hint) if item is not Ellipsis for model in _models_at(item, path[1:])]
    if origin is dict and len(get_args(hint)) == 2:
        return _models_at(get_args(hint)[1], path[1:])
    return []


#: The one map from the expected errors of every layer to their problem documents. Anything not
#: here (nor a store outage or an HTTP error, below) is a bug: a 500.
PROBLEMS: dict[type[Exception], Callable[[Any], ApiError]] = {
    ApiError: lambda exc: exc,
    RequestValidationError: lambda exc: validation_problem(list(exc.errors())),
    ParseError: ApiError.from_parse_error,
    ConfigError: lambda exc: invalid(exc.field, exc.message),
    SpaceError: lambda exc: invalid(exc.field, str(exc)),
    InputError: lambda exc: ApiError(422, "Invalid inputs", str(exc)),
    NotFound: lambda exc: ApiError(404, "Not found", str(exc)),
    Conflict: lambda exc: ApiError(409, "Conflict", str(exc)),
    IdempotencyKeyReused: lambda exc: ApiError(
        422,
        "Idempotency key reused",
        str(exc),
        errors=[{"field": "Idempotency-Key", "message": "already used with a different request body"}],
        extensions={"job_id": exc.job_id},
    ),
    QuotaExceeded: lambda exc: ApiError(
        429, "Too many active jobs", str(exc), headers={"Retry-After": str(exc.retry_after)}
    ),
    StorageFull: lambda exc: ApiError(507, "Insufficient storage", f"{exc}; try again once space is freed"),
    TenantStorageQuota: lambda exc: ApiError(413, "Storage quota exceeded", str(exc)),
}


def _renderer(convert: Callable[[Any], ApiError]) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def render(request: Request, exc: Exception) -> JSONResponse:
        err = convert(exc)
        return problem(
            err.status,
            err.title,
            err.detail,
            instance=request.url.path,
            errors=err.errors,
            headers=err.headers,
            extensions=err.extensions,
        )

    return render


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into a problem document."""

    for cls, convert in PROBLEMS.items():
        app.add_exception_handler(cls, _renderer(convert))

    # Replaces PROBLEMS' entry: the request tells which model the body was read as, and how it was sent.
    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        route = request.scope.get("route")
        body_field = getattr(route, "body_field", None)
        convert = _renderer(
            lambda e: validation_problem(
                list(e.errors()),
                body_model=body_field.field_info.annotation if body_field is not None else None,
                content_type=request.headers.get("content-type"),
                body=e.body,
            )
        )
        return await convert(request, exc)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        log.error("store error on %s: %s", request.url.path, exc)
        return problem(503, "Service unavailable", str(exc), instance=request.url.path)

    @app.exception_handler(redis.RedisError)
    async def redis_down(request: Request, exc: redis.RedisError) -> JSONResponse:
        log.error("redis error on %s: %s", request.url.path, exc)
        return problem(
            503,
            "Service unavailable",
            "the state store (Redis) is unreachable; retry shortly",
            instance=request.url.path,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 413: "Payload too large", 415: "Unsupported media type"}
        headers = getattr(exc, "headers", None)
        allow = allowed_methods(request) if exc.status_code == 405 else None
        if allow:
            headers = {**(headers or {}), "Allow": allow}
        return problem(
            exc.status_code,
            titles.get(exc.status_code, "HTTP error"),
            str(exc.detail),
            instance=request.url.path,
            headers=headers,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "an unexpected error occurred; it has been logged")
