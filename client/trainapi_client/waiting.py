"""Waiting for a job or a sweep to finish: the deadline, the polling pace, the optional progress bar."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from rich import get_console
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TaskID, TextColumn

from trainapi_client.models import Job, Sweep

R = TypeVar("R", Job, Sweep)


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


class ProgressBar:
    """A live bar on the terminal: epochs of a job (train/val loss, ETA) or finished trials of a sweep.

    The count (``epoch 7/12``, ``trials 3/8``) comes first and the bar gives way to the
    text, so at 80 columns the count and the losses are whole; the job's or sweep's id
    leads the line only on a terminal wide enough for it too.
    """

    #: The line's width with the id: id (36), count, a 40-column bar, losses, ETA and status.
    WIDE = 140

    def __init__(self, console: Console | None = None) -> None:
        console = console or get_console()
        columns: list[ProgressColumn] = [TextColumn("{task.description}")] if console.width >= self.WIDE else []
        columns += [
            TextColumn("[bold]{task.fields[count]}"),
            BarColumn(bar_width=40),
            TextColumn("{task.fields[info]}"),
        ]
        self.progress = Progress(*columns, console=console, transient=False)
        self.task: TaskID | None = None

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def show(self, resource: Job | Sweep) -> None:
        if isinstance(resource, Job):
            p, latest = resource.progress, resource.latest_metrics
            done, total = p.epoch, max(p.epochs, 1)
            count = f"epoch {p.epoch}/{p.epochs}"
            train = _loss(latest.train_loss if latest else None)
            val = _loss(latest.val_loss if latest else None)
            info = f"train {train}  val {val}  ETA {_eta(p.eta_seconds)}  {resource.status}"
        else:
            done = sum(n for status, n in resource.counts.items() if status in FINISHED_TRIALS)
            total = max(resource.n_trials, 1)
            count = f"trials {done}/{resource.n_trials}"
            best = resource.best_trial
            info = f"best {_loss(best.objective if best else None)}  {resource.status}"
        if self.task is None:
            self.task = self.progress.add_task(resource.id, total=total, count=count, info=info)
        self.progress.update(self.task, completed=done, total=total, count=count, info=info)


FINISHED_TRIALS = frozenset({"succeeded", "failed", "cancelled", "pruned"})


class Waiter:
    """The state of one ``wait()``: call :meth:`done` with each fresh read, sleep :attr:`interval` between.

    Raises ``TimeoutError`` once ``timeout`` seconds have passed without the resource finishing.
    """

    def __init__(self, timeout: float | None, progress: bool | ProgressBar, interval: float) -> None:
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.timeout = timeout
        self.interval = interval
        self.bar = ProgressBar() if progress is True else progress or None

    def __enter__(self) -> Waiter:
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.bar is not None:
            self.bar.__exit__(exc_type, exc, tb)

    def done(self, resource: Any) -> bool:
        if self.bar is not None:
            self.bar.show(resource)
        if resource.finished:
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise TimeoutError(f"{resource.id} is still {resource.status} after {self.timeout:g} s")
        return False


def wait_for(read: Callable[[], R], timeout: float | None, progress: bool | ProgressBar, interval: float) -> R:
    """Call ``read`` every ``interval`` seconds until what it returns has finished; return that."""
    with Waiter(timeout, progress, interval) as waiter:
        while not waiter.done(resource := read()):
            time.sleep(waiter.interval)
        return resource


async def async_wait_for(
    read: Callable[[], Awaitable[R]], timeout: float | None, progress: bool | ProgressBar, interval: float
) -> R:
    """:func:`wait_for` with an awaitable ``read``."""
    with Waiter(timeout, progress, interval) as waiter:
        while not waiter.done(resource := await read()):
            await asyncio.sleep(waiter.interval)
        return resource
