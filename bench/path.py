"""Benchmark: a lasso path with k-fold cross-validation, engine.paths against R's cv.glmnet.

Usage::

    python bench/path.py                 # 100,000 x 100, 100 λ, 10 folds, 3 repeats: about 2 minutes
    python bench/path.py --quick         # 5,000 x 20, 2 repeats: a smoke run
    python bench/path.py --json out.json # also write every measurement as JSON

Both sides get the same float64 data and fold ids in the same run; glmnet
runs through ``bench/glmnet_path.R`` and is timed inside R around the
``glmnet`` / ``cv.glmnet`` call (R's start-up and the data read excluded).
Each repeat runs ours, then glmnet; the best of the repeats is compared.
Cases:

fit
    ``fit_path`` vs ``glmnet()``, each making its own 100-λ sequence (glmnet
    stops early once the deviance explained stalls; we always solve every λ).
cv, own sequences
    ``cv_path`` vs ``cv.glmnet(foldid=)``, defaults (glmnet's thresh 1e-7).
cv, same λ
    glmnet given our sequence, at thresh 1e-7 (its default) and 1e-14 (near
    our default KKT tolerance of 1e-10·sd(y)); the table also gives how far
    the two answers are apart.

The data: rows N(0, Σ) with Σ_ij = 0.5^|i-j| (AR(1)-correlated features),
20 nonzero true coefficients, noise sd 3, seeded. No timing is a test; the
ratio is printed with the machine's load (os.getloadavg) before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path as FilePath
from typing import Any

import numpy as np

REPO_ROOT = FilePath(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from engine.paths import cv_path, fit_path  # noqa: E402

SCRIPT = REPO_ROOT / "bench" / "glmnet_path.R"


def make_data(rows: int, features: int, folds: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlated features, a sparse linear target and shuffled fold ids 1..folds."""
    rng = np.random.default_rng(seed)
    X = np.empty((rows, features))
    X[:, 0] = rng.normal(size=rows)
    for j in range(1, features):  # AR(1) across columns: corr(x_i, x_j) = 0.5^|i-j|
        X[:, j] = 0.5 * X[:, j - 1] + np.sqrt(1 - 0.25) * rng.normal(size=rows)
    beta = np.zeros(features)
    beta[rng.choice(features, size=min(20, features), replace=False)] = rng.normal(size=min(20, features))
    y = X @ beta + 3.0 * rng.normal(size=rows)
    fold_ids = rng.permutation(np.arange(rows) % folds) + 1
    return X, y, fold_ids


