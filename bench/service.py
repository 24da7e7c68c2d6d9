"""Benchmark the running service: submission, status polling, queue latency, end-to-end time of a tiny job.

Usage::

    python bench/service.py                  # full run, about a minute
    python bench/service.py --quick          # few jobs, short polling windows: a smoke run
    python bench/service.py --json out.json  # also write every measurement as JSON
    python bench/service.py --no-profile     # skip the in-process breakdown of GET /v1/jobs/{id}

The script starts its own service in a temporary directory, exactly as
``trainapi serve`` does (``trainapi.processes``): a real redis-server, one
Celery worker process (concurrency 1) and the API under uvicorn, each on a
free port. Nothing is mocked. The load generator runs in this process and
shares the machine's cores with the API, Redis and the worker; the CPU each
of them used during the polling window (from ``/proc``), and what all other
processes of the machine used, is printed next to the latency figures.

Measurements
------------
submit
    N ``POST /v1/jobs`` of a tiny job (iris, logistic, 1 epoch) from a few
    threads, one ``httpx.Client`` each: accepted (202) jobs per second. Then
    the drain: the time until the single worker has finished all of them (not
    part of the submission time).
get
    ``GET /v1/jobs/{id}`` of one finished job, issued back-to-back by 100
    concurrent pollers for a fixed window: p50 / p90 / p99 latency and
    requests per second. The pollers are asyncio tasks, each on its own
    keep-alive connection, speaking minimal HTTP/1.1 over asyncio streams
    (about 0.05 ms of client CPU per request). ``httpx.AsyncClient`` costs
    the client ~0.7 ms per request and its pool degrades with 100
    connections to a full core for ~130 requests/s, so with it the load
    generator, not the API, would be measured; the full run shows an httpx
    row for comparison. Full runs add 1 and 10 pollers (latency with little
    or no queueing) and three what-if variants of the API, started next to
    the service's own on another port, same Redis, nothing in ``api/``
    edited: ``uvicorn --workers 2``; every status read through the FastAPI
    route instead of the raw ASGI route in front of it; and no ``gc.freeze``
    of the startup objects.
queue
    ``started_at - created_at`` of the job record (both ISO timestamps in ms,
    written by the API and by the worker): tiny jobs submitted one at a time.
e2e
    iris, logistic, 20 epochs: ``POST`` until ``succeeded`` is seen by polling
    every 10 ms, against :func:`engine.train` of the same spec in this process;
    the job record's ``finished_at - created_at`` excludes polling granularity.
profile
    Where an API request's time goes: the app is built in this process (same
    Redis, same job, its lifespan running) and ``GET /v1/jobs/{id}`` is called
    through ASGI directly, once as deployed (the raw status route) and once
    through the FastAPI route, counting thread-pool hand-offs; the stages
    (HGETALL alone and batched, decoding, the public document, its JSON, and
    for comparison the pydantic model path the route used before) are timed
    on their own, and a cProfile of the raw route is summed by package.

Missed targets are printed, never turned into a non-zero exit status:
machines are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import os
import platform
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
# Run from a checkout without installing: the repository root holds the packages.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402

from engine import TrainSpec, load_builtin, train  # noqa: E402
from store.statuses import TERMINAL  # noqa: E402
from trainapi import processes  # noqa: E402
from trainapi.processes import LocalService  # noqa: E402

#: Targets; printed as met or missed, never enforced.
TARGET_GET_P99_MS = 25.0
TARGET_E2E_OVERHEAD_MS = 250.0

TINY_JOB: dict[str, Any] = {"dataset": "iris", "model": {"type": "logistic"}, "training": {"epochs": 1}}
E2E_JOB: dict[str, Any] = {"dataset": "iris", "model": {"type": "logistic"}, "training": {"epochs": 20}}
#: The engine part of E2E_JOB (everything but the dataset).
E2E_ENGINE_SPEC: dict[str, Any] = {"model": {"type": "logistic"}, "training": {"epochs": 20}}


@dataclass(frozen=True)
class Config:
    """Sizes of one run."""

    mode: str
    submit_jobs: int
    submit_clients: int
    pollers: int
    poll_seconds: float
    poll_warmup_seconds: float
    sweep_pollers: tuple[int, ...]  # extra GET runs at lower concurrency
    sweep_seconds: float
    httpx_compare: bool  # also poll with httpx.AsyncClient
    what_ifs: bool  # also poll the API variants of WHAT_IFS
    queue_jobs: int
    e2e_runs: int
    engine_runs: int
    profile_requests: int


FULL = Config(
    mode="full",
    submit_jobs=200,
    submit_clients=4,
    pollers=100,
    poll_seconds=5.0,
    poll_warmup_seconds=0.5,
    sweep_pollers=(1, 10),
    sweep_seconds=3.0,
    httpx_compare=True,
    what_ifs=True,
    queue_jobs=20,
    e2e_runs=10,
    engine_runs=10,
    profile_requests=3000,
)
QUICK = Config(
    mode="quick",
    submit_jobs=12,
    submit_clients=4,
    pollers=100,
    poll_seconds=1.0,
    poll_warmup_seconds=0.2,
    sweep_pollers=(),
    sweep_seconds=1.0,
    httpx_compare=False,
    what_ifs=False,
    queue_jobs=3,
    e2e_runs=2,
    engine_runs=2,
    profile_requests=200,
)


# -- statistics ----------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def iso_ms(text: str) -> float:
    """An ISO 8601 timestamp of the job record (``...T12:00:00.123Z``) as epoch milliseconds."""
    return datetime.fromisoformat(text).timestamp() * 1000.0


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process, from ``/proc`` (0 where it is unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used (user, nice, system, irq, softirq) since boot."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (1, 2, 3, 6, 7)) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """The children of a process (``/proc/PID/task/TID/children``; empty where the kernel lacks it)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return out


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its live descendants (``uvicorn --workers N`` runs N children)."""
    return process_cpu_seconds(pid) + sum(process_tree_cpu_seconds(c) for c in child_pids(pid))


# -- the service ---------------------------------------------------------------


@contextlib.contextmanager
def running_service(n_workers: int = 1) -> Iterator[LocalService]:
    """A service in a temporary directory, stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="trainapi-bench-") as tmp:
        # Many queued jobs at once: lift the per-tenant quota of queued + running jobs (default 100).
        svc = LocalService(Path(tmp), env_extra={"TRAINAPI_MAX_ACTIVE_JOBS": "100000"})
        try:
            yield svc.start(workers=n_workers)
        except BaseException:
            if svc.root.exists():
                print(svc.logs(), file=sys.stderr)
            raise
        finally:
            svc.stop()


