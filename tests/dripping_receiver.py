"""A webhook receiver that drips its answer: one byte every ``interval`` seconds, for as long as the client waits.

It reads each request in full, then sends a status line with a reason
phrase thousands of bytes long, so no client that waits for the status line
gets it. It listens on 127.0.0.1 in a thread and records, per request, its
path, when it arrived and when the client hung up, and how many connections
were held at once (in all and per path). The webhook tests and
``bench/fairness_webhooks.py`` use it as one tenant's slow receivers.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass

ANSWER = b"HTTP/1.1 200 " + b"o" * 4000 + b"k\r\ncontent-length: 0\r\n\r\n"


@dataclass
class Held:
    """One request: its path, its arrival and, once the client hung up, when (``time.time()``)."""

    path: str
    at: float
    closed_at: float | None = None


class DrippingReceiver:
    """``DrippingReceiver().start()``; ``url(path)``; ``held()``; ``max_open(path)``; ``stop()``."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._held: list[Held] = []
        self._open: Counter[str] = Counter()
        self._most: Counter[str] = Counter()  # per path, and "" for all paths
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def url(self, path: str = "/drip") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> DrippingReceiver:
        self._listener.listen(128)
        self._listener.settimeout(0.1)  # the accept loop notices stop() within this
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop listening and hang up on every client (their reads end at once)."""
        self._stopping.set()
        self._threads[0].join(10)  # the accept loop: no connection comes after it
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):  # it may have hung up already
                    conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads[1:]:
            thread.join(10)
        self._listener.close()

    def held(self, path: str | None = None) -> list[Held]:
        with self._lock:
            return [Held(h.path, h.at, h.closed_at) for h in self._held if path is None or h.path == path]

    def open_now(self, path: str = "") -> int:
        """Connections held now (``path`` ``""``: all of them)."""
        with self._lock:
            return self._open[path]

    def max_open(self, path: str = "") -> int:
        """The most connections held at once (``path`` ``""``: all of them)."""
        with self._lock:
            return self._most[path]

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._connections.add(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        try:
            path = self._read_request(conn)
            if path is None:
                return
            held = Held(path, time.time())
            with self._lock:
                self._held.append(held)
                for key in (path, ""):
                    self._open[key] += 1
                    self._most[key] = max(self._most[key], self._open[key])
            try:
                self._drip(conn)
            finally:
                with self._lock:
                    held.closed_at = time.time()
                    for key in (path, ""):
                        self._open[key] -= 1
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def _read_request(self, conn: socket.socket) -> str | None:
        """The request's path once it has all arrived; None if the client hung up first."""
        conn.settimeout(10)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return None
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return None
                body += chunk
        except OSError:
            return None
        return lines[0].split(" ")[1]

    def _drip(self, conn: socket.socket) -> None:
        """One byte of :data:`ANSWER` per interval until the client hangs up (or the receiver stops)."""
        try:
            for byte in ANSWER:
                if self._stopping.is_set():
                    return
                conn.sendall(bytes([byte]))
                readable, _, _ = select.select([conn], [], [], self.interval)
                if readable and not conn.recv(4096):
                    return  # the client hung up
        except OSError:
            return
