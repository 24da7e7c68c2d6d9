"""Soak: many small jobs at once against real Redis and two Celery workers, with and without a crash.

Usage::

    python bench/soak.py                 # 500 jobs, then 500 more with one worker killed halfway
    python bench/soak.py --jobs 100      # smaller
    python bench/soak.py --json out.json

For each scenario it submits every job at once, waits for all of them, and
checks that every job succeeded, that none ran twice (attempt 1 and exactly one
metrics record per epoch, except jobs the killed worker was running, which
resume once at attempt 2), and samples the workers' resident memory (RSS of
each worker's process group from /proc) every 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from trainapi.processes import LocalService as Service  # noqa: E402

JOB = {"dataset": "iris", "model": {"type": "logistic"}, "training": {"epochs": 5}}


def rss_mib(pgid: int) -> float:
    """Resident memory of every process in process group ``pgid``, in MiB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1024


def scenario(n_jobs: int, kill_halfway: bool) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="trainapi-soak-"))
    service = Service(root, env_extra={"TRAINAPI_MAX_ACTIVE_JOBS": str(10 * n_jobs), "TRAINAPI_LEASE_SECONDS": "5"})
    service.start(workers=2)
    memory: dict[str, list[float]] = {name: [] for name in service.workers}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for name, proc in list(service.workers.items()):
                memory[name].append(rss_mib(proc.pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    killed_at = None
    try:
        with httpx.Client(base_url=service.url, timeout=60) as api:
            started = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                ids = list(pool.map(lambda _: api.post("/v1/jobs", json=JOB).json()["id"], range(n_jobs)))
            submitted = time.monotonic() - started

            def finished() -> int:
                return sum(1 for j in _all_jobs(api) if j["status"] in ("succeeded", "failed", "cancelled"))

            while (done := finished()) < n_jobs:
                if kill_halfway and killed_at is None and done >= n_jobs // 2:
                    victim = service.workers.pop("w2")
                    os.killpg(victim.pid, signal.SIGKILL)  # the whole worker: main process and pool child
                    victim.wait()
                    killed_at = done
                if time.monotonic() - started > 1800:
                    raise RuntimeError(f"only {done} of {n_jobs} jobs finished in 30 minutes")
                time.sleep(0.5)
            elapsed = time.monotonic() - started
            jobs = {j["id"]: j for j in _all_jobs(api)}
            statuses: dict[str, int] = {}
            twice, resumed = [], 0
            for job_id in ids:
                job = jobs[job_id]
                statuses[job["status"]] = statuses.get(job["status"], 0) + 1
                epochs = [m["epoch"] for m in api.get(f"/v1/jobs/{job_id}/metrics").json()["items"]]
                if epochs != list(range(1, 6)):
                    twice.append(job_id)
                if job["attempt"] > 1:
                    resumed += 1
    finally:
        stop.set()
        sampler.join()
        service.stop()
    return {
        "jobs": n_jobs,
        "killed_worker_after": killed_at,
        "submit_seconds": round(submitted, 2),
        "total_seconds": round(elapsed, 2),
        "jobs_per_second": round(n_jobs / elapsed, 1),
        "statuses": statuses,
        "lost": n_jobs - len([i for i in ids if i in jobs]),
        "metrics_not_exactly_once": len(twice),
        "resumed_attempts": resumed,
        "worker_rss_mib": {
            name: {"start": round(v[0], 1), "max": round(max(v), 1), "end": round(v[-1], 1)}
            for name, v in memory.items()
            if v
        },
    }


def _all_jobs(api: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.get("/v1/jobs", params={"limit": 500, **({"cursor": cursor} if cursor else {})}).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [scenario(args.jobs, kill_halfway=False), scenario(args.jobs, kill_halfway=True)]
    columns = ["scenario", "jobs", "succeeded", "lost", "metrics not exactly once", "resumed", "jobs/s"]
    print("| " + " | ".join([*columns, "worker RSS MiB (start → max → end)"]) + " |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        name = "two workers" if r["killed_worker_after"] is None else f"w2 killed after {r['killed_worker_after']} done"
        rss = "; ".join(f"{w}: {m['start']} → {m['max']} → {m['end']}" for w, m in r["worker_rss_mib"].items())
        print(
            f"| {name} | {r['jobs']} | {r['statuses'].get('succeeded', 0)} | {r['lost']} | "
            f"{r['metrics_not_exactly_once']} | {r['resumed_attempts']} | {r['jobs_per_second']} | {rss} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