def wait_terminal(client: httpx.Client, job_id: str, interval: float, timeout: float = 300.0) -> dict[str, Any]:
    """Poll ``GET /v1/jobs/{id}`` every ``interval`` seconds until the job is terminal."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout:g} s")
        time.sleep(interval)


def submit(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json=body)
    if response.status_code != 202:
        raise RuntimeError(f"POST /v1/jobs: {response.status_code} {response.text[:500]}")
    return str(response.json()["id"])


# -- 1. submission throughput and drain ----------------------------------------


def bench_submit(svc: LocalService, cfg: Config) -> dict[str, Any]:
    """N POSTs from a few threads; then the time until the worker has finished them all."""
    per_client = [
        cfg.submit_jobs // cfg.submit_clients + (i < cfg.submit_jobs % cfg.submit_clients)
        for i in range(cfg.submit_clients)
    ]
    clients = [httpx.Client(base_url=svc.url, timeout=30) for _ in per_client]
    # Warm-up, not timed: open each client's connection and the API's connections to the broker.
    warmup = [submit(client, TINY_JOB) for client in clients]
    for job_id in warmup:
        wait_terminal(clients[0], job_id, interval=0.02)
    barrier = threading.Barrier(len(clients) + 1)

    def post_many(client: httpx.Client, count: int) -> list[tuple[int, str | None, float]]:
        barrier.wait()
        out = []
        for _ in range(count):
            t0 = time.perf_counter()
            response = client.post("/v1/jobs", json=TINY_JOB)
            elapsed = time.perf_counter() - t0
            job_id = response.json().get("id") if response.status_code == 202 else None
            out.append((response.status_code, job_id, elapsed))
        return out

    with ThreadPoolExecutor(len(clients)) as pool:
        futures = [pool.submit(post_many, c, n) for c, n in zip(clients, per_client, strict=True)]
        barrier.wait()
        t0 = time.perf_counter()
        results = [item for f in futures for item in f.result()]
        submit_seconds = time.perf_counter() - t0
        submitted_at_ms = time.time() * 1000
    for client in clients:
        client.close()

    accepted = [job_id for status, job_id, _ in results if status == 202 and job_id]
    post_ms = [1000 * elapsed for _, _, elapsed in results]
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        # One worker takes the queue in order: wait for the last job, then read every record.
        wait_terminal(client, accepted[-1], interval=0.02)
        records = [wait_terminal(client, job_id, interval=0.02) for job_id in accepted]
    started = [iso_ms(r["started_at"]) for r in records if r.get("started_at")]
    finished = [iso_ms(r["finished_at"]) for r in records if r.get("finished_at")]
    # From the records' own timestamps, so polling granularity does not count.
    drain_seconds = max(max(finished) - submitted_at_ms, 0.0) / 1000
    busy = (max(finished) - min(started)) / 1000
    succeeded = [r["id"] for r in records if r["status"] == "succeeded"]
    if not succeeded:
        raise RuntimeError(f"no tiny job succeeded: {records[:3]}")
    return {
        "jobs": cfg.submit_jobs,
        "clients": cfg.submit_clients,
        "accepted": len(accepted),
        "rejected": len(results) - len(accepted),
        "submit_seconds": submit_seconds,
        "jobs_per_second": len(accepted) / submit_seconds,
        "post_ms_p50": percentile(post_ms, 0.5),
        "post_ms_p99": percentile(post_ms, 0.99),
        "drain_seconds": drain_seconds,
        "succeeded": len(succeeded),
        "worker_jobs_per_second": len(records) / busy if busy > 0 else float("nan"),
        "finished_job": succeeded[0],
    }


# -- 2. GET latency under concurrent polling ------------------------------------


class RawConnection:
    """One keep-alive HTTP/1.1 connection sending a fixed GET: a load generator that costs little CPU."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> None:
        self.reader, self.writer, self.request = reader, writer, request

    @classmethod
    async def open(cls, host: str, port: int, path: str) -> RawConnection:
        reader, writer = await asyncio.open_connection(host, port)
        request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n".encode()
        return cls(reader, writer, request)

    async def get(self) -> tuple[int, bytes]:
        """Send the request; returns (status, body). Needs a Content-Length response (uvicorn sends one)."""
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        start = lower.find(b"\r\ncontent-length:")
        if start < 0:
            raise RuntimeError(f"no Content-Length in {head!r}")
        start += len(b"\r\ncontent-length:")
        length = int(lower[start : lower.index(b"\r\n", start)])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


