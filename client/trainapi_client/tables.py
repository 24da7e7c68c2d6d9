"""The command line's tables: as many columns as the terminal's width holds, no cell ever cut.

Each table names its columns in order of importance: ids and what a row is about are
always shown; at a narrow width the least important of the others are left out, one
at a time, until the table fits (``trainapi jobs list`` at 80 columns shows id, status,
epoch, val_loss and a short name; created joins them when there is room). Cells are
never shortened with an ellipsis, so an id in a table can always be copied and used
(should even the kept columns not fit, a cell folds onto the next line instead); plain
tables, without vertical rules, keep the copy free of box characters too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from trainapi_client.models import Dataset, Job, Sweep

#: The widest a table is measured at (its natural width, before any wrapping).
UNBOUNDED = 10_000


@dataclass(frozen=True)
class Column:
    """A table's column; ``drop`` > 0 may be left out at a narrow width, the highest first."""

    header: str
    drop: int = 0
    justify: Literal["left", "right"] = "left"


def fit(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    caption: str | None = None,
) -> Table:
    """The table of ``rows`` with every column that fits ``console``'s width (those with ``drop=0`` always)."""
    shown = list(range(len(columns)))
    while True:
        table = Table(caption=caption, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, caption_justify="left")
        for i in shown:
            table.add_column(columns[i].header, justify=columns[i].justify, overflow="fold")
        for row in rows:
            table.add_row(*(row[i] for i in shown))
        droppable = [i for i in shown if columns[i].drop > 0]
        if width(console, table) <= console.width or not droppable:
            return table
        shown.remove(max(droppable, key=lambda i: (columns[i].drop, i)))


def width(console: Console, table: Table) -> int:
    """The width ``table`` takes unless it is squeezed: every cell on one line."""
    return console.measure(table, options=console.options.update_width(UNBOUNDED)).maximum


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def datasets(console: Console, items: Sequence[Dataset]) -> Table:
    columns = [
        Column("id"),
        Column("name", drop=1),
        Column("samples", drop=2, justify="right"),
        Column("features", drop=3, justify="right"),
        Column("task", drop=4),
        Column("target", drop=5),
        Column("source", drop=6),
    ]
    rows = [[d.id, d.name, str(d.n_samples), str(d.n_features), d.task or "-", d.target_name, d.source] for d in items]
    return fit(console, columns, rows)


def jobs(console: Console, items: Sequence[Job]) -> Table:
    columns = [
        Column("id"),
        Column("status"),
        Column("epoch", drop=1, justify="right"),
        Column("val_loss", drop=2, justify="right"),
        Column("name", drop=3),
        Column("created", drop=4),
    ]
    rows = []
    for j in items:
        latest = j.latest_metrics
        rows.append(
            [
                j.id,
                j.status,
                f"{j.progress.epoch}/{j.progress.epochs}",
                number(latest.val_loss if latest else None),
                "-" if j.name == j.id else j.name,  # a job without a name is named by its id
                j.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            ]
        )
    return fit(console, columns, rows)


def sweeps(console: Console, items: Sequence[Sweep]) -> Table:
    columns = [
        Column("id"),
        Column("status"),
        Column("trials", drop=1, justify="right"),
        Column("best", drop=2, justify="right"),
        Column("name", drop=3),
        Column("created", drop=4),
    ]
    rows = []
    for s in items:
        finished = sum(n for status, n in s.counts.items() if status in ("succeeded", "failed", "cancelled", "pruned"))
        best = s.best_trial.objective if s.best_trial else None
        name = "-" if s.name == s.id else s.name
        rows.append(
            [s.id, s.status, f"{finished}/{s.n_trials}", number(best), name, s.created_at.strftime("%Y-%m-%d %H:%M:%S")]
        )
    return fit(console, columns, rows)


