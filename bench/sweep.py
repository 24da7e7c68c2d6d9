"""Sweep wall time with one worker and with two, on real Redis and Celery workers.

Usage::

    python bench/sweep.py              # the 16-trial sweep with 1 worker, then 2 workers; prints the speed-up
    python bench/sweep.py --example    # also runs the README's l1 x l2 x dropout sweep and prints its leaderboard
    python bench/sweep.py --quick      # 4 trials, for a smoke test

Each configuration runs as ``trainapi serve --workers N`` would: with one
worker its training uses every core's BLAS threads, with two each worker gets
half, so the comparison is what an operator gets by adding a worker.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from trainapi.processes import LocalService as Service  # noqa: E402
from trainapi.processes import blas_threads  # noqa: E402

SWEEP: dict[str, Any] = {
    "name": "bench-digits",
    "base": {
        "dataset": "digits",
        "model": {"type": "mlp", "hidden_layers": [128]},
        "optimizer": {"learning_rate": 0.002},
        "training": {"epochs": 15, "batch_size": 32},
    },
    "parameters": {
        "regularization.l2": {"values": [0, 1e-4, 1e-3, 1e-2]},
        "regularization.dropout": {"values": [0, 0.2, 0.4, 0.5]},
    },
    "max_concurrent_trials": 2,
}

EXAMPLE: dict[str, Any] = {
    "name": "moons-regularization",
    "base": {
        "dataset": "moons",
        "model": {"type": "mlp", "hidden_layers": [256, 256]},
        "optimizer": {"learning_rate": 0.003},
        "training": {"epochs": 200, "batch_size": 32, "validation_fraction": 0.3},
    },
    "parameters": {
        "regularization.l1": {"values": [0, 0.0001]},
        "regularization.l2": {"values": [0, 0.001, 0.01]},
        "regularization.dropout": {"values": [0, 0.5]},
    },
    "strategy": "grid",
    "max_concurrent_trials": 2,
    "objective": {"metric": "val_loss", "mode": "min"},
}


def run(sweep: dict[str, Any], workers: int) -> tuple[float, dict[str, Any]]:
    """Wall seconds from POST to the sweep's end, and the final sweep view."""
    service = Service(Path(tempfile.mkdtemp(prefix="trainapi-sweep-")), threads=blas_threads(workers))
    service.start(workers=workers)
    try:
        with httpx.Client(base_url=service.url, timeout=60) as api:
            started = time.monotonic()
            sweep_id = api.post("/v1/sweeps", json=sweep).json()["id"]
            while True:
                view = api.get(f"/v1/sweeps/{sweep_id}").json()
                if view["status"] in ("succeeded", "failed", "cancelled"):
                    return time.monotonic() - started, view
                time.sleep(0.05)
    finally:
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--example", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sweep = json.loads(json.dumps(SWEEP))
    if args.quick:
        sweep["parameters"] = {
            "regularization.l2": {"values": [0, 1e-3]},
            "regularization.dropout": {"values": [0, 0.2]},
        }
        sweep["base"]["training"]["epochs"] = 3
    one, view_one = run(sweep, 1)
    two, view_two = run(sweep, 2)
    # float32 GEMMs round differently with another BLAS thread count, so compare objectives, not bits.
    by_params = {json.dumps(t["parameters"], sort_keys=True): t["objective"] for t in view_one["leaderboard"]}
    drift = max(
        abs(by_params[json.dumps(t["parameters"], sort_keys=True)] - t["objective"]) for t in view_two["leaderboard"]
    )
    print(f"machine: {os.cpu_count()} cores; sweep: {view_one['n_trials']} trials, max_concurrent_trials 2\n")
    print("| workers | BLAS threads each | wall seconds | trials succeeded |")
    print("| ---: | ---: | ---: | ---: |")
    print(f"| 1 | {blas_threads(1)} | {one:.2f} | {view_one['counts'].get('succeeded', 0)} |")
    print(f"| 2 | {blas_threads(2)} | {two:.2f} | {view_two['counts'].get('succeeded', 0)} |")
    print(f"\nspeed-up with 2 workers: {one / two:.2f}x (target >= 1.7x); largest objective difference: {drift:.2e}")
    results: dict[str, Any] = {"one_worker_s": one, "two_workers_s": two, "speedup": one / two}
    if args.example:
        seconds, view = run(EXAMPLE, 2)
        print(f"\nREADME example ({view['n_trials']} trials, {seconds:.1f} s with 2 workers):\n")
        print("| rank | l1 | l2 | dropout | best val_loss | best epoch | val - train loss at best |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for rank, row in enumerate(view["leaderboard"], start=1):
            p = row["parameters"]
            print(
                f"| {rank} | {p['regularization.l1']:g} | {p['regularization.l2']:g} | {p['regularization.dropout']:g}"
                f" | {row['objective']:.4f} | {row['best_epoch']} | {row['train_val_gap']:.4f} |"
            )
        results["example"] = view
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
