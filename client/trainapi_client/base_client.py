"""The HTTP layer both clients share: configuration, requests, error mapping, retries.

A request is described once (:class:`Request`) and sent by :class:`SyncTransport`
or :class:`AsyncTransport`; :class:`RetryPolicy` decides, for both, whether a
failure is retried and after how long. Retried: connection errors, 429 (after
its ``Retry-After``) and 503, for requests that are safe to repeat — GET and
DELETE, and job creation, whose ``Idempotency-Key`` makes a repeat return the
first job. Other POSTs are sent once.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from trainapi_client import __version__
from trainapi_client.errors import APIConnectionError, from_response, retry_after_seconds
from trainapi_client.models import Model

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT: httpx.Timeout = httpx.Timeout(60.0, connect=5.0)
DEFAULT_MAX_RETRIES = 5
RETRY_STATUSES = frozenset({429, 503})
M = TypeVar("M", bound=Model)


@dataclass
class Request:
    """One API call: what to send, and whether repeating it is safe."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool | None = None  # default: GET, HEAD and DELETE are

    @property
    def retryable(self) -> bool:
        return self.idempotent if self.idempotent is not None else self.method in ("GET", "HEAD", "DELETE")

    def kwargs(self) -> dict[str, Any]:
        params = {k: v for k, v in (self.params or {}).items() if v is not None}
        return {"params": params, "json": self.json, "files": self.files, "data": self.data, "headers": self.headers}


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter, ``Retry-After`` first.

    The n-th retry (n from 0) waits ``min(max_delay, initial_delay * 2**n)`` scaled by a
    random factor in [0.5, 1), unless the response says ``Retry-After``.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    initial_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, retry: int, response: httpx.Response | None = None) -> float:
        if response is not None:
            advised = retry_after_seconds(response.headers)
            if advised is not None:
                return advised
        return min(self.max_delay, self.initial_delay * 2**retry) * random.uniform(0.5, 1.0)

    def should_retry(self, request: Request, retry: int, response: httpx.Response | None) -> bool:
        """After a failed attempt (``response`` None: a connection error): try again?"""
        if retry >= self.max_retries or not request.retryable:
            return False
        return response is None or response.status_code in RETRY_STATUSES


def url_path(*segments: str) -> str:
    """``url_path("v1", "jobs", job_id)``: each segment percent-encoded, so an id cannot change the route."""
    return "/" + "/".join(quote(str(s), safe="") for s in segments)


def resolve(base_url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """Arguments first, then ``TRAINAPI_URL`` / ``TRAINAPI_API_KEY``, then the local default."""
    url = base_url or os.environ.get("TRAINAPI_URL") or DEFAULT_URL
    key = api_key if api_key is not None else os.environ.get("TRAINAPI_API_KEY") or None
    return url.rstrip("/"), key


def default_headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": f"trainapi-client/{__version__}", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


class SyncTransport:
    """Sends :class:`Request` objects with an ``httpx.Client``, retrying per :class:`RetryPolicy`."""

    def __init__(self, http: httpx.Client, policy: RetryPolicy) -> None:
        self.http = http
        self.policy = policy

    def send(self, request: Request) -> httpx.Response:
        with self.open(request) as response:
            response.read()
            return response

    def call(self, request: Request, model: type[M]) -> M:
        return model.from_dict(self.send(request).json())

    @contextmanager
    def open(self, request: Request) -> Iterator[httpx.Response]:
        """The response with its body not yet read (streams, downloads); retried until it is not an error."""
        retry = 0
        while True:
            try:
                response = self.http.send(
                    self.http.build_request(request.method, request.path, **request.kwargs()), stream=True
                )
            except httpx.TransportError as exc:
                if not self.policy.should_retry(request, retry, None):
                    raise APIConnectionError(f"{request.method} {request.path}: {exc!r}") from exc
                time.sleep(self.policy.delay(retry))
            else:
                if response.is_error:
                    response.read()
                    response.close()
                    if not self.policy.should_retry(request, retry, response):
                        raise from_response(response)
                    time.sleep(self.policy.delay(retry, response))
                else:
                    try:
                        yield response
                    finally:
                        response.close()
                    return
            retry += 1


class AsyncTransport:
    """:class:`SyncTransport` for an ``httpx.AsyncClient``."""

    def __init__(self, http: httpx.AsyncClient, policy: RetryPolicy) -> None:
        self.http = http
        self.policy = policy

    async def send(self, request: Request) -> httpx.Response:
        async with self.open(request) as response:
            await response.aread()
            return response

    async def call(self, request: Request, model: type[M]) -> M:
        return model.from_dict((await self.send(request)).json())

    @asynccontextmanager
    async def open(self, request: Request) -> AsyncIterator[httpx.Response]:
        retry = 0
        while True:
            try:
                built = self.http.build_request(request.method, request.path, **request.kwargs())
                response = await self.http.send(built, stream=True)
            except httpx.TransportError as exc:
                if not self.policy.should_retry(request, retry, None):
                    raise APIConnectionError(f"{request.method} {request.path}: {exc!r}") from exc
                await asyncio.sleep(self.policy.delay(retry))
            else:
                if response.is_error:
                    await response.aread()
                    await response.aclose()
                    if not self.policy.should_retry(request, retry, response):
                        raise from_response(response)
                    await asyncio.sleep(self.policy.delay(retry, response))
                else:
                    try:
                        yield response
                    finally:
                        await response.aclose()
                    return
            retry += 1
