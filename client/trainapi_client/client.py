"""``Client`` and ``AsyncClient``: one per service, holding the connection pool and the resources."""

from __future__ import annotations

from types import TracebackType
from typing import Generic, TypeVar

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

H = TypeVar("H", httpx.Client, httpx.AsyncClient)


class _BaseClient(Generic[H]):
    """A client of a trainapi service.

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
    http_client : httpx.Client or httpx.AsyncClient, optional
        Your own (proxies, transports, event hooks); its base URL and headers are set here.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: H | None = None,
    ) -> None:
        self.base_url, self.api_key = resolve(base_url, api_key)
        self._http: H = http_client if http_client is not None else self._new_http(timeout)
        self._http.base_url = httpx.URL(self.base_url)
        self._http.headers.update(default_headers(self.api_key))
        self._attach(RetryPolicy(max_retries=max_retries))

    def _new_http(self, timeout: float | httpx.Timeout) -> H:
        raise NotImplementedError

    def _attach(self, policy: RetryPolicy) -> None:
        raise NotImplementedError


class Client(_BaseClient[httpx.Client]):
    __doc__ = _BaseClient.__doc__

    datasets: Datasets
    jobs: Jobs
    sweeps: Sweeps

    def _new_http(self, timeout: float | httpx.Timeout) -> httpx.Client:
        return httpx.Client(timeout=timeout)

    def _attach(self, policy: RetryPolicy) -> None:
        transport = SyncTransport(self._http, policy)
        self.datasets, self.jobs, self.sweeps = Datasets(transport), Jobs(transport), Sweeps(transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_BaseClient[httpx.AsyncClient]):
    """:class:`Client` for asyncio: the same resources and methods, each awaited."""

    datasets: AsyncDatasets
    jobs: AsyncJobs
    sweeps: AsyncSweeps

    def _new_http(self, timeout: float | httpx.Timeout) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=timeout)

    def _attach(self, policy: RetryPolicy) -> None:
        transport = AsyncTransport(self._http, policy)
        self.datasets, self.jobs, self.sweeps = AsyncDatasets(transport), AsyncJobs(transport), AsyncSweeps(transport)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
