"""``Client`` and ``AsyncClient``: one per service, holding the connection pool and the resources."""

from __future__ import annotations

from types import TracebackType

import httpx

from trainapi_client.base_client import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    AsyncTransport,
    RetryPolicy,
    SyncTransport,
    default_headers,
    resolve,
)
from trainapi_client.resources.datasets import AsyncDatasets, Datasets
from trainapi_client.resources.jobs import AsyncJobs, Jobs
from trainapi_client.resources.sweeps import AsyncSweeps, Sweeps


class Client:
    """A synchronous client of a trainapi service.

    Parameters
    ----------
    base_url : str, optional
        Default ``TRAINAPI_URL``, else ``http://127.0.0.1:8000``.
    api_key : str, optional
        Sent as ``Authorization: Bearer``; default ``TRAINAPI_API_KEY`` (none: an open service).
    timeout : float or httpx.Timeout
        Per request, in seconds.
    max_retries : int
        Retries of a request that is safe to repeat, after connection errors, 429 and 503.
    http_client : httpx.Client, optional
        Your own (proxies, transports); its base URL and headers are set here.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.base_url, self.api_key = resolve(base_url, api_key)
        self._http = http_client or httpx.Client(timeout=timeout)
        self._http.base_url = httpx.URL(self.base_url)
        self._http.headers.update(default_headers(self.api_key))
        transport = SyncTransport(self._http, RetryPolicy(max_retries=max_retries))
        self.datasets = Datasets(transport)
        self.jobs = Jobs(transport)
        self.sweeps = Sweeps(transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient:
    """:class:`Client` for asyncio: the same resources and methods, each awaited."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url, self.api_key = resolve(base_url, api_key)
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._http.base_url = httpx.URL(self.base_url)
        self._http.headers.update(default_headers(self.api_key))
        transport = AsyncTransport(self._http, RetryPolicy(max_retries=max_retries))
        self.datasets = AsyncDatasets(transport)
        self.jobs = AsyncJobs(transport)
        self.sweeps = AsyncSweeps(transport)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
