"""``trainapi datasets|jobs|sweeps ...``: the service's resources from the terminal, through the Python client.

Tables and a live progress bar (rich) for people, ``--json`` for scripts. Exit status:
0 when the command did what it says (a waited job or sweep succeeded), 1 when a waited
job failed or was cancelled, or the service answered with an error, 2 for usage errors
(argparse's own, an unreadable SPEC or inputs file).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from trainapi_client import APIError, Client, Dataset, Job, Sweep
from trainapi_client.models import JOB_STATUSES, WEIGHTS_FORMATS
from trainapi_client.waiting import ProgressBar

OK, FAILED, USAGE = 0, 1, 2


class UsageError(Exception):
    """A command line that cannot run: exit status 2."""


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``datasets``, ``jobs`` and ``sweeps`` to the ``trainapi`` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the service (default: $TRAINAPI_URL, else http://127.0.0.1:8000)")
    common.add_argument("--api-key", help="default: $TRAINAPI_API_KEY")
    common.add_argument("--json", action="store_true", help="machine-readable output")

    def command(group: Any, name: str, run: Callable[[Client, argparse.Namespace], int], text: str) -> Any:
        parser = group.add_parser(name, parents=[common], help=text, description=text)
        parser.set_defaults(run=run)
        return parser

    datasets = sub.add_parser("datasets", help="upload and list datasets").add_subparsers(required=True)
    p = command(datasets, "upload", datasets_upload, "upload a CSV or NPZ file")
    p.add_argument("file", type=Path)
    p.add_argument("--target", help="the target column of a CSV (default: the last)")
    p.add_argument("--name")
    p.add_argument("--delimiter", help="a CSV's delimiter (default: detected)")
    p.add_argument("--decimal", choices=(".", ","), help="a CSV's decimal mark (default: .)")
    p.add_argument("--na-values", help="comma-separated missing-value markers (default: NA,N/A,NaN,null,?)")
    command(datasets, "list", datasets_list, "built-in datasets and your uploads")

    jobs = sub.add_parser("jobs", help="submit, follow and use training jobs").add_subparsers(required=True)
    p = command(jobs, "submit", jobs_submit, "submit a job from a JSON spec (POST /v1/jobs body)")
    p.add_argument("spec", type=Path, metavar="SPEC.json")
    p.add_argument("--wait", action="store_true", help="wait for the job; exit 1 unless it succeeded")
    p = command(jobs, "list", jobs_list, "jobs, newest first")
    p.add_argument("--status", choices=JOB_STATUSES)
    p.add_argument("--limit", type=int, default=20)
    command(jobs, "show", jobs_show, "one job").add_argument("id")
    command(jobs, "watch", jobs_watch, "a live progress bar until the job ends, then a summary").add_argument("id")
    command(jobs, "cancel", jobs_cancel, "cancel a job").add_argument("id")
    p = command(jobs, "weights", jobs_weights, "download the trained weights")
    p.add_argument("id")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    p.add_argument("--format", choices=WEIGHTS_FORMATS, default="safetensors")
    p.add_argument("--checkpoint", choices=("best", "last"), help="a cancelled job's best or last epoch")
    p = command(jobs, "predict", jobs_predict, "predict rows of a JSON file ([[...]] or {'inputs': [[...]]})")
    p.add_argument("id")
    p.add_argument("--inputs", type=Path, required=True, metavar="FILE")

    sweeps = sub.add_parser("sweeps", help="submit sweeps and read their leaderboards").add_subparsers(required=True)
    p = command(sweeps, "submit", sweeps_submit, "start a sweep from a JSON spec (POST /v1/sweeps body)")
    p.add_argument("spec", type=Path, metavar="SPEC.json")
    p.add_argument("--wait", action="store_true", help="wait for the sweep; exit 1 unless it succeeded")
    command(sweeps, "show", sweeps_show, "a sweep and its leaderboard").add_argument("id")


def run(args: argparse.Namespace) -> int:
    """Run the command ``args`` selected; its exit status."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    out = Console(highlight=False)
    try:
        with Client(args.url, args.api_key) as client:
            return int(args.run(client, args))
    except UsageError as exc:
        Console(stderr=True).print(f"trainapi: error: {exc}", markup=False)
        return USAGE
    except APIError as exc:
        if args.json:
            body = {"status": exc.status, "title": exc.title, "detail": exc.detail, "errors": exc.errors}
            print(json.dumps({"error": body}), file=sys.stderr)
        else:
            Console(stderr=True).print(f"trainapi: {exc}", markup=False)
            for error in exc.errors:
                Console(stderr=True).print(f"  {error.get('field')}: {error.get('message')}", markup=False)
        return FAILED
    except TimeoutError as exc:
        out.print(str(exc))
        return FAILED


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def _read_spec(path: Path, what: str) -> dict[str, Any]:
    spec = _read_json(path)
    if not isinstance(spec, dict):
        raise UsageError(f"{path}: a {what} spec is a JSON object")
    return spec


