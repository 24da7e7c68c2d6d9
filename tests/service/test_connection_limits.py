"""The API closes what holds its connections without a request: 20,000 idle connections and 200 slowloris
clients are closed by the server within its header timeout, and /readyz answers 200 throughout."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from support import Service, poll

HEADER_TIMEOUT = 3.0
IDLE_CONNECTIONS = 20_000
SLOWLORIS = 200


#: The idle connections are opened by this many processes (each within its own open-files limit).
OPENERS = 4


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    svc = Service(
        tmp_path_factory.mktemp("connections"),
        env_extra={"TRAINAPI_TIMEOUT_REQUEST_HEADER": str(HEADER_TIMEOUT), "TRAINAPI_MAX_CONNECTIONS": "4096"},
    )
    try:
        yield svc.start(workers=1)
    finally:
        svc.stop()


class ReadinessProbe(threading.Thread):
    """GET /readyz every 50 ms on a fresh connection; every answer's status, or the error."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.answers: list[int | str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.answers.append(httpx.get(f"{self.url}/readyz", timeout=5).status_code)
            except httpx.HTTPError as exc:
                self.answers.append(repr(exc))
            self.stop.wait(0.05)


#: One opener: connects ``n`` sockets, then reports how long until the server had closed every one.
OPENER = """
import json, resource, selectors, socket, sys, time
def _wait_all_closed(sockets: list[socket.socket], deadline: float) -> list[socket.socket]:
    # Wait until the server has closed each socket (EOF or reset); returns those still open at `deadline`.
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    open_ = set(sockets)
    while open_ and time.monotonic() < deadline:
        for event, _ in selector.select(timeout=0.2):
            sock = event.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                selector.unregister(sock)
                open_.discard(sock)
    selector.close()
    return list(open_)


port, n, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
started = time.monotonic()
sockets = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(n)]
opened = time.monotonic()
left = _wait_all_closed(sockets, opened + grace)
print(json.dumps({"opened_s": opened - started, "closed_s": time.monotonic() - opened, "left": len(left)}))
"""


def test_idle_connections_are_closed_and_readyz_answers_throughout(service):
    probe = ReadinessProbe(service.url)
    probe.start()
    share = IDLE_CONNECTIONS // OPENERS
    grace = HEADER_TIMEOUT + 10
    try:
        openers = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, str(service.api_port), str(share), str(grace)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(OPENERS)
        ]
        reports = [json.loads(opener.communicate(timeout=300)[0]) for opener in openers]
        poll(lambda: len(probe.answers) >= 3, 10, what="readiness answers")
    finally:
        probe.stop.set()
        probe.join(10)
    left = sum(r["left"] for r in reports)
    assert left == 0, f"{left} of {IDLE_CONNECTIONS} idle connections still open {grace:g} s after they opened"
    failures = [a for a in probe.answers if a != 200]
    assert not failures, f"/readyz failed {len(failures)} of {len(probe.answers)} times: {failures[:5]}"
    print(f"{IDLE_CONNECTIONS} idle connections: {reports}; /readyz answered 200 {len(probe.answers)} times")


def test_slowloris_clients_are_cut_at_the_header_timeout(service):
    probe = ReadinessProbe(service.url)
    probe.start()
    sockets = [socket.create_connection(("127.0.0.1", service.api_port), timeout=10) for _ in range(SLOWLORIS)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Drip: ")
        opened = time.monotonic()
        cut: set[socket.socket] = set()
        while len(cut) < len(sockets) and time.monotonic() < opened + HEADER_TIMEOUT + 5:
            for sock in sockets:
                if sock in cut:
                    continue
                try:
                    sock.sendall(b"a")  # one byte a round: never the end of the headers
                except OSError:
                    cut.add(sock)
            time.sleep(0.5)  # the drip's pace: what a slowloris client does, not a wait for a result
        elapsed = time.monotonic() - opened
    finally:
        probe.stop.set()
        probe.join(10)
        for sock in sockets:
            sock.close()
    assert len(cut) == SLOWLORIS, f"{SLOWLORIS - len(cut)} dripping clients still connected"
    assert elapsed <= HEADER_TIMEOUT + 5
    assert probe.answers and all(a == 200 for a in probe.answers), probe.answers[:5]


def test_oversized_headers_get_431(service):
    with socket.create_connection(("127.0.0.1", service.api_port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 100_000)
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 431 ")
    # A large body right behind small headers is not mistaken for large headers.
    response = httpx.post(
        f"{service.url}/v1/jobs",
        content=b"{" + b" " * 500_000 + b"}",
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code in (413, 422), response.status_code
