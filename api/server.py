"""The API's HTTP server: uvicorn, with the connection limits a service on a network needs.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but
a connection that never sends a request, or drips one byte at a time
(slowloris), stays open for ever, and enough of them exhaust the process's
file descriptors. :class:`GuardedHttpProtocol` adds what a front proxy such
as nginx has (``client_header_timeout``, ``large_client_header_buffers``,
``worker_connections``):

- a request's headers must arrive within ``timeout_request_header`` seconds
  of the connection opening, or of the previous response (the connection is
  closed otherwise, however slowly bytes arrive);
- its request line and headers may take at most :data:`MAX_HEADER_BYTES`
  (431 above);
- at most ``max_connections`` connections are open: a new one past that
  closes the oldest connection that has no request in flight (idle, or still
  sending headers), so requests with work to do are always accepted.

``python -m api.server --host H --port P`` runs it (``trainapi api`` and
``trainapi serve`` both do); it raises the process's descriptor limit to its
hard limit first and keeps the connection cap below it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from trainapi.settings import Settings

log = logging.getLogger("trainapi.server")

#: The most bytes a request line and its headers may take.
MAX_HEADER_BYTES = 64 * 1024
#: Descriptors kept free of connections: Redis, storage, log files, the listening socket.
RESERVED_DESCRIPTORS = 256


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline, a header size cap and a connection cap.

    The class attributes are set by :func:`protocol_class` from the settings.
    """

    header_timeout: float = 10.0
    max_connections: int = 4096

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._waiting = False  # no request in flight: idle, or its headers still arriving

    # --- connections waiting for a request, oldest first (one event loop per process: no lock)

    def _idle(self) -> dict[GuardedHttpProtocol, None]:
        idle: dict[GuardedHttpProtocol, None] | None = getattr(self.server_state, "trainapi_idle", None)
        if idle is None:
            idle = {}
            self.server_state.trainapi_idle = idle  # type: ignore[attr-defined]
        return idle

    def _wait_for_request(self) -> None:
        self._waiting = True
        self._header_bytes = 0
        self._idle()[self] = None
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timeout)

    def _request_arrived(self) -> None:
        self._waiting = False
        self._idle().pop(self, None)
        self._cancel_header_timer()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._waiting and not self.transport.is_closing():
            self.transport.close()

    # --- the protocol's events

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_request()
        if len(self.connections) > self.max_connections:
            # One out for each one in (a closed connection leaves the set a moment later, in connection_lost).
            idle = self._idle()
            oldest = next((c for c in idle if c is not self), None)
            if oldest is None:  # every other connection has a request in flight: this one goes
                self._request_arrived()
                transport.close()
                return
            oldest._request_arrived()
            oldest.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._request_arrived()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        waiting = self._waiting
        super().data_received(data)  # one read is at most 256 KiB: what the parser holds stays bounded
        if waiting and self._waiting and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._request_arrived()
                self.send_431_response()

    def on_headers_complete(self) -> None:
        self._request_arrived()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline and self.cycle.response_complete:
            self._wait_for_request()

    def send_431_response(self) -> None:
        body = b"request line and headers too large"
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.transport.close()


def raise_descriptor_limit() -> int:
    """Raise this process's open-files limit to its hard limit; returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, hard, exc)
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


def protocol_class(settings: Settings, descriptors: int) -> type[GuardedHttpProtocol]:
    """:class:`GuardedHttpProtocol` with the settings' header timeout and a connection cap that fits
    ``descriptors`` (the process's open-files limit)."""
    cap = max(16, min(settings.max_connections, descriptors - RESERVED_DESCRIPTORS))
    if cap < settings.max_connections:
        log.warning("at most %d connections (the open-files limit is %d)", cap, descriptors)
    attributes = {"header_timeout": settings.timeout_request_header, "max_connections": cap}
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), attributes)


def config(settings: Settings, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration of the API process."""
    return uvicorn.Config(
        "api.main:app",
        host=host,
        port=port,
        http=protocol_class(settings, raise_descriptor_limit()),
        timeout_keep_alive=int(max(1, settings.timeout_keep_alive)),
        access_log=False,
        backlog=2048,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.server", description=__doc__.splitlines()[0])
    settings = Settings()
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    args = parser.parse_args(argv)
    # The service's own INFO lines (a job created, where the dashboard is) beside uvicorn's; with
    # TRAINAPI_LOG_FORMAT=json the app switches every handler to JSON when it is built.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.Server(config(settings, args.host, args.port)).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