@dataclass
class Window:
    """What the pollers saw in the measured window, and the CPU snapshots at its two ends."""

    latencies: list[float]
    errors: int
    seconds: float
    cpu_before: dict[str, float]
    cpu_after: dict[str, float]


async def _poll_window(
    get_factory: Callable[[], Any],
    pollers: int,
    warmup: float,
    seconds: float,
    snapshot: Callable[[], dict[str, float]],
    interval: float = 0.0,
) -> Window:
    """Run ``pollers`` loops; the requests sent between ``warmup`` and ``warmup + seconds`` count.

    ``get_factory`` is an async callable returning an async ``get() -> status`` for one poller. With
    ``interval`` 0 each poller sends its next request as soon as the last is answered (a closed loop that
    saturates the API); otherwise it starts one request every ``interval`` seconds, at a random phase.
    """
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    begin = loop.time() + 0.05
    window_start, window_end = begin + warmup, begin + warmup + seconds
    cpu: list[dict[str, float]] = []

    async def meter() -> None:
        for at in (window_start, window_end):
            await asyncio.sleep(max(at - loop.time(), 0))
            cpu.append(snapshot())

    async def poller(phase: float) -> None:
        nonlocal errors
        get = await get_factory()
        next_at = loop.time() + phase
        while True:
            if interval:
                await asyncio.sleep(max(next_at - loop.time(), 0))
                next_at += interval
            t0 = time.perf_counter()
            now = loop.time()
            if now >= window_end:
                return
            status = await get()
            if now >= window_start:
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    errors += 1

    phases = [interval * i / max(pollers, 1) for i in range(pollers)]
    await asyncio.gather(meter(), *(poller(phase) for phase in phases))
    return Window(latencies, errors, cpu[1]["wall"] - cpu[0]["wall"], cpu[0], cpu[1])


def _cpu_snapshot(api_pid: int, redis_pid: int, worker_pids: list[int]) -> dict[str, float]:
    return {
        "api": process_tree_cpu_seconds(api_pid),
        "redis": process_cpu_seconds(redis_pid),
        "worker": sum(process_tree_cpu_seconds(pid) for pid in worker_pids),
        "load_generator": time.process_time(),
        "machine": machine_busy_seconds(),
        "wall": time.perf_counter(),
    }


