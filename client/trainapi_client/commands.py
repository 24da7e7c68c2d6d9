"""``trainapi datasets|jobs|sweeps ...``: the service's resources from the terminal, through the Python client.

Tables and a live progress bar (rich) for people, ``--json`` for scripts. Wherever a
command takes an id, a unique prefix of one will do (``trainapi_client/ids.py``). Exit
status: 0 when the command did what it says (a waited job or sweep succeeded), 1 when
a waited job failed or was cancelled, or the service answered with an error, 2 for
usage errors (argparse's own, an unreadable SPEC or inputs file, an ambiguous id).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table

from trainapi_client import ids, tables
from trainapi_client.arguments import FAILED, OK, USAGE, CommandParser, UsageError
from trainapi_client.client import Client
from trainapi_client.errors import APIError
from trainapi_client.models import JOB_STATUSES, WEIGHTS_FORMATS, Job, Sweep
from trainapi_client.waiting import ProgressBar

Command = Callable[[Client, argparse.Namespace], int]


def add_parsers(sub: argparse._SubParsersAction[CommandParser]) -> None:
    """Add ``datasets``, ``jobs`` and ``sweeps`` to the ``trainapi`` parser."""

    def command(group: argparse._SubParsersAction[CommandParser], name: str, run: Command, text: str) -> CommandParser:
        parser = group.add_parser(name, help=text, description=text)
        parser.add_argument("--url", help="the service (default: $TRAINAPI_URL, else http://127.0.0.1:8000)")
        parser.add_argument("--api-key", help="default: $TRAINAPI_API_KEY")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.set_defaults(main=main, run=run)
        return parser

    def group(name: str, text: str) -> argparse._SubParsersAction[CommandParser]:
        return sub.add_parser(name, help=text, description=text).add_subparsers(required=True, metavar="COMMAND")

    id_help = "{} id, or a unique prefix of one"
    datasets = group("datasets", "upload, list and inspect datasets")
    p = command(datasets, "upload", datasets_upload, "upload a CSV or NPZ file")
    p.add_argument("file", type=Path)
    p.add_argument("--target", free_text=True, help="the target column of a CSV (default: the last)")
    p.add_argument("--name", free_text=True)
    p.add_argument("--delimiter", free_text=True, help="a CSV's delimiter (default: detected)")
    p.add_argument("--decimal", choices=(".", ","), help="a CSV's decimal mark (default: .)")
    p.add_argument(
        "--na-values",
        free_text=True,
        metavar="LIST",
        help="comma-separated missing-value markers, e.g. '-,n/a' (default: NA,N/A,NaN,null,?)",
    )
    command(datasets, "list", datasets_list, "built-in datasets and your uploads")
    command(datasets, "show", datasets_show, "one dataset and its columns").add_argument(
        "id", help=id_help.format("a dataset")
    )

    jobs = group("jobs", "submit, follow and use training jobs")
    p = command(jobs, "submit", jobs_submit, "submit a job from a JSON spec (POST /v1/jobs body)")
    p.add_argument("spec", type=Path, metavar="SPEC.json")
    p.add_argument("--wait", action="store_true", help="wait for the job; exit 1 unless it succeeded")
    p = command(jobs, "list", jobs_list, "jobs, newest first")
    p.add_argument("--status", choices=JOB_STATUSES)
    p.add_argument("--limit", type=int, default=20)
    job_help = id_help.format("a job")
    command(jobs, "show", jobs_show, "one job").add_argument("id", help=job_help)
    text = "a live progress bar until the job ends, then a summary"
    command(jobs, "watch", jobs_watch, text).add_argument("id", help=job_help)
    command(jobs, "cancel", jobs_cancel, "cancel a job").add_argument("id", help=job_help)
    p = command(jobs, "weights", jobs_weights, "download the trained weights")
    p.add_argument("id", help=job_help)
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    p.add_argument("--format", choices=WEIGHTS_FORMATS, default="safetensors")
    p.add_argument("--checkpoint", choices=("best", "last"), help="a cancelled job's best or last epoch")
    lambda_help = "a path job's model at this point of its path (default: the selected one)"
    p.add_argument("--lambda-index", type=int, metavar="I", help=lambda_help)
    p = command(jobs, "predict", jobs_predict, "predict rows of a JSON file ([[...]] or {'inputs': [[...]]})")
    p.add_argument("id", help=job_help)
    p.add_argument("--inputs", type=Path, required=True, metavar="FILE")
    p.add_argument("--lambda-index", type=int, metavar="I", help=lambda_help)

    sweeps = group("sweeps", "submit sweeps and read their leaderboards")
    p = command(sweeps, "submit", sweeps_submit, "start a sweep from a JSON spec (POST /v1/sweeps body)")
    p.add_argument("spec", type=Path, metavar="SPEC.json")
    p.add_argument("--wait", action="store_true", help="wait for the sweep; exit 1 unless it succeeded")
    command(sweeps, "list", sweeps_list, f"the newest {ids.SWEEPS_LISTED} sweeps, newest first")
    text = "a sweep and its leaderboard (each trial's parameters)"
    command(sweeps, "show", sweeps_show, text).add_argument("id", help=id_help.format("a sweep"))


def main(args: argparse.Namespace) -> int:
    """Run the resource command ``args`` selected with a client of ``--url``; its exit status."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    try:
        with Client(args.url, args.api_key) as client:
            return int(args.run(client, args))
    except UsageError as exc:
        print(f"trainapi: error: {exc}", file=sys.stderr)
        return USAGE
    except APIError as exc:
        print_problem(exc, args.json)
        return FAILED
    except TimeoutError as exc:
        print(str(exc), file=sys.stderr)
        return FAILED