def _emit(args: argparse.Namespace, data: Any, human: Callable[[Console], None]) -> None:
    if args.json:
        print(json.dumps(data))
    else:
        human(Console(highlight=False))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _dataset_table(datasets: list[Dataset]) -> Table:
    table = Table("id", "name", "source", "samples", "features", "task", "target")
    for d in datasets:
        table.add_row(d.id, d.name, d.source, str(d.n_samples), str(d.n_features), d.task or "-", d.target_name)
    return table


def _job_table(jobs: list[Job]) -> Table:
    table = Table("id", "name", "status", "epoch", "val_loss", "created")
    for j in jobs:
        latest = j.latest_metrics
        epochs = f"{j.progress.epoch}/{j.progress.epochs}"
        created = j.created_at.strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(j.id, j.name, j.status, epochs, _number(latest.val_loss if latest else None), created)
    return table


def job_summary(job: Job) -> Table:
    """The summary ``jobs show`` and ``jobs watch`` print: status, epochs, best and final metrics."""
    table = Table("", "value", title=f"job {job.id}", show_header=False)
    rows = [("name", job.name), ("status", job.status), ("epochs", f"{job.progress.epoch}/{job.progress.epochs}")]
    rows.append(("dataset", f"{job.dataset.name} ({job.dataset.n_samples} x {job.dataset.n_features})"))
    if job.best_metrics is not None:
        best = job.best_metrics
        rows.append(("best epoch", str(job.best_epoch)))
        rows.append(("best train/val loss", f"{_number(best.train_loss)} / {_number(best.val_loss)}"))
    if job.latest_metrics is not None:
        last = job.latest_metrics
        rows.append(("last train/val loss", f"{_number(last.train_loss)} / {_number(last.val_loss)}"))
    if job.test_metrics is not None:
        test = {k: v for k, v in job.test_metrics.to_dict().items() if v is not None}
        rows.append(("test", "  ".join(f"{k} {_number(v)}" for k, v in test.items())))
    if job.stop_reason:
        rows.append(("stopped", job.stop_reason))
    if job.error is not None:
        rows.append(("error", f"{job.error.type}: {job.error.message}"))
    if job.started_at and job.finished_at:
        rows.append(("duration", f"{(job.finished_at - job.started_at).total_seconds():.1f} s"))
    for name, value in rows:
        table.add_row(name, value)
    return table


def leaderboard(sweep: Sweep) -> Table:
    """A sweep's trials by objective, best first."""
    metric = sweep.objective.get("metric", "objective")
    table = Table(
        "#", "trial", "status", metric, "best epoch", "parameters", title=f"sweep {sweep.id} ({sweep.status})"
    )
    for rank, t in enumerate(sweep.leaderboard, 1):
        params = ", ".join(f"{k}={v}" for k, v in t.parameters.items())
        table.add_row(str(rank), t.trial_id, t.status, _number(t.objective), str(t.best_epoch or "-"), params)
    return table


def _finished(job_or_sweep: Job | Sweep) -> int:
    return OK if job_or_sweep.status == "succeeded" else FAILED


