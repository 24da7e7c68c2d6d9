"""Benchmark ``GET /metrics``: scrape latency with 10,000 jobs in Redis, against an empty service.

Usage::

    python bench/scrape.py                 # 10,000 jobs, 300 scrapes per size
    python bench/scrape.py --jobs 2000 --scrapes 50

The script starts its own service (``trainapi.processes.LocalService``: a real
redis-server, one Celery worker, the API under uvicorn) in a temporary
directory, scrapes it with no jobs, then writes ``--jobs`` job records through
the store (as the API would: every status a job can have, so the counts and the
finished totals have all their series), sends some requests of every route so
the request counters and histograms have series, and scrapes again. A scrape
reads a fixed number of Redis hashes whatever the number of jobs, so both
sizes should cost the same. Scrapes are sequential, one keep-alive connection.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
import redis  # noqa: E402

from store.jobs import JobStore  # noqa: E402
from trainapi.processes import LocalService  # noqa: E402

SPEC = {"name": "bench", "model": {"type": "mlp"}, "training": {"epochs": 1}, "tags": {}}
DATASET = {"id": "iris", "name": "iris"}


def scrape_latencies(client: httpx.Client, n: int) -> tuple[list[float], int]:
    """Milliseconds of ``n`` sequential scrapes, and the size of the last body in bytes."""
    times, size = [], 0
    for _ in range(n):
        started = time.perf_counter()
        response = client.get("/metrics")
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        size = len(response.content)
    return times, size


def fill(redis_url: str, n_jobs: int) -> None:
    """``n_jobs`` job records through the store, spread over statuses, models and tenants."""
    jobs = JobStore(redis.Redis.from_url(redis_url, decode_responses=True))
    models = ("linear", "logistic", "mlp")
    for i in range(n_jobs):
        spec = {**SPEC, "model": {"type": models[i % 3]}}
        record, _ = jobs.create(f"tenant{i % 20}", spec, DATASET, max_active=10**9)
        if i % 10 == 0:
            continue  # stays queued
        claim = jobs.claim(record["id"], record["tenant"], lease_seconds=3600, max_attempts=3)
        if i % 10 == 1:
            continue  # stays running
        status = ("succeeded", "failed", "cancelled", "pruned")[i % 4]
        jobs.finish(record["id"], record["tenant"], claim.token, status)


def traffic(client: httpx.Client, n: int) -> None:
    """Requests of several routes (and an unknown path) so the request series exist."""
    for i in range(n):
        client.get("/v1/jobs", params={"limit": 1})
        client.get(f"/v1/jobs/job_{i:032x}")
        client.get("/v1/datasets")
        client.get("/healthz")
        client.get(f"/no/such/path/{i}")


def summary(label: str, times: list[float], size: int) -> str:
    q = statistics.quantiles(times, n=100)
    return (
        f"| {label} | {len(times)} | {statistics.median(times):.2f} | {q[89]:.2f} | {q[98]:.2f} | "
        f"{max(times):.2f} | {size:,} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=300)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="trainapi-scrape-") as tmp:
        svc = LocalService(Path(tmp))
        try:
            svc.start(workers=1)
            with httpx.Client(base_url=svc.url, timeout=30) as client:
                scrape_latencies(client, 20)  # warm-up
                rows.append(summary("no jobs", *scrape_latencies(client, args.scrapes)))
                started = time.perf_counter()
                fill(svc.redis_url, args.jobs)
                print(f"wrote {args.jobs:,} jobs in {time.perf_counter() - started:.1f} s", flush=True)
                traffic(client, 200)
                scrape_latencies(client, 20)
                rows.append(summary(f"{args.jobs:,} jobs", *scrape_latencies(client, args.scrapes)))
        finally:
            svc.stop()
    print("| Redis holds | scrapes | p50 ms | p90 ms | p99 ms | max ms | body bytes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