def _cores_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per wall second of each part; ``other`` is everything else on the machine."""
    wall = after["wall"] - before["wall"]
    out = {name: (after[name] - before[name]) / wall for name in ("api", "redis", "worker", "load_generator")}
    out["other"] = max((after["machine"] - before["machine"]) / wall - sum(out.values()), 0.0)
    return out


def bench_get(
    svc: LocalService,
    job_id: str,
    pollers: int,
    seconds: float,
    warmup: float,
    client: str,
    api: tuple[int, int] | None = None,
    interval: float = 0.0,
) -> dict[str, Any]:
    """``pollers`` concurrent loops of ``GET /v1/jobs/{id}`` for ``seconds`` after ``warmup`` seconds.

    ``client`` is ``raw`` (asyncio streams) or ``httpx`` (one ``httpx.AsyncClient``); ``api`` is another
    API's (port, pid) than the service's own.
    """
    assert svc.api is not None and svc.redis is not None
    path = f"/v1/jobs/{job_id}"
    api_port, api_pid = api or (svc.api_port, svc.api.pid)
    base_url = f"http://127.0.0.1:{api_port}"
    job = httpx.get(base_url + path, timeout=10).json()
    if job.get("id") != job_id or job.get("status") not in TERMINAL:
        raise RuntimeError(f"GET {path} on port {api_port} answered {job}")
    redis_pid = svc.redis.pid
    worker_pids = [proc.pid for proc in svc.workers.values()]

    def snapshot() -> dict[str, float]:
        return _cpu_snapshot(api_pid, redis_pid, worker_pids)

    async def run() -> Window:
        if client == "raw":
            conns: list[RawConnection] = []

            async def raw_factory() -> Callable[[], Any]:
                conn = await RawConnection.open("127.0.0.1", api_port, path)
                conns.append(conn)

                async def get() -> int:
                    status, _ = await conn.get()
                    return status

                return get

            try:
                return await _poll_window(raw_factory, pollers, warmup, seconds, snapshot, interval)
            finally:
                for conn in conns:
                    conn.close()
        limits = httpx.Limits(max_connections=pollers, max_keepalive_connections=pollers)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:

            async def httpx_factory() -> Callable[[], Any]:
                async def get() -> int:
                    response = await http.get(path)
                    return response.status_code

                return get

            return await _poll_window(httpx_factory, pollers, warmup, seconds, snapshot)

    window = asyncio.run(run())
    cores = _cores_used(window.cpu_before, window.cpu_after)
    ms = [1000 * x for x in window.latencies]
    rps = len(ms) / window.seconds
    return {
        "client": client,
        "pollers": pollers,
        "interval_s": interval,
        "seconds": window.seconds,
        "requests": len(ms),
        "errors": window.errors,
        "requests_per_second": rps,
        "p50_ms": percentile(ms, 0.50),
        "p90_ms": percentile(ms, 0.90),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms) if ms else float("nan"),
        "cores_used": cores,  # in the window: CPU seconds per wall second
        "api_cpu_ms_per_request": 1000 * cores["api"] / rps if rps else float("nan"),
    }


#: An API process like the service's own, built with ``create_app(status_route=False)``: every
#: ``GET /v1/jobs/{id}`` goes through FastAPI's route (routing, dependencies, exception middleware).
_FASTAPI_ROUTE_API = """
import sys

import uvicorn

from api.main import create_app

uvicorn.run(create_app(status_route=False), host="127.0.0.1", port=int(sys.argv[1]), access_log=False)
"""

#: An API process like the service's own, except that the app's lifespan cannot freeze the objects of
#: startup (``gc.freeze`` made a no-op), so full garbage collections walk them all.
_NO_GC_FREEZE_API = """
import gc
import sys

import uvicorn

