"""``/v1/sweeps``: create, get, list, cancel, wait, leaderboard."""

from __future__ import annotations

import builtins
from typing import Any

from trainapi_client.base_client import Request, url_path
from trainapi_client.models import Sweep, Trial
from trainapi_client.resources.resource import AsyncResource, SyncResource
from trainapi_client.waiting import ProgressBar, async_wait_for, wait_for


def _create(spec: dict[str, Any] | None, fields: dict[str, Any]) -> Request:
    # The service has no idempotency key for sweeps: sent once, never retried.
    return Request("POST", "/v1/sweeps", json={**(spec or {}), **fields})


def _get(sweep_id: str) -> Request:
    return Request("GET", url_path("v1", "sweeps", sweep_id))


def _items(body: dict[str, Any]) -> builtins.list[Sweep]:
    return [Sweep.from_dict(item) for item in body["items"]]


class Sweeps(SyncResource):
    def create(self, spec: dict[str, Any] | None = None, /, **fields: Any) -> Sweep:
        """Start a sweep: ``spec`` (``base``, ``parameters``, ``strategy``, ...) updated with ``fields``."""
        return self._transport.call(_create(spec, fields), Sweep)

    def get(self, sweep_id: str) -> Sweep:
        return self._transport.call(_get(sweep_id), Sweep)

    def list(self, limit: int = 50) -> builtins.list[Sweep]:
        """The newest ``limit`` sweeps."""
        return _items(self._transport.send(Request("GET", "/v1/sweeps", params={"limit": limit})).json())

    def cancel(self, sweep_id: str) -> Sweep:
        return self._transport.call(Request("POST", url_path("v1", "sweeps", sweep_id, "cancel")), Sweep)

    def wait(
        self, sweep_id: str, timeout: float | None = None, progress: bool | ProgressBar = False, interval: float = 1.0
    ) -> Sweep:
        """Poll until every trial has finished; ``progress=True`` shows finished trials and the best objective."""
        return wait_for(lambda: self.get(sweep_id), timeout, progress, interval)

    def leaderboard(self, sweep_id: str) -> builtins.list[Trial]:
        """Trials by objective, best first (those without one last)."""
        return self.get(sweep_id).leaderboard


class AsyncSweeps(AsyncResource):
    async def create(self, spec: dict[str, Any] | None = None, /, **fields: Any) -> Sweep:
        return await self._transport.call(_create(spec, fields), Sweep)

    async def get(self, sweep_id: str) -> Sweep:
        return await self._transport.call(_get(sweep_id), Sweep)

    async def list(self, limit: int = 50) -> builtins.list[Sweep]:
        return _items((await self._transport.send(Request("GET", "/v1/sweeps", params={"limit": limit}))).json())

    async def cancel(self, sweep_id: str) -> Sweep:
        return await self._transport.call(Request("POST", url_path("v1", "sweeps", sweep_id, "cancel")), Sweep)

    async def wait(
        self, sweep_id: str, timeout: float | None = None, progress: bool | ProgressBar = False, interval: float = 1.0
    ) -> Sweep:
        return await async_wait_for(lambda: self.get(sweep_id), timeout, progress, interval)

    async def leaderboard(self, sweep_id: str) -> builtins.list[Trial]:
        return (await self.get(sweep_id)).leaderboard