def job_summary(job: Job) -> Group:
    """What ``jobs show`` and ``jobs watch`` print: status, epochs (a path's λ solves), best and final metrics,
    and a path job's λ_min, λ_1se and the chosen model."""
    table = Table.grid(padding=(0, 3))
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    rows = [] if job.name == job.id else [("name", job.name)]
    steps = "λ solves" if job.spec.get("path") is not None else "epochs"
    rows += [("status", job.status), (steps, f"{job.progress.epoch}/{job.progress.epochs}")]
    if job.path is not None:
        path = job.path
        how = f"{path.folds}-fold CV" if path.folds else "holdout"
        rows.append(("λ_min", f"{number(path.lambda_min)}  (index {path.index_min}; {path.measure}, {how})"))
        rows.append(("λ_1se", f"{number(path.lambda_1se)}  (index {path.index_1se})"))
        rows.append(
            ("model", f"λ = {number(path.lambda_)} ({path.select}), index {path.index}, {path.nonzero} nonzero")
        )
    rows.append(("dataset", f"{job.dataset.name} ({job.dataset.n_samples} x {job.dataset.n_features})"))
    if job.sweep_id:
        rows.append(("sweep", job.sweep_id))
    if job.best_metrics is not None:
        best = job.best_metrics
        rows.append(("best epoch", str(job.best_epoch)))
        rows.append(("best train/val loss", f"{number(best.train_loss)} / {number(best.val_loss)}"))
    if job.latest_metrics is not None:
        last = job.latest_metrics
        rows.append(("last train/val loss", f"{number(last.train_loss)} / {number(last.val_loss)}"))
    if job.test_metrics is not None:
        test = {k: v for k, v in job.test_metrics.to_dict().items() if v is not None}
        rows.append(("test", "  ".join(f"{k} {number(v)}" for k, v in test.items())))
    if job.stop_reason:
        rows.append(("stopped", job.stop_reason))
    if job.error is not None:
        rows.append(("error", f"{job.error.type}: {job.error.message}"))
    if job.started_at and job.finished_at:
        rows.append(("duration", f"{(job.finished_at - job.started_at).total_seconds():.1f} s"))
    for name, value in rows:
        table.add_row(name, value)
    return Group(Text(f"job {job.id}", overflow="fold"), table)  # a table's title would wrap at its width


def _value(value: Any) -> str:
    return str(value) if not isinstance(value, float) else f"{value:.6g}"


def short_names(paths: Sequence[str]) -> list[str]:
    """Each dotted path's shortest tail of segments that no other path ends with: ``regularization.l2`` → ``l2``."""
    names = []
    for path in paths:
        parts = path.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if n == len(parts) or not any(
                other != path and (other == tail or other.endswith("." + tail)) for other in paths
            ):
                names.append(tail)
                break
    return names


def leaderboard(console: Console, sweep: Sweep) -> Group:
    """A sweep's trials by objective, best first, and the value of each parameter each trial ran with.

    One column per parameter of the sweep, headed by its path (``regularization.l2``),
    or where the full paths do not fit, by their shortest distinct tails (``l2``) with
    the full paths in a caption. A trial without an objective shows its status there.
    """
    metric = str(sweep.objective.get("metric", "objective"))
    paths: list[str] = []
    for trial in sweep.leaderboard:
        paths += [path for path in trial.parameters if path not in paths]
    rows = []
    for rank, t in enumerate(sweep.leaderboard, 1):
        objective = number(t.objective) if t.objective is not None or t.status == "succeeded" else t.status
        values = [_value(t.parameters[path]) if path in t.parameters else "-" for path in paths]
        rows.append([str(rank), t.trial_id, objective, *values, t.status, str(t.best_epoch or "-")])

    def table(headers: Sequence[str]) -> Table:
        columns = [
            Column("#", justify="right"),
            Column("trial"),
            Column(metric, justify="right"),
            *(Column(header, justify="right") for header in headers),
            Column("status", drop=2),
            Column("best epoch", drop=1, justify="right"),
        ]
        legend = [f"{short} = {path}" for short, path in zip(headers, paths, strict=True) if short != path]
        return fit(console, columns, rows, caption="; ".join(legend) or None)

    full = table(paths)
    best = full if width(console, full) <= console.width else table(short_names(paths))
    return Group(Text(f"sweep {sweep.id} ({sweep.status})", overflow="fold"), best)
