"""Benchmark webhook latency while every worker is busy training: does an event reach a receiver within 2 s?

Usage::

    python bench/webhooks.py              # 50 events (25 webhook.test, 25 sweep.cancelled), about a minute
    python bench/webhooks.py --events 10  # a shorter run
    python bench/webhooks.py --json out.json

The script starts its own service in a temporary directory, as ``trainapi
serve`` does (``trainapi.processes.LocalService``): a real redis-server, two
Celery workers (concurrency 1), the webhook delivery consumer and the API,
with ``TRAINAPI_WEBHOOK_ALLOW_PRIVATE=true`` so the receiver may listen on
127.0.0.1. The receiver (``tests/receiver.py``, a threaded ``http.server``)
runs in this process and verifies nothing: the tests check signatures.

Each worker first gets a long job (digits, an MLP of 256 x 256, hundreds of
epochs), so both workers — and both cores of the reference machine — are
busy training for the whole run. Then, one at a time, alternately:

webhook.test
    ``POST /v1/webhooks/{id}/test``; latency from just before the request
    is sent to the receiver's arrival time.
sweep.cancelled
    A one-trial sweep is created (its trial waits in the queue behind the
    busy workers) and cancelled; latency from just before the cancel request
    to the arrival of the sweep's terminal event.

The percentiles of the latencies are printed (nearest rank: the p99 of 50
events is the largest). The target, 2 s, is printed as met or missed, never enforced.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
# Run from a checkout without installing: the repository root holds the packages, tests/ the receiver.
for path in (REPO_ROOT, REPO_ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import httpx  # noqa: E402
from receiver import Receiver  # noqa: E402

from trainapi.processes import LocalService  # noqa: E402

TARGET_SECONDS = 2.0
WORKERS = 2
LONG_JOB: dict[str, Any] = {
    "dataset": "digits",
    "model": {"type": "mlp", "hidden_layers": [256, 256]},
    "training": {"epochs": 500, "batch_size": 16, "max_runtime_seconds": 3600},
}
TRIAL: dict[str, Any] = {"dataset": "iris", "model": {"type": "logistic"}, "training": {"epochs": 1}}


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile by the nearest rank (the p99 of 50 values is their largest)."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


def arrival(receiver: Receiver, match: Any, timeout: float = 30.0) -> float:
    """The arrival time of the first request ``match(payload)`` accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in receiver.items():
            if match(item):
                return item.at
        time.sleep(0.002)
    raise TimeoutError("the event did not arrive within 30 s")


def busy_workers(client: httpx.Client) -> list[str]:
    """Start one long job per worker and wait until all of them run."""
    ids = [client.post("/v1/jobs", json=LONG_JOB).json()["id"] for _ in range(WORKERS)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(client.get(f"/v1/jobs/{i}").json()["status"] == "running" for i in ids):
            return ids
        time.sleep(0.1)
    raise TimeoutError("the long jobs did not start")


def measure(client: httpx.Client, receiver: Receiver, endpoint_id: str, events: int) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {"webhook.test": [], "sweep.cancelled": []}
    for i in range(events):
        if i % 2 == 0:
            sent = time.time()
            webhook_id = client.post(f"/v1/webhooks/{endpoint_id}/test").json()["webhook_id"]
            got = arrival(receiver, lambda item, w=webhook_id: item.headers.get("webhook-id") == w)
            latencies["webhook.test"].append(got - sent)
        else:
            body = {"base": TRIAL, "parameters": {"training.seed": {"values": [i]}}, "max_concurrent_trials": 1}
            sweep_id = client.post("/v1/sweeps", json=body).json()["id"]
            sent = time.time()
            assert client.post(f"/v1/sweeps/{sweep_id}/cancel").status_code == 202
            got = arrival(receiver, lambda item, s=sweep_id: item.json["data"].get("id") == s)
            latencies["sweep.cancelled"].append(got - sent)
        time.sleep(0.05)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the latencies here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="trainapi-bench-webhooks-") as tmp:
        service = LocalService(Path(tmp), env_extra={"TRAINAPI_WEBHOOK_ALLOW_PRIVATE": "true"})
        receiver = Receiver().start()
        service.start(workers=WORKERS)
        try:
            with httpx.Client(base_url=service.url, timeout=30) as client:
                endpoint = client.post("/v1/webhooks", json={"url": receiver.url(), "events": ["*"]}).json()
                long_ids = busy_workers(client)
                latencies = measure(client, receiver, endpoint["id"], args.events)
                still = [client.get(f"/v1/jobs/{i}").json() for i in long_ids]
                for job_id in long_ids:
                    client.post(f"/v1/jobs/{job_id}/cancel")
        finally:
            receiver.stop()
            service.stop()
    everything = [v for values in latencies.values() for v in values]
    rows = [(name, values) for name, values in latencies.items()] + [("all", everything)]
    print(f"{WORKERS} workers busy on long jobs the whole time: {[j['status'] for j in still]}, ", end="")
    print(f"epochs {[j['progress']['epoch'] for j in still]} of {LONG_JOB['training']['epochs']}")
    print()
    print("| event | n | p50 | p90 | p99 | max | target (p99) | met |")
    print("|---|---|---|---|---|---|---|---|")
    for name, values in rows:
        p99 = percentile(values, 0.99)
        cells = [f"{percentile(values, q) * 1000:.0f} ms" for q in (0.5, 0.9)] + [f"{p99 * 1000:.0f} ms"]
        met = "yes" if p99 <= TARGET_SECONDS else "**no**"
        print(f"| {name} | {len(values)} | {' | '.join(cells)} | {max(values) * 1000:.0f} ms | ≤ 2 s | {met} |")
    print(f"\nmean of all: {statistics.mean(everything) * 1000:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps(latencies, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
