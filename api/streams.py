"""Open event streams (SSE), capped per tenant and per process, so one tenant's streams cannot crowd out
another's requests.

Every stream runs on the event loop (its reads are asyncio Redis calls, no
thread), and holds one slot of :class:`StreamSlots` for as long as it is
open: the slot is taken before the response starts and given back when the
response ends, however it ends (the job's end, a client that went away, a
shutdown). Past either cap a new stream is a 429 with ``Retry-After``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.errors import ApiError

#: Seconds a client refused a stream is told to wait.
RETRY_AFTER_SECONDS = 5


class StreamSlots:
    """Counts of open streams, in all and per tenant (one event loop uses it: no lock)."""

    def __init__(self, total: int, per_tenant: int) -> None:
        self.total = total
        self.per_tenant = per_tenant
        self.open: Counter[str] = Counter()

    def take(self, tenant: str) -> Callable[[], None]:
        """Take a slot for ``tenant``; returns the function that gives it back (idempotent). 429 when full."""
        if self.open[tenant] >= self.per_tenant:
            raise self._refusal(f"at most {self.per_tenant} open event streams per tenant")
        if sum(self.open.values()) >= self.total:
            raise self._refusal("the service has as many open event streams as it serves; try again shortly")
        self.open[tenant] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open[tenant] -= 1
                if self.open[tenant] <= 0:
                    del self.open[tenant]

        return release

    @staticmethod
    def _refusal(detail: str) -> ApiError:
        return ApiError(429, "Too many event streams", detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class EventStream(StreamingResponse):
    """``text/event-stream`` that gives its slot back when the response ends, however it ends."""

    def __init__(self, events: AsyncIterator[str], release: Callable[[], None]) -> None:
        super().__init__(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()