class Glmnet:
    """Runs bench/glmnet_path.R on data written once to a temporary directory."""

    def __init__(self, X: np.ndarray, y: np.ndarray, folds: np.ndarray) -> None:
        self.dir = FilePath(tempfile.mkdtemp(prefix="glmnet-bench-"))
        self.n, self.p = X.shape
        np.asarray(X, dtype="<f8").T.tofile(self.dir / "x.bin")
        np.asarray(y, dtype="<f8").tofile(self.dir / "y.bin")
        np.asarray(folds, dtype="<f8").tofile(self.dir / "foldid.bin")

    def run(self, *, lambdas: np.ndarray | None, cv: bool, thresh: float, n_lambda: int) -> dict[str, Any]:
        lam_file = self.dir / "lambda.bin"
        if lambdas is None:
            lam_file.unlink(missing_ok=True)
        else:
            np.asarray(lambdas, dtype="<f8").tofile(lam_file)
        options = {
            "n": self.n, "p": self.p, "family": "gaussian", "alpha": 1.0, "nlambda": n_lambda,
            "lambda_min_ratio": None, "thresh": thresh, "standardize": True, "intercept": True,
            "type_measure": "mse", "fit": not cv, "cv": cv, "repeats": 1,
        }  # fmt: skip
        (self.dir / "options.json").write_text(json.dumps(options))
        done = subprocess.run(["Rscript", str(SCRIPT), str(self.dir)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        out: dict[str, Any] = json.loads((self.dir / "out.json").read_text())
        out["seconds"] = float(np.min(out["cv_seconds" if cv else "fit_seconds"]))
        return out

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _timed(call: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def agreement_cv(ours: Any, theirs: dict[str, Any]) -> str:
    """How far cv.glmnet's curve and coefficients are from ours (same λ only)."""
    cvm = float(np.max(np.abs(np.asarray(theirs["cvm"]) / ours.cvm - 1.0)))
    cvsd = float(np.max(np.abs(np.asarray(theirs["cvsd"]) / ours.cvsd - 1.0)))
    same = ours.index_min == theirs["index_min"] - 1 and ours.index_1se == theirs["index_1se"] - 1
    return f"cvm {cvm:.1e}, cvsd {cvsd:.1e}, λ_min/λ_1se {'equal' if same else 'DIFFER'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--lambdas", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="5,000 x 20, 2 repeats")
    parser.add_argument("--json", type=FilePath, help="write the measurements here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.features, args.repeats = 5_000, 20, 2
    if shutil.which("Rscript") is None:
        print("Rscript is not installed (apt-get install r-cran-glmnet r-cran-jsonlite)", file=sys.stderr)
        return 2

    load_before = os.getloadavg()
    X, y, folds = make_data(args.rows, args.features, args.folds)
    glmnet = Glmnet(X, y, folds)
    lambdas = fit_path(X, y, n_lambda=args.lambdas, tol=1e-3).lambdas  # our sequence, for the same-λ cases
    cases: dict[str, dict[str, Any]] = {
        "fit: path, own sequences": {"ours": [], "glmnet": []},
        "cv: own sequences, glmnet thresh 1e-7": {"ours": [], "glmnet": []},
        "cv: same λ, glmnet thresh 1e-7": {"ours": [], "glmnet": []},
        "cv: same λ, glmnet thresh 1e-14": {"ours": [], "glmnet": []},
    }
    last: dict[str, tuple[Any, dict[str, Any]]] = {}
    try:
        for _ in range(args.repeats):
            seconds, ours = _timed(lambda: fit_path(X, y, n_lambda=args.lambdas))
            theirs = glmnet.run(lambdas=None, cv=False, thresh=1e-7, n_lambda=args.lambdas)
            cases["fit: path, own sequences"]["ours"].append(seconds)
            cases["fit: path, own sequences"]["glmnet"].append(theirs["seconds"])
            last["fit: path, own sequences"] = (ours, theirs)

            seconds, ours = _timed(lambda: cv_path(X, y, folds, n_lambda=args.lambdas))
            theirs = glmnet.run(lambdas=None, cv=True, thresh=1e-7, n_lambda=args.lambdas)
            cases["cv: own sequences, glmnet thresh 1e-7"]["ours"].append(seconds)
            cases["cv: own sequences, glmnet thresh 1e-7"]["glmnet"].append(theirs["seconds"])
            last["cv: own sequences, glmnet thresh 1e-7"] = (ours, theirs)

            seconds, ours = _timed(lambda: cv_path(X, y, folds, lambdas=lambdas))
            for thresh in (1e-7, 1e-14):
                name = f"cv: same λ, glmnet thresh {thresh:.0e}".replace("e-0", "e-")
                theirs = glmnet.run(lambdas=lambdas, cv=True, thresh=thresh, n_lambda=args.lambdas)
                cases[name]["ours"].append(seconds)
                cases[name]["glmnet"].append(theirs["seconds"])
                last[name] = (ours, theirs)
    finally:
        glmnet.close()
    load_after = os.getloadavg()

    rows = []
    for name, times in cases.items():
        ours, theirs = last[name]
        best_ours, best_glmnet = min(times["ours"]), min(times["glmnet"])
        if name.startswith("fit"):
            detail = f"λ: ours {len(ours.lambdas)}, glmnet {len(theirs['lambda'])}"
        elif "own" in name:
            detail = (
                f"λ: ours {len(ours.lambdas)}, glmnet {len(theirs['cv_lambda'])}; "
                f"λ_1se ours {ours.lambda_1se:.4g}, glmnet {theirs['lambda_1se']:.4g}"
            )
        else:
            detail = agreement_cv(ours, theirs)
        rows.append((name, best_ours, best_glmnet, best_glmnet / best_ours, detail))

    print(
        f"\n{args.rows:,} rows x {args.features} features, lasso, {args.lambdas} λ, {args.folds} folds; "
        f"best of {args.repeats}; {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"NumPy {np.__version__}, glmnet {last['fit: path, own sequences'][1]['glmnet_version']}"
    )
    print(f"load average (1, 5, 15 min): before {_load(load_before)}, after {_load(load_after)}\n")
    header = ("case", "ours (s)", "glmnet (s)", "glmnet / ours", "notes")
    widths = [max(len(header[0]), *(len(r[0]) for r in rows)), 9, 10, 13]
    print(f"| {header[0]:<{widths[0]}} | {header[1]:>9} | {header[2]:>10} | {header[3]:>13} | {header[4]}")
    print(f"|{'-' * (widths[0] + 2)}|{'-' * 11}|{'-' * 12}|{'-' * 15}|------")
    for name, a, b, ratio, detail in rows:
        print(f"| {name:<{widths[0]}} | {a:9.3f} | {b:10.3f} | {ratio:12.2f}x | {detail}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": args.rows,
                    "features": args.features,
                    "folds": args.folds,
                    "lambdas": args.lambdas,
                    "load_before": load_before,
                    "load_after": load_after,
                    "cases": {name: cases[name] for name in cases},
                },
                indent=2,
            )
        )
    return 0


def _load(load: tuple[float, float, float]) -> str:
    return ", ".join(f"{x:.2f}" for x in load)


if __name__ == "__main__":
    raise SystemExit(main())
