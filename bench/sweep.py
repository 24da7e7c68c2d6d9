"""Sweeps: wall time with one worker and with two on the real service, and TPE against random search.

Usage::

    python bench/sweep.py              # the 16-trial sweep with 1 worker, then 2 workers; prints the speed-up
    python bench/sweep.py --example    # also runs docs/sweeps.md's l1 x l2 x dropout sweep: leaderboard, importance
    python bench/sweep.py --quick      # 4 trials, for a smoke test
    python bench/sweep.py --search     # TPE vs random: 40 trials each, 5 seeds, in-process (a few minutes)

Each wall-time configuration runs as ``trainapi serve --workers N`` would:
with one worker its training uses every core's BLAS threads, with two each
worker gets half, so the comparison is what an operator gets by adding a
worker.

``--search`` compares the strategies' choices, not the service: it runs each
trial with ``engine.train`` in this process, one at a time (a sweep with
``max_concurrent_trials: 1``), with the service's own code choosing the
parameters — ``api.search_space.trial_parameters`` for random,
``store.search.ask`` for TPE — and the objective the leaderboard ranks by
(the best validation loss over the epochs). The training seed is fixed, so a
configuration always scores the same; the sweep seed varies.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
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


SEARCH: dict[str, Any] = {
    "name": "bench-search",
    "base": {
        "dataset": "digits",
        "model": {"type": "mlp", "hidden_layers": [64]},
        "training": {"epochs": 20, "batch_size": 64, "seed": 0},
    },
    "parameters": {
        "optimizer.learning_rate": {"distribution": "log_uniform", "low": 1e-4, "high": 1e-1},
        "regularization.l2": {"distribution": "log_uniform", "low": 1e-6, "high": 1e-1},
        "regularization.dropout": {"distribution": "uniform", "low": 0.0, "high": 0.5},
        "model.hidden_layers.0": {"distribution": "int_uniform", "low": 16, "high": 256},
    },
    "max_trials": 40,
    "max_concurrent_trials": 1,
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
                    seconds = time.monotonic() - started
                    break
                time.sleep(0.05)
            # Importance follows from the maintenance thread within seconds of the last success.
            deadline = time.monotonic() + 30
            while view["counts"].get("succeeded", 0) >= 8 and view["importance"] is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
                view = api.get(f"/v1/sweeps/{sweep_id}").json()
            return seconds, view
    finally:
        service.stop()


def search_run(strategy: str, seed: int, sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """One sweep with ``max_concurrent_trials: 1``, trained in-process; the trial records in order."""
    import engine
    from api.schemas.sweeps import SweepCreate
    from api.search_space import trial_parameters
    from store import search
    from store.jobspec import JobSpec
    from worker import pruning

    spec = {**sweep, "strategy": strategy, "seed": seed}
    spec["base"] = JobSpec.model_validate(spec["base"]).normalized()  # as the API stores it
    dataset = engine.load_builtin(spec["base"]["dataset"], seed=0)
    planned = trial_parameters(SweepCreate.model_validate(spec)) if strategy == "random" else None
    trials: list[dict[str, Any]] = []
    for slot in range(spec["max_trials"]):
        params = planned[slot] if planned is not None else search.ask(spec, trials, [slot])[0]
        job = JobSpec.model_validate(search.apply(spec["base"], params))
        started = time.perf_counter()
        try:
            result = engine.train(job.engine_spec(), dataset)
            cost, best_epoch = pruning.best_so_far(result.history, "val_loss", True)
            status, objective = "succeeded", cost if math.isfinite(cost) else None
        except engine.EngineError:
            status, objective, best_epoch = "failed", None, None
        trials.append(
            {
                "parameters": params,
                "status": status if objective is not None else "failed",
                "best": {"objective": objective, "epoch": best_epoch},
                "epochs_run": spec["base"]["training"]["epochs"],
                "seconds": time.perf_counter() - started,
            }
        )
    return trials


def median_objective(trials: list[dict[str, Any]]) -> float:
    """The median trial's objective (a failed trial counts as the worst)."""
    return statistics.median(math.inf if t["best"]["objective"] is None else t["best"]["objective"] for t in trials)


def running_best(trials: list[dict[str, Any]]) -> list[float]:
    """The best objective after each trial (inf until one succeeds)."""
    best, out = math.inf, []
    for trial in trials:
        value = trial["best"]["objective"]
        best = min(best, value) if value is not None else best
        out.append(best)
    return out