def datasets_upload(client: Client, args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise UsageError(f"no file {args.file}")
    na_values = args.na_values.split(",") if args.na_values is not None else None
    options = {"delimiter": args.delimiter, "decimal": args.decimal, "na_values": na_values}
    dataset = client.datasets.upload(args.file, target=args.target, name=args.name, **options)
    _emit(args, dataset.to_dict(), lambda out: out.print(_dataset_table([dataset])))
    return OK


def datasets_list(client: Client, args: argparse.Namespace) -> int:
    datasets = client.datasets.list()
    _emit(args, [d.to_dict() for d in datasets], lambda out: out.print(_dataset_table(datasets)))
    return OK


def jobs_submit(client: Client, args: argparse.Namespace) -> int:
    job = client.jobs.create(_read_spec(args.spec, "job"))
    if not args.wait:
        _emit(args, job.to_dict(), lambda out: out.print(f"submitted {job.id} ({job.status})"))
        return OK
    return _wait_job(client, args, job.id)


def _wait_job(client: Client, args: argparse.Namespace, job_id: str) -> int:
    bar = not args.json and sys.stdout.isatty()
    job = client.jobs.wait(job_id, progress=ProgressBar() if bar else False, interval=0.25)
    _emit(args, job.to_dict(), lambda out: out.print(job_summary(job)))
    return _finished(job)


def jobs_list(client: Client, args: argparse.Namespace) -> int:
    jobs: list[Job] = []
    for job in client.jobs.list(status=args.status, page_size=min(args.limit, 500)):
        if len(jobs) >= args.limit:
            break
        jobs.append(job)
    _emit(args, [j.to_dict() for j in jobs], lambda out: out.print(_job_table(jobs)))
    return OK


def jobs_show(client: Client, args: argparse.Namespace) -> int:
    job = client.jobs.get(args.id)
    _emit(args, job.to_dict(), lambda out: out.print(job_summary(job)))
    return OK


def jobs_watch(client: Client, args: argparse.Namespace) -> int:
    if args.json:  # one line per epoch as it is recorded, then the final job
        for record in client.jobs.stream(args.id):
            print(json.dumps(record.to_dict()), flush=True)
        job = client.jobs.wait(args.id)
        print(json.dumps(job.to_dict()))
        return _finished(job)
    job = client.jobs.wait(args.id, progress=ProgressBar(), interval=0.25)
    Console(highlight=False).print(job_summary(job))
    return _finished(job)


def jobs_cancel(client: Client, args: argparse.Namespace) -> int:
    job = client.jobs.cancel(args.id)
    _emit(args, job.to_dict(), lambda out: out.print(f"{job.id}: {job.status}"))
    return OK


def jobs_weights(client: Client, args: argparse.Namespace) -> int:
    path = client.jobs.download_weights(args.id, args.output, format=args.format, checkpoint=args.checkpoint)
    size = path.stat().st_size
    _emit(
        args, {"path": str(path), "format": args.format, "bytes": size}, lambda out: out.print(f"{path} ({size} bytes)")
    )
    return OK


def jobs_predict(client: Client, args: argparse.Namespace) -> int:
    data = _read_json(args.inputs)
    inputs = data.get("inputs") if isinstance(data, dict) else data
    if not isinstance(inputs, list):
        raise UsageError(f'{args.inputs}: expected [[...], ...] or {{"inputs": [[...], ...]}}')
    prediction = client.jobs.predict(args.id, inputs)

    def table(out: Console) -> None:
        columns = ["row", "prediction", *(f"p({c})" for c in prediction.classes or [])]
        rows = Table(*columns)
        for i, value in enumerate(prediction.predictions):
            probabilities = prediction.probabilities[i] if prediction.probabilities else []
            rows.add_row(str(i), str(value), *(f"{p:.4f}" for p in probabilities))
        out.print(rows)

    _emit(args, prediction.to_dict(), table)
    return OK


def sweeps_submit(client: Client, args: argparse.Namespace) -> int:
    sweep = client.sweeps.create(_read_spec(args.spec, "sweep"))
    if args.wait:
        bar = not args.json and sys.stdout.isatty()
        sweep = client.sweeps.wait(sweep.id, progress=ProgressBar() if bar else False)
        _emit(args, sweep.to_dict(), lambda out: out.print(leaderboard(sweep)))
        return _finished(sweep)
    _emit(args, sweep.to_dict(), lambda out: out.print(f"submitted {sweep.id} ({sweep.n_trials} trials)"))
    return OK


def sweeps_show(client: Client, args: argparse.Namespace) -> int:
    sweep = client.sweeps.get(args.id)
    _emit(args, sweep.to_dict(), lambda out: out.print(leaderboard(sweep)))
    return OK