gc.freeze = lambda: None
uvicorn.run("api.main:app", host="127.0.0.1", port=int(sys.argv[1]), access_log=False)
"""

WHAT_IFS: dict[str, Callable[[int], list[str]]] = {
    "API under uvicorn --workers 2": lambda port: [
        *(sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)),
        *("--no-access-log", "--workers", "2"),
    ],
    "status served by the FastAPI route": lambda port: [sys.executable, "-c", _FASTAPI_ROUTE_API, str(port)],
    "no gc.freeze at startup": lambda port: [sys.executable, "-c", _NO_GC_FREEZE_API, str(port)],
}


def bench_get_what_if(svc: LocalService, job_id: str, cfg: Config, label: str) -> dict[str, Any]:
    """The GET test against a second API process started as in :data:`WHAT_IFS` (same Redis, same job).

    The service's own API stays as ``trainapi serve`` starts it; the variant runs on another port, is
    measured and stopped. Nothing in ``api/`` is edited.
    """
    port = processes.free_port()
    slug = re.sub(r"\W+", "-", label).strip("-").lower()
    with (svc.root / f"what-if-{slug}.log").open("ab") as out:
        proc = subprocess.Popen(
            WHAT_IFS[label](port),
            env=svc.env(),
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        processes.wait_until(up, 60, label, proc)
        time.sleep(1.5)  # with --workers, let every worker process come up, not just the first
        result = bench_get(
            svc, job_id, cfg.pollers, cfg.poll_seconds, cfg.poll_warmup_seconds, "raw", api=(port, proc.pid)
        )
    finally:
        processes.stop(proc)
    result["what_if"] = label
    return result


# -- 3. queue latency ------------------------------------------------------------


def bench_queue(svc: LocalService, cfg: Config) -> dict[str, Any]:
    """Tiny jobs one at a time: ``started_at - created_at`` of each record."""
    waits: list[float] = []
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        for _ in range(cfg.queue_jobs):
            job = wait_terminal(client, submit(client, TINY_JOB), interval=0.01)
            waits.append(iso_ms(job["started_at"]) - iso_ms(job["created_at"]))
    return {
        "jobs": len(waits),
        "median_ms": median(waits),
        "p90_ms": percentile(waits, 0.9),
        "max_ms": max(waits),
        "all_ms": waits,
    }


# -- 4. end to end against the engine alone ---------------------------------------


def bench_e2e(svc: LocalService, cfg: Config) -> dict[str, Any]:
    """The 20-epoch iris job through the service, and the same training in this process."""
    e2e, record_total, queued, running = [], [], [], []
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        wait_terminal(client, submit(client, E2E_JOB), interval=0.01)  # warm-up, not counted
        for _ in range(cfg.e2e_runs):
            t0 = time.perf_counter()
            job = wait_terminal(client, submit(client, E2E_JOB), interval=0.01)
            e2e.append(1000 * (time.perf_counter() - t0))
            if job["status"] != "succeeded":
                raise RuntimeError(f"the e2e job did not succeed: {job}")
            created, started, finished = (iso_ms(job[k]) for k in ("created_at", "started_at", "finished_at"))
            record_total.append(finished - created)
            queued.append(started - created)
            running.append(finished - started)

    def engine_once() -> float:
        t0 = time.perf_counter()
        train(TrainSpec.from_dict(E2E_ENGINE_SPEC), load_builtin("iris"))
        return 1000 * (time.perf_counter() - t0)

    engine_once()  # warm-up
    engine = [engine_once() for _ in range(cfg.engine_runs)]
    return {
        "runs": cfg.e2e_runs,
        "e2e_ms": median(e2e),
        "e2e_all_ms": e2e,
        "engine_ms": median(engine),
        "engine_all_ms": engine,
        "overhead_ms": median(e2e) - median(engine),
        "record_ms": median(record_total),
        "record_overhead_ms": median(record_total) - median(engine),
        "record_queue_ms": median(queued),
        "record_run_ms": median(running),
    }


# -- profile: where a GET's time goes ----------------------------------------------


def _category(filename: str, name: str) -> str:
    """The package a profiled function belongs to, for the per-package sums."""
    path = filename.replace(os.sep, "/")
    if "/redis/" in path or "_socket" in name or "select" in name.lower():
        return "redis-py (commands, RESP parser, socket)"
    if "pydantic" in path or "pydantic" in name:
        return "pydantic (model building, validation, JSON)"
    if "/fastapi/" in path or "/starlette/" in path:
        return "fastapi/starlette (routing, dependencies, middleware)"
    if path.startswith(str(REPO_ROOT).replace(os.sep, "/")) and "/.venv/" not in path and "/bench/" not in path:
        return "trainapi code (api/, store/)"
    if "/asyncio/" in path or "/anyio/" in path or "/contextlib" in path:
        return "asyncio/anyio/contextlib"
    if "json" in path or "json" in name:
        return "json"
    return "other (builtins, stdlib)"


def _short(filename: str) -> str:
    """A profiled file's path from its package down (site-packages, the stdlib and the repository cut off)."""
    path = filename.replace(os.sep, "/")
    path = re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", path)
    return path.removeprefix(str(REPO_ROOT).replace(os.sep, "/") + "/")