def search_bench(seeds: int, trials: int, epochs: int, first_seed: int = 0) -> dict[str, Any]:
    """TPE against random search on the SEARCH space: per seed, the best, and TPE's trials to random's best."""
    from store import search

    sweep = json.loads(json.dumps(SEARCH))
    sweep["max_trials"] = trials
    sweep["base"]["training"]["epochs"] = epochs
    print(f"machine: {os.cpu_count()} cores; digits MLP, {epochs} epochs, {trials} trials per strategy, {seeds} seeds")
    print("space: " + ", ".join(f"{name} {p}" for name, p in sweep["parameters"].items()) + "\n")
    rows, runs = [], {}
    started = time.perf_counter()
    for seed in range(first_seed, first_seed + seeds):
        random_trials = search_run("random", seed, sweep)
        tpe_trials = search_run("tpe", seed, sweep)
        runs[seed] = {"random": random_trials, "tpe": tpe_trials}
        random_curve, tpe_curve = running_best(random_trials), running_best(tpe_trials)
        target = random_curve[-1]
        reach = next((i + 1 for i, value in enumerate(tpe_curve) if value <= target), None)
        rows.append(
            {
                "seed": seed,
                "random_best": target,
                "random_best_at": random_curve.index(target) + 1,
                "tpe_best": tpe_curve[-1],
                "tpe_best_at": tpe_curve.index(tpe_curve[-1]) + 1,
                "tpe_wins": tpe_curve[-1] < target,
                "random_median": median_objective(random_trials),
                "tpe_median": median_objective(tpe_trials),
                "tpe_trials_to_random_best": reach,
            }
        )
        print(f"seed {seed}: random {target:.4f}, tpe {tpe_curve[-1]:.4f} ({time.perf_counter() - started:.0f} s)")
    print("\n| seed | random: best val_loss (at trial) | TPE: best val_loss (at trial) | TPE better | "
          "TPE trials to reach random's best | median trial: random / TPE |")  # fmt: skip
    print("| ---: | ---: | ---: | :---: | ---: | ---: |")
    for row in rows:
        reach = row["tpe_trials_to_random_best"]
        print(
            f"| {row['seed']} | {row['random_best']:.4f} ({row['random_best_at']}) | {row['tpe_best']:.4f} "
            f"({row['tpe_best_at']}) | {'yes' if row['tpe_wins'] else 'no'} | {reach if reach else f'> {trials}'} "
            f"| {row['random_median']:.4f} / {row['tpe_median']:.4f} |"
        )
    wins = sum(row["tpe_wins"] for row in rows)
    reached = [row["tpe_trials_to_random_best"] or trials + 1 for row in rows]
    print(
        f"\nTPE better in {wins} of {seeds} seeds; TPE reaches random's {trials}-trial best in "
        f"{statistics.mean(reached):.1f} trials on average (a seed where it never does counts {trials + 1}); "
        f"random needed {statistics.mean(row['random_best_at'] for row in rows):.1f} to reach its own best"
    )
    importance = {
        strategy: [search.importance(sweep, runs[seed][strategy]) for seed in runs] for strategy in ("random", "tpe")
    }
    print("\nimportance (the sweep view's shares over each sweep's trials), mean over seeds:\n")
    print("| parameter | random | TPE | ranked first (random / TPE) |")
    print("| --- | ---: | ---: | ---: |")
    for name in sweep["parameters"]:
        cells, firsts = [], []
        for strategy in ("random", "tpe"):
            shares = [s for s in importance[strategy] if s]
            cells.append(f"{statistics.mean(s[name] for s in shares):.3f}" if shares else "—")
            firsts.append(str(sum(next(iter(s)) == name for s in shares)))
        print(f"| {name} | {cells[0]} | {cells[1]} | {' / '.join(firsts)} of {seeds} |")
    seconds = sum(t["seconds"] for r in runs.values() for ts in r.values() for t in ts)
    print(f"\ntraining time {seconds:.0f} s; total {time.perf_counter() - started:.0f} s")
    return {"rows": rows, "importance": importance, "runs": runs}


def wall_time(quick: bool) -> dict[str, Any]:
    """The SWEEP grid with one worker, then two: wall seconds and the speed-up."""
    sweep = json.loads(json.dumps(SWEEP))
    if quick:
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
    return results


def example() -> dict[str, Any]:
    """docs/sweeps.md's worked example on two workers: its leaderboard and importance."""
    seconds, view = run(EXAMPLE, 2)
    print(f"\ndocs/sweeps.md example ({view['n_trials']} trials, {seconds:.1f} s with 2 workers):\n")
    print("| rank | l1 | l2 | dropout | best val_loss | best epoch | val - train loss at best |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for rank, row in enumerate(view["leaderboard"], start=1):
        p = row["parameters"]
        print(
            f"| {rank} | {p['regularization.l1']:g} | {p['regularization.l2']:g} | {p['regularization.dropout']:g}"
            f" | {row['objective']:.4f} | {row['best_epoch']} | {row['train_val_gap']:.4f} |"
        )
    if view.get("importance"):
        print("\nimportance: " + ", ".join(f"{name} {share:.2f}" for name, share in view["importance"].items()))
    return view


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--example", action="store_true")
    parser.add_argument("--example-only", action="store_true", help="only the documented example, no wall-time runs")
    parser.add_argument("--search", action="store_true", help="TPE vs random search, in-process")
    parser.add_argument("--seeds", type=int, default=5, help="--search: sweep seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="--search: the first sweep seed (then +1, +2, ...)")
    parser.add_argument("--trials", type=int, default=40, help="--search: trials per strategy and seed")
    parser.add_argument("--epochs", type=int, default=20, help="--search: epochs per trial")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.search:
        results = search_bench(args.seeds, args.trials, args.epochs, args.first_seed)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return
    results: dict[str, Any] = {} if args.example_only else wall_time(args.quick)
    if args.example or args.example_only:
        results["example"] = example()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
