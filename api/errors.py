"""One exception family and one renderer: every error leaves as RFC 9457 ``application/problem+json``.

Expected failures raise :class:`ApiError`, or an error of their own layer that
:data:`PROBLEMS` maps to its status (store, engine, upload parsing, search
space), so routes need no try/except to translate errors and a 500 always
means a bug; its body never carries a trace.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.parsing import ParseError
from engine.errors import ConfigError, InputError
from store.errors import Conflict, NotFound, QuotaExceeded, StorageFull, StoreError, TenantStorageQuota
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


def validation_problem(errors: list[Any]) -> ApiError:
    """A request that fails its schema: 400 for malformed JSON, else a 422 listing each field."""
    malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        message = malformed.get("ctx", {}).get("error", "")
        return ApiError(400, "Malformed JSON", f"the request body is not valid JSON: {message}".rstrip(": "))
    fields = field_errors(errors)
    return ApiError(
        422, "Invalid request", "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5]), errors=fields
    )


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