def print_problem(exc: APIError, as_json: bool) -> None:
    """The service's problem on stderr, once: its detail, then any field error the detail does not already say.

    Plain print, not rich: a long detail stays one line for the terminal to wrap,
    not broken where rich would break it, and no part of it is highlighted.
    """
    if as_json:
        body = {"status": exc.status, "title": exc.title, "detail": exc.detail, "errors": exc.errors}
        print(json.dumps({"error": body}), file=sys.stderr)
        return
    print(f"trainapi: {exc}", file=sys.stderr)
    for error in exc.errors:
        line = f"{error.get('field')}: {error.get('message')}"
        if line not in exc.detail and str(error.get("message")) not in exc.detail:
            print(f"  {line}", file=sys.stderr)


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


def _emit(args: argparse.Namespace, data: Any, human: Callable[[Console], RenderableType]) -> None:
    """``data`` as JSON with ``--json``; otherwise what ``human`` renders for the terminal, printed."""
    if args.json:
        print(json.dumps(data))
    else:
        out = Console(highlight=False)
        out.print(human(out))


def _finished(job_or_sweep: Job | Sweep) -> int:
    return OK if job_or_sweep.status == "succeeded" else FAILED


def datasets_upload(client: Client, args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise UsageError(f"no file {args.file}")
    na_values = args.na_values.split(",") if args.na_values is not None else None
    options = {"delimiter": args.delimiter, "decimal": args.decimal, "na_values": na_values}
    dataset = client.datasets.upload(args.file, target=args.target, name=args.name, **options)
    _emit(args, dataset.to_dict(), lambda out: tables.datasets(out, [dataset]))
    return OK


def datasets_list(client: Client, args: argparse.Namespace) -> int:
    datasets = client.datasets.list()
    _emit(args, [d.to_dict() for d in datasets], lambda out: tables.datasets(out, datasets))
    return OK


def datasets_show(client: Client, args: argparse.Namespace) -> int:
    dataset = client.datasets.get(ids.dataset_id(client, args.id))

    def human(out: Console) -> RenderableType:
        table = tables.datasets(out, [dataset])
        if not dataset.columns:
            return table
        columns = [
            tables.Column("column"),
            tables.Column("type"),
            tables.Column("missing", justify="right"),
            tables.Column("min", drop=1, justify="right"),
            tables.Column("mean", drop=2, justify="right"),
            tables.Column("max", drop=1, justify="right"),
        ]
        rows = [
            [c.name, c.type, str(c.missing), tables.number(c.min), tables.number(c.mean), tables.number(c.max)]
            for c in dataset.columns
        ]
        return Group(table, tables.fit(out, columns, rows))

    _emit(args, dataset.to_dict(), human)
    return OK


def jobs_submit(client: Client, args: argparse.Namespace) -> int:
    job = client.jobs.create(_read_spec(args.spec, "job"))
    if not args.wait:
        _emit(args, job.to_dict(), lambda out: f"submitted {job.id} ({job.status})")
        return OK
    if not args.json:
        print(f"submitted {job.id}", flush=True)  # before the bar: the id to cancel it with meanwhile
    return _wait_job(client, args, job.id)


def _wait_job(client: Client, args: argparse.Namespace, job_id: str) -> int:
    bar = not args.json and sys.stdout.isatty()
    job = client.jobs.wait(job_id, progress=ProgressBar() if bar else False, interval=0.25)
    _emit(args, job.to_dict(), lambda out: tables.job_summary(job))
    return _finished(job)


def jobs_list(client: Client, args: argparse.Namespace) -> int:
    jobs: list[Job] = []
    for job in client.jobs.list(status=args.status, page_size=min(args.limit, 500)):
        if len(jobs) >= args.limit:
            break
        jobs.append(job)
    _emit(args, [j.to_dict() for j in jobs], lambda out: tables.jobs(out, jobs))
    return OK


def jobs_show(client: Client, args: argparse.Namespace) -> int:
    job = client.jobs.get(ids.job_id(client, args.id))
    _emit(args, job.to_dict(), lambda out: tables.job_summary(job))
    return OK


def jobs_watch(client: Client, args: argparse.Namespace) -> int:
    job_id = ids.job_id(client, args.id)
    if args.json:  # one line per epoch as it is recorded, then the final job
        for record in client.jobs.stream(job_id):
            print(json.dumps(record.to_dict()), flush=True)
        job = client.jobs.wait(job_id)
        print(json.dumps(job.to_dict()))
        return _finished(job)
    job = client.jobs.wait(job_id, progress=ProgressBar(), interval=0.25)
    Console(highlight=False).print(tables.job_summary(job))
    return _finished(job)


def jobs_cancel(client: Client, args: argparse.Namespace) -> int:
    job = client.jobs.cancel(ids.job_id(client, args.id))
    _emit(args, job.to_dict(), lambda out: f"{job.id}: {job.status}")
    return OK


def jobs_weights(client: Client, args: argparse.Namespace) -> int:
    job_id = ids.job_id(client, args.id)
    path = client.jobs.download_weights(
        job_id, args.output, format=args.format, checkpoint=args.checkpoint, lambda_index=args.lambda_index
    )
    size = path.stat().st_size
    _emit(args, {"path": str(path), "format": args.format, "bytes": size}, lambda out: f"{path} ({size} bytes)")
    return OK


def jobs_predict(client: Client, args: argparse.Namespace) -> int:
    data = _read_json(args.inputs)
    inputs = data.get("inputs") if isinstance(data, dict) else data
    if not isinstance(inputs, list):
        raise UsageError(f'{args.inputs}: expected [[...], ...] or {{"inputs": [[...], ...]}}')
    prediction = client.jobs.predict(ids.job_id(client, args.id), inputs, lambda_index=args.lambda_index)

    def table(out: Console) -> Table:
        columns = ["row", "prediction", *(f"p({c})" for c in prediction.classes or [])]
        rows = Table(*columns)
        for i, value in enumerate(prediction.predictions):
            probabilities = prediction.probabilities[i] if prediction.probabilities else []
            rows.add_row(str(i), str(value), *(f"{p:.4f}" for p in probabilities))
        return rows

    _emit(args, prediction.to_dict(), table)
    return OK


def sweeps_submit(client: Client, args: argparse.Namespace) -> int:
    sweep = client.sweeps.create(_read_spec(args.spec, "sweep"))
    if args.wait:
        bar = not args.json and sys.stdout.isatty()
        if not args.json:
            print(f"submitted {sweep.id}", flush=True)
        sweep = client.sweeps.wait(sweep.id, progress=ProgressBar() if bar else False)
        _emit(args, sweep.to_dict(), lambda out: tables.leaderboard(out, sweep))
        return _finished(sweep)
    _emit(args, sweep.to_dict(), lambda out: f"submitted {sweep.id} ({sweep.n_trials} trials)")
    return OK


def sweeps_list(client: Client, args: argparse.Namespace) -> int:
    sweeps = client.sweeps.list(limit=ids.SWEEPS_LISTED)
    _emit(args, [s.to_dict() for s in sweeps], lambda out: tables.sweeps(out, sweeps))
    return OK


def sweeps_show(client: Client, args: argparse.Namespace) -> int:
    sweep = client.sweeps.get(ids.sweep_id(client, args.id))
    _emit(args, sweep.to_dict(), lambda out: tables.leaderboard(out, sweep))
    return OK
