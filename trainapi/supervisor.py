"""``trainapi serve``'s supervision: every child (the embedded Redis included) is restarted when it exits.

A child that exits is started again after a backoff (1 s, doubling to 30 s;
back to 1 s once it has run for a minute), so a killed API, worker, webhook
consumer or redis-server comes back on its own and the service stays up. The
embedded Redis restarts on the same port and AOF, so the other children's
connections simply reconnect and nothing stored is lost; its own log goes to
``<data dir>/logs/redis.log``. A failed restart (say, Redis on a full disk)
is retried on the same schedule until it succeeds, so freeing space is enough.
"""

from __future__ import annotations

import fcntl
import logging
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from trainapi.processes import StartupError

log = logging.getLogger("trainapi")

#: Seconds before the first restart of a child, the most between two, and how long a run must last
#: for the next exit to count as a new failure rather than a crash loop.
BACKOFF_FIRST, BACKOFF_MAX, STABLE_SECONDS = 1.0, 30.0, 60.0
#: How often the supervisor looks at its children.
POLL_SECONDS = 0.2


class AlreadyServing(RuntimeError):
    """Another ``trainapi serve`` holds this data directory."""


@dataclass
class Child:
    """One supervised process: how to start it, and its current run."""

    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff: float = BACKOFF_FIRST
    restart_at: float | None = None  # set while it is down

    def launch(self) -> None:
        self.proc = self.start()
        self.started_at = time.monotonic()
        self.restart_at = None

    def check(self, now: float) -> None:
        """Restart the child if it has exited and its backoff has passed."""
        if self.restart_at is None:
            assert self.proc is not None
            if self.proc.poll() is None:
                return
            ran = now - self.started_at
            if ran >= STABLE_SECONDS:
                self.backoff = BACKOFF_FIRST
            log.error(
                "%s exited with status %s after %.0f s; restarting it in %.0f s",
                self.name,
                self.proc.returncode,
                ran,
                self.backoff,
            )
            self.restart_at = now + self.backoff
            self.backoff = min(self.backoff * 2, BACKOFF_MAX)
            return
        if now < self.restart_at:
            return
        try:
            self.launch()
        except (StartupError, OSError) as exc:
            log.error("%s did not start again (%s); next try in %.0f s", self.name, exc, self.backoff)
            self.restart_at = time.monotonic() + self.backoff
            self.backoff = min(self.backoff * 2, BACKOFF_MAX)
            return
        log.info("%s started again (pid %d)", self.name, self.proc.pid if self.proc else -1)


def lock_data_dir(data_dir: Path) -> IO[bytes]:
    """Hold ``<data dir>/serve.lock`` for as long as the returned file stays open (one serve per data dir:
    a second one would start a second redis-server on the same AOF)."""
    handle = (data_dir / "serve.lock").open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise AlreadyServing(f"another `trainapi serve` is using {data_dir}; stop it first") from None
    return handle


def supervise(children: list[Child]) -> int:
    """Keep ``children`` running until SIGINT or SIGTERM; returns the exit status (0)."""
    stopping = {"signal": 0}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stopping["signal"]:
        now = time.monotonic()
        for child in children:
            if stopping["signal"]:
                break
            child.check(now)
        time.sleep(POLL_SECONDS)
    return 0