def profile_get(svc: LocalService, job_id: str, cfg: Config, live_api_ms_per_request: float) -> dict[str, Any]:
    """Break one ``GET /v1/jobs/{id}`` down, in this process, with the same Redis and job."""
    import fastapi.dependencies.utils
    import fastapi.routing
    from pydantic import TypeAdapter

    from api.main import create_app
    from api.schemas.jobs import JobPublic
    from api.services import jobs as jobs_service
    from store.redis import PipelinedReads, connect_async, key
    from trainapi.keys import LOCAL_TENANT
    from trainapi.settings import Settings

    logging.getLogger("trainapi.api").setLevel(logging.ERROR)  # the open-mode warning
    settings = Settings(redis_url=svc.redis_url, data_dir=svc.root)
    deployed = create_app(settings)
    fastapi_route = create_app(settings, status_route=False)
    state = deployed.state.trainapi
    path = f"/v1/jobs/{job_id}"
    # What FastAPI did with a ``-> JobPublic`` endpoint's return value: validate it, then dump JSON bytes.
    response_adapter = TypeAdapter(JobPublic)
    scope_base = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", svc.api_port),
    }

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def call(app: Any) -> None:
        sent: list[MutableMapping[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await app(dict(scope_base, state={}), receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"in-process GET {path}: {sent}")

    async def calls(app: Any, n: int) -> tuple[float, float]:
        """``n`` requests one after the other: (wall ms, CPU ms of this process's threads) per request."""
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            await call(app)
        return 1000 * (time.perf_counter() - t0) / n, 1000 * (time.process_time() - c0) / n

    hops = 0
    originals = (fastapi.routing.run_in_threadpool, fastapi.dependencies.utils.run_in_threadpool)

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        nonlocal hops
        hops += 1
        return await originals[0](func, *args, **kwargs)

    profiler = cProfile.Profile()
    n = cfg.profile_requests

    async def measure() -> tuple[tuple[float, float], tuple[float, float], float]:
        nonlocal hops
        # Each app with its lifespan running, as served: the pipelined asyncio Redis reads are in use.
        async with (
            deployed.router.lifespan_context(deployed),
            fastapi_route.router.lifespan_context(fastapi_route),
        ):
            await calls(deployed, max(n // 10, 20))
            raw_route = await calls(deployed, n)
            await calls(fastapi_route, max(n // 10, 20))
            hops = 0
            through_fastapi = await calls(fastapi_route, n)
            per_request_hops = hops / n
            profiler.enable()
            await calls(deployed, n)
            profiler.disable()
        return raw_route, through_fastapi, per_request_hops

    assert svc.redis is not None
    load_before = (time.perf_counter(), machine_busy_seconds(), time.process_time(), process_cpu_seconds(svc.redis.pid))
    fastapi.routing.run_in_threadpool = fastapi.dependencies.utils.run_in_threadpool = counting
    try:
        (raw_ms, raw_cpu_ms), (fastapi_ms, fastapi_cpu_ms), hops_per_request = asyncio.run(measure())
    finally:
        fastapi.routing.run_in_threadpool, fastapi.dependencies.utils.run_in_threadpool = originals
    load_after = (time.perf_counter(), machine_busy_seconds(), time.process_time(), process_cpu_seconds(svc.redis.pid))
    wall, machine_cpu, own_cpu, redis_cpu = (b - a for a, b in zip(load_before, load_after, strict=True))
    other_cores = max((machine_cpu - own_cpu - redis_cpu) / wall, 0.0)

    def per_call_ms(fn: Callable[[], Any], repeats: int = n) -> float:
        for _ in range(max(repeats // 10, 10)):
            fn()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        return 1000 * (time.perf_counter() - t0) / repeats

    async def read_ms(batch: int) -> float:
        """CPU ms of this process per HGETALL through PipelinedReads, ``batch`` reads issued at once."""
        reader = PipelinedReads(connect_async(svc.redis_url))
        name = key("job", job_id)
        try:
            await reader.hgetall(name)
            rounds = max(n // batch, 10)
            c0 = time.process_time()
            for _ in range(rounds):
                await asyncio.gather(*(reader.hgetall(name) for _ in range(batch)))
            return 1000 * (time.process_time() - c0) / (rounds * batch)
        finally:
            await reader.aclose()

    record = state.jobs.get(LOCAL_TENANT, job_id)
    raw = state.redis.hgetall(key("job", job_id))
    stages = {
        "HGETALL alone (PipelinedReads, CPU)": asyncio.run(read_ms(1)),
        "HGETALL in a batch of 100 (per read, CPU)": asyncio.run(read_ms(100)),
        "decode the record (json.loads of fields)": per_call_ms(lambda: state.jobs._decode(raw)),
        "document(): the public shape as plain data": per_call_ms(lambda: jobs_service.document(record)),
        "job_json(): document() + pydantic_core.to_json": per_call_ms(lambda: jobs_service.job_json(record)),
        "was: view() + FastAPI's validation + dump_json": per_call_ms(
            lambda: response_adapter.dump_json(response_adapter.validate_python(jobs_service.view(record)))
        ),
    }
    stats = pstats.Stats(profiler)
    by_category: dict[str, float] = {}
    own: list[tuple[float, str]] = []
    for (filename, line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        category = _category(filename, name)
        by_category[category] = by_category.get(category, 0.0) + tottime
        where = name if filename == "~" else f"{_short(filename)}:{line}({name})"
        own.append((tottime, where))
    total = sum(t for t, _ in own)
    shares = {k: v / total for k, v in sorted(by_category.items(), key=lambda kv: -kv[1])}
    top = {where: t / total for t, where in sorted(own, reverse=True)[:12]}
    return {
        "requests": n,
        "response_bytes": len(jobs_service.job_json(record)),
        "raw_route_ms": raw_ms,
        "raw_route_cpu_ms": raw_cpu_ms,
        "fastapi_route_ms": fastapi_ms,
        "fastapi_route_cpu_ms": fastapi_cpu_ms,
        "threadpool_hops_per_request": hops_per_request,
        "live_api_cpu_ms_per_request": live_api_ms_per_request,
        "other_processes_cores": other_cores,
        "stages_ms": stages,
        "cprofile_shares": shares,
        "cprofile_top": top,
    }


# -- report --------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "uvicorn_http": _uvicorn_stack(),
    }


def _uvicorn_stack() -> str:
    """What ``uvicorn`` picks with its defaults: httptools or h11, uvloop or asyncio."""
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http} + {loop}"


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def table(results: dict[str, Any]) -> str:
    """The markdown table of metrics, targets and whether they are met."""
    s, g, q, e = results["submit"], results["get"], results["queue"], results["e2e"]
    rows = [
        ("metric", "value", "target", "met"),
        (
            f"submission: {s['jobs']} POSTs, {s['clients']} threads, 202 accepted",
            f"{s['jobs_per_second']:.0f} jobs/s ({s['accepted']}/{s['jobs']} accepted)",
            "—",
            "—",
        ),
        ("submission: POST latency p50 / p99", f"{s['post_ms_p50']:.1f} / {s['post_ms_p99']:.1f} ms", "—", "—"),
        (
            f"drain: {s['accepted']} tiny jobs, 1 worker",
            f"{s['drain_seconds']:.2f} s ({s['worker_jobs_per_second']:.1f} jobs/s, {s['succeeded']} succeeded)",
            "—",
            "—",
        ),
        (f"GET /v1/jobs/{{id}}, {g['pollers']} pollers: p50", f"{g['p50_ms']:.1f} ms", "—", "—"),
        (f"GET /v1/jobs/{{id}}, {g['pollers']} pollers: p90", f"{g['p90_ms']:.1f} ms", "—", "—"),
        (
            f"GET /v1/jobs/{{id}}, {g['pollers']} pollers: p99",
            f"{g['p99_ms']:.1f} ms",
            f"≤ {TARGET_GET_P99_MS:g} ms",
            _met(g["p99_ms"] <= TARGET_GET_P99_MS),
        ),
        (
            f"GET /v1/jobs/{{id}}, {g['pollers']} pollers: throughput",
            f"{g['requests_per_second']:.0f} req/s ({g['errors']} errors)",
            "—",
            "—",
        ),
        (
            f"GET /v1/jobs/{{id}}, {results['get_paced']['pollers']} pollers each polling every 100 ms: p50 / p99",
            f"{results['get_paced']['p50_ms']:.1f} / {results['get_paced']['p99_ms']:.1f} ms, "
            f"{results['get_paced']['requests_per_second']:.0f} req/s ({results['get_paced']['errors']} errors)",
            f"≤ {TARGET_GET_P99_MS:g} ms",
            _met(results["get_paced"]["p99_ms"] <= TARGET_GET_P99_MS),
        ),
        (
            "GET test: CPU cores used by API / load generator / Redis / other processes",
            "{api:.2f} / {load_generator:.2f} / {redis:.2f} / {other:.2f}".format(**g["cores_used"]),
            "—",
            "—",
        ),
    ]
    for extra in results.get("get_extra", []):
        if extra.get("what_if"):
            label = f"what if: {extra['what_if']}, {extra['pollers']} pollers"
        elif extra["client"] == "httpx":
            label = f"GET, {extra['pollers']} pollers, httpx.AsyncClient as the client"
        else:
            label = f"GET, {extra['pollers']} poller{'s' if extra['pollers'] > 1 else ''}"
        rows.append(
            (
                f"{label}: p50 / p99",
                f"{extra['p50_ms']:.1f} / {extra['p99_ms']:.1f} ms, {extra['requests_per_second']:.0f} req/s; "
                "cores API / client / other {api:.2f} / {load_generator:.2f} / {other:.2f}".format(
                    **extra["cores_used"]
                ),
                "—",
                "—",
            )
        )
    rows += [
        (
            f"queue latency (started_at - created_at), median of {q['jobs']}",
            f"{q['median_ms']:.0f} ms (p90 {q['p90_ms']:.0f})",
            "—",
            "—",
        ),
        (f"e2e tiny job (20 epochs), POST → succeeded seen, median of {e['runs']}", f"{e['e2e_ms']:.0f} ms", "—", "—"),
        ("engine alone, same job in-process, median", f"{e['engine_ms']:.0f} ms", "—", "—"),
        (
            "overhead: e2e - engine",
            f"{e['overhead_ms']:.0f} ms",
            f"≤ {TARGET_E2E_OVERHEAD_MS:g} ms",
            _met(e["overhead_ms"] <= TARGET_E2E_OVERHEAD_MS),
        ),
        (
            "job record finished_at - created_at, median",
            f"{e['record_ms']:.0f} ms (queued {e['record_queue_ms']:.0f} + running {e['record_run_ms']:.0f})",
            "—",
            "—",
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def profile_report(p: dict[str, Any]) -> str:
    """The breakdown of one GET, as text."""
    lines = [
        f"In-process GET /v1/jobs/{{id}} ({p['response_bytes']} bytes of JSON), {p['requests']} sequential requests"
        f" (other processes used {p['other_processes_cores']:.2f} cores meanwhile), per request:",
        f"  raw status route, as deployed:           {p['raw_route_ms']:.3f} ms wall, "
        f"{p['raw_route_cpu_ms']:.3f} ms CPU",
        f"  FastAPI route (status_route=False):      {p['fastapi_route_ms']:.3f} ms wall, "
        f"{p['fastapi_route_cpu_ms']:.3f} ms CPU, {p['threadpool_hops_per_request']:.0f} thread-pool hops",
        f"  API process CPU per request in the live 100-poller test (HTTP layer included, Redis reads batched): "
        f"{p['live_api_cpu_ms_per_request']:.3f} ms",
        "  stages on their own:",
    ]
    lines += [f"    {name:<48} {1000 * ms:6.1f} µs" for name, ms in p["stages_ms"].items()]
    lines.append("  cProfile of the raw route, own time by package:")
    lines += [f"    {name:<55} {share:5.1%}" for name, share in p["cprofile_shares"].items()]
    lines.append("  cProfile, the functions with the most own time:")
    lines += [f"    {share:5.1%}  {where}" for where, share in p["cprofile_top"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few jobs, short windows: a smoke run")
    parser.add_argument("--json", type=Path, help="also write every measurement to this file")
    parser.add_argument("--no-profile", action="store_true", help="skip the in-process breakdown of a GET")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL

    results: dict[str, Any] = {"mode": cfg.mode, "config": asdict(cfg), "machine": machine()}
    m = results["machine"]
    print(f"machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}, uvicorn on {m['uvicorn_http']}")
    print(f"mode: {cfg.mode}; starting redis-server, 1 Celery worker (concurrency 1) and the API ...", flush=True)
    t_start = time.perf_counter()
    with running_service(n_workers=1) as svc:
        print("[1/4] submission throughput and drain ...", flush=True)
        results["submit"] = bench_submit(svc, cfg)
        job_id = results["submit"]["finished_job"]
        print(f"[2/4] GET latency: {cfg.pollers} pollers for {cfg.poll_seconds:g} s ...", flush=True)
        results["get"] = bench_get(svc, job_id, cfg.pollers, cfg.poll_seconds, cfg.poll_warmup_seconds, "raw")
        results["get_paced"] = bench_get(
            svc, job_id, cfg.pollers, cfg.poll_seconds, cfg.poll_warmup_seconds, "raw", interval=0.1
        )
        results["get_extra"] = [
            bench_get(svc, job_id, n, cfg.sweep_seconds, cfg.poll_warmup_seconds, "raw") for n in cfg.sweep_pollers
        ]
        if cfg.httpx_compare:
            results["get_extra"].append(
                bench_get(svc, job_id, cfg.pollers, cfg.poll_seconds, cfg.poll_warmup_seconds, "httpx")
            )
        if cfg.what_ifs:
            for label in WHAT_IFS:
                print(f"      what if: {label} ...", flush=True)
                results["get_extra"].append(bench_get_what_if(svc, job_id, cfg, label))
        print(f"[3/4] queue latency: {cfg.queue_jobs} jobs one at a time ...", flush=True)
        results["queue"] = bench_queue(svc, cfg)
        print(f"[4/4] end to end: {cfg.e2e_runs} runs, engine alone {cfg.engine_runs} runs ...", flush=True)
        results["e2e"] = bench_e2e(svc, cfg)
        if not args.no_profile:
            print("profiling GET /v1/jobs/{id} in-process ...", flush=True)
            results["profile"] = profile_get(svc, job_id, cfg, results["get"]["api_cpu_ms_per_request"])
    results["seconds"] = time.perf_counter() - t_start

    print()
    print(table(results))
    g = results["get"]
    print()
    print(
        f"Little's law: {g['pollers']} pollers with no think time / {g['requests_per_second']:.0f} req/s = "
        f"{1000 * g['pollers'] / g['requests_per_second']:.0f} ms mean latency; since mean ≤ p99, a p99 of "
        f"{TARGET_GET_P99_MS:g} ms at {g['pollers']} pollers needs ≥ {g['pollers'] / (TARGET_GET_P99_MS / 1000):.0f} "
        "req/s from the API."
    )
    if "profile" in results:
        print()
        print(profile_report(results["profile"]))
    print(f"\ntotal {results['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
