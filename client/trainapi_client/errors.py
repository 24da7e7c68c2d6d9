"""One exception family: every problem+json response becomes an :class:`APIError` (or a subclass)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


class APIError(Exception):
    """An error response from the service (RFC 9457 ``application/problem+json``).

    Attributes
    ----------
    status : int or None
        The HTTP status; None when no response arrived (:class:`APIConnectionError`).
    title, detail : str
        The problem's short title and this occurrence's explanation.
    errors : list of {"field", "message"}
        Per-field details of a validation error; empty otherwise.
    """

    def __init__(
        self,
        status: int | None,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: httpx.Headers | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}" if status else f"{title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = list(errors or [])
        self.headers = headers if headers is not None else httpx.Headers()
        self.body = body


class BadRequest(APIError):
    """400: the request could not be read (malformed JSON)."""


class AuthenticationError(APIError):
    """401: no API key, or one the service does not know."""


class NotFound(APIError):
    """404: no such resource for this API key."""


class Conflict(APIError):
    """409: the resource is not in a state that allows this (weights of an unfinished job, ...)."""


class ValidationError(APIError):
    """422: the request names a field the service refused; ``field`` is the first one."""

    @property
    def field(self) -> str | None:
        return str(self.errors[0]["field"]) if self.errors else None


class RateLimited(APIError):
    """429: too many active jobs; ``retry_after`` is the service's advice in seconds."""

    @property
    def retry_after(self) -> float | None:
        return retry_after_seconds(self.headers)


class Unavailable(APIError):
    """503: the service cannot serve now (state store or queue unreachable, no worker ready)."""


class APIConnectionError(APIError):
    """No response: the service could not be reached, or the connection broke (after every retry)."""

    def __init__(self, detail: str) -> None:
        super().__init__(None, "Connection error", detail)


BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: AuthenticationError,
    404: NotFound,
    409: Conflict,
    422: ValidationError,
    429: RateLimited,
    503: Unavailable,
}


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """``Retry-After`` in seconds (delta-seconds form; an HTTP date counts from now)."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def from_response(response: httpx.Response) -> APIError:
    """The exception for an error response: its problem document, or the status line if it has none."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        title = str(body.get("title") or response.reason_phrase)
        detail = str(body.get("detail") or title)
        errors = body.get("errors") if isinstance(body.get("errors"), list) else None
    else:
        title, detail, errors = response.reason_phrase or "HTTP error", response.text[:500], None
    cls = BY_STATUS.get(response.status_code, APIError)
    return cls(response.status_code, title, detail, errors=errors, headers=response.headers, body=body)
