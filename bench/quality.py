"""Quality on the built-in datasets: the engine next to scikit-learn on the very same split.

Usage::

    python bench/quality.py              # every case, seed 0; prints markdown tables
    python bench/quality.py --seed 3     # another split (and other initial weights)

Every case trains the engine on a built-in dataset with its own seeded,
stratified split, holding out 20% of the rows as a test set
(``training.test_fraction = 0.2``) and no validation rows, then fits
scikit-learn's reference model on exactly the engine's training rows
(``result.data.X_train``, standardized with training statistics, and the
engine's encoded labels) and scores both on the engine's test rows. Both
therefore see identical data; only the learning algorithms differ.

Cases
-----
digits / MLP
    ``[512]`` relu, hidden dropout 0.4, input dropout 0.2, L2 1e-4, Adam lr
    1e-3 with cosine annealing, batch 64, 150 epochs (float32, the MLP
    default). Reference: ``MLPClassifier(hidden_layer_sizes=(512,))`` with its
    defaults (Adam lr 1e-3, alpha 1e-4, batch 200, up to 500 iterations).
breast_cancer, iris, wine / logistic
    The objective of ``LogisticRegression()`` (C = 1): ``l2 = 1 / (2 n)``, n
    the number of training rows; full-batch SGD with Nesterov momentum, run to
    convergence. Reference: ``LogisticRegression(C=1, tol=1e-10, max_iter=10000)``
    (lbfgs; the default C, a tight tolerance so both reach the same optimum).
diabetes / linear
    Unregularized least squares, full-batch SGD with Nesterov momentum.
    Reference: ``LinearRegression()``.

The over-fitting demo trains a wide MLP (``[256, 256]``, 500 epochs, batch
32) on 200 noisy ``moons`` points with and without regularization (dropout
0.5 and L2 1e-3) and compares the final train/validation loss gap.

All numbers are deterministic for a given seed (timings are not printed), so
the tables can be pasted into documentation and regenerated exactly. BLAS runs
single-threaded: float32 matrix products may round differently with another
thread count, and a busy machine cannot stall spinning BLAS threads.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits  # installed with scikit-learn

REPO_ROOT = Path(__file__).resolve().parents[1]
# Run from a checkout without installing: the repository root holds the packages.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from engine import TrainResult, TrainSpec, load_builtin, train  # noqa: E402
from engine.preprocessing import prepare  # noqa: E402

SEED = 0
TEST_FRACTION = 0.2

SpecFactory = Callable[[int], dict[str, Any]]
ReferenceFactory = Callable[[int], Any]


def _logistic_spec(n_train: int) -> dict[str, Any]:
    """Logistic regression with scikit-learn's default penalty (C = 1 means l2 = 1 / (2 n))."""
    return {
        "model": {"type": "logistic"},
        "regularization": {"l2": 1.0 / (2.0 * n_train)},
        # Standardized features: the curvature is at most 1/4 (sigmoid) or 1/2 (softmax) times
        # lambda_max(A'A / n), A = [X, 1]; that is below 3.5 on these datasets, so lr 0.25 < 1/L.
        # Nesterov momentum makes 2000 full-batch epochs plenty.
        "optimizer": {"name": "sgd", "learning_rate": 0.25, "momentum": 0.95, "nesterov": True},
        "training": {
            "epochs": 2000,
            "batch_size": n_train,
            "validation_fraction": 0.0,
            "test_fraction": TEST_FRACTION,
            "dtype": "float64",
        },
    }


def _linear_spec(n_train: int) -> dict[str, Any]:
    """Ordinary least squares (standardized features and target)."""
    return {
        "model": {"type": "linear"},
        # The MSE curvature is 2 * lambda_max(A'A / n), A = [X, 1]: about 7.9 for standardized diabetes.
        "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.95, "nesterov": True},
        "training": {
            "epochs": 3000,
            "batch_size": n_train,
            "validation_fraction": 0.0,
            "test_fraction": TEST_FRACTION,
            "dtype": "float64",
        },
    }


DIGITS_HIDDEN = (512,)


def _digits_spec(n_train: int) -> dict[str, Any]:
    return {
        "model": {"type": "mlp", "hidden_layers": list(DIGITS_HIDDEN), "activation": "relu"},
        "regularization": {"l2": 1e-4, "dropout": 0.4, "input_dropout": 0.2},
        "optimizer": {"name": "adam", "learning_rate": 1e-3},
        "lr_schedule": {"name": "cosine"},
        "training": {
            "epochs": 150,
            "batch_size": 64,
            "validation_fraction": 0.0,
            "test_fraction": TEST_FRACTION,
        },
    }


def _mlp_reference(n_train: int) -> Any:
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=DIGITS_HIDDEN, random_state=0, max_iter=500)


def _logistic_reference(n_train: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    # C = 1 is the default; the tight tolerance makes lbfgs land on the optimum the engine reaches.
    return LogisticRegression(C=1.0, tol=1e-10, max_iter=10000)


def _linear_reference(n_train: int) -> Any:
    from sklearn.linear_model import LinearRegression

    return LinearRegression()


@dataclass(frozen=True)
class Case:
    """One engine job and the scikit-learn model it is compared with."""

    name: str
    dataset: str
    model: str  # the engine model, for the table
    reference: str  # the scikit-learn model, for the table
    metric: str  # "accuracy" or "r2", on the test split
    spec: SpecFactory  # number of training rows -> engine spec dict
    make_reference: ReferenceFactory  # number of training rows -> unfitted estimator


CASES: tuple[Case, ...] = (
    Case(
        "digits-mlp",
        "digits",
        "MLP [512], dropout 0.4/0.2, L2 1e-4, Adam",
        "MLPClassifier((512,))",
        "accuracy",
        _digits_spec,
        _mlp_reference,
    ),
    Case(
        "breast_cancer-logistic",
        "breast_cancer",
        "logistic, l2 = 1/(2n)",
        "LogisticRegression(C=1, tol=1e-10)",
        "accuracy",
        _logistic_spec,
        _logistic_reference,
    ),
    Case(
        "iris-logistic",
        "iris",
        "logistic (softmax), l2 = 1/(2n)",
        "LogisticRegression(C=1, tol=1e-10)",
        "accuracy",
        _logistic_spec,
        _logistic_reference,
    ),
    Case(
        "wine-logistic",
        "wine",
        "logistic (softmax), l2 = 1/(2n)",
        "LogisticRegression(C=1, tol=1e-10)",
        "accuracy",
        _logistic_spec,
        _logistic_reference,
    ),
    Case(
        "diabetes-linear",
        "diabetes",
        "linear, no penalty",
        "LinearRegression()",
        "r2",
        _linear_spec,
        _linear_reference,
    ),
)
CASES_BY_NAME: dict[str, Case] = {case.name: case for case in CASES}


@dataclass(frozen=True)
class Outcome:
    """Test metrics of the engine and of the reference on the same split."""

    case: Case
    engine: float
    sklearn: float
    max_param_diff: float | None  # linear models only: max |engine - sklearn| over coefficients and intercepts
    result: TrainResult

    @property
    def difference(self) -> float:
        return self.engine - self.sklearn


def n_train_rows(dataset: str, seed: int = SEED) -> int:
    """Rows in the engine's training split (no validation rows, 20% test rows)."""
    data = prepare(load_builtin(dataset), "auto", 0.0, TEST_FRACTION, False, seed, "float64")
    return len(data.y_train)


def run_case(case: Case, seed: int = SEED) -> Outcome:
    """Train the engine job, fit the reference on the engine's training split, score both on its test split."""
    n = n_train_rows(case.dataset, seed)
    spec_dict = case.spec(n)
    spec_dict["training"]["seed"] = seed
    with threadpool_limits(limits=1, user_api="blas"):
        result = train(TrainSpec.from_dict(spec_dict), load_builtin(case.dataset))
    data = result.data
    assert len(data.y_train) == n and len(data.y_val) == 0
    assert result.test_metrics is not None
    X_train, X_test = data.X_train.astype(np.float64), data.X_test.astype(np.float64)
    reference = case.make_reference(n)
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLPClassifier may stop at max_iter with a ConvergenceWarning
        reference.fit(X_train, data.y_train)
    # score(): accuracy for classifiers, R^2 for regressors (affine-invariant, so standardized y is fine).
    sk_metric = float(reference.score(X_test, data.y_test))
    max_diff = None
    if hasattr(reference, "coef_"):
        coef = np.atleast_2d(reference.coef_)
        intercept = np.atleast_1d(reference.intercept_)
        w, b = result.network.weights[0], result.network.biases[0]
        # Softmax intercepts are identified only up to a common shift: compare them centred.
        if len(b) > 1:
            b, intercept = b - b.mean(), intercept - intercept.mean()
        max_diff = float(max(np.abs(w - coef).max(), np.abs(b - intercept).max()))
    return Outcome(case, float(result.test_metrics[case.metric]), sk_metric, max_diff, result)


# -- over-fitting demo -----------------------------------------------------------

MOONS_ROWS = 200
OVERFIT_REGULARIZATION: dict[str, float] = {"dropout": 0.5, "l2": 1e-3}


def overfit_spec(regularization: dict[str, float]) -> dict[str, Any]:
    """A wide MLP trained long on a small noisy dataset, with the given regularization."""
    return {
        "model": {"type": "mlp", "hidden_layers": [256, 256], "activation": "relu"},
        "regularization": dict(regularization),
        "optimizer": {"name": "adam", "learning_rate": 1e-3},
        "training": {
            "epochs": 500,
            "batch_size": 32,
            "validation_fraction": 0.2,
            "test_fraction": TEST_FRACTION,
        },
    }


@dataclass(frozen=True)
class OverfitOutcome:
    label: str
    train_loss: float
    val_loss: float
    train_accuracy: float
    val_accuracy: float
    test_accuracy: float

    @property
    def gap(self) -> float:
        """Validation loss minus training loss at the final epoch."""
        return self.val_loss - self.train_loss


def run_overfit(regularization: dict[str, float], label: str, seed: int = SEED) -> OverfitOutcome:
    """Train the over-fitting demo network on ``moons`` and report its final losses."""
    spec_dict = overfit_spec(regularization)
    spec_dict["training"]["seed"] = seed
    dataset = load_builtin("moons", seed=seed)
    assert dataset.n_samples == MOONS_ROWS
    with threadpool_limits(limits=1, user_api="blas"):
        result = train(TrainSpec.from_dict(spec_dict), dataset)
    last = result.history[-1]
    assert result.test_metrics is not None
    return OverfitOutcome(
        label,
        float(last["train_loss"]),
        float(last["val_loss"]),
        float(last["accuracy"]),
        float(last["val_accuracy"]),
        float(result.test_metrics["accuracy"]),
    )


def run_overfit_pair(seed: int = SEED) -> tuple[OverfitOutcome, OverfitOutcome]:
    """The demo network without and with regularization."""
    plain = run_overfit({}, "none", seed)
    reg = ", ".join(f"{key} {value:g}" for key, value in OVERFIT_REGULARIZATION.items())
    regularized = run_overfit(OVERFIT_REGULARIZATION, reg, seed)
    return plain, regularized


# -- report ------------------------------------------------------------------------


def comparison_table(outcomes: list[Outcome]) -> str:
    lines = [
        "| dataset | engine model | scikit-learn reference | test metric | engine | scikit-learn | difference |"
        " max abs Δ params |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        diff = "n/a" if o.max_param_diff is None else f"{o.max_param_diff:.1e}"
        lines.append(
            f"| {o.case.dataset} | {o.case.model} | {o.case.reference} | {o.case.metric} "
            f"| {o.engine:.4f} | {o.sklearn:.4f} | {o.difference:+.4f} | {diff} |"
        )
    return "\n".join(lines)


def overfit_table(plain: OverfitOutcome, regularized: OverfitOutcome) -> str:
    lines = [
        "| moons, MLP [256, 256] | train loss | val loss | gap (val - train) | train acc | val acc | test acc |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for o in (plain, regularized):
        lines.append(
            f"| {o.label} | {o.train_loss:.3f} | {o.val_loss:.3f} | {o.gap:.3f} "
            f"| {o.train_accuracy:.3f} | {o.val_accuracy:.3f} | {o.test_accuracy:.3f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=SEED, help="split and initialization seed (default 0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    outcomes = [run_case(case, args.seed) for case in CASES]
    print(f"Test split: 20% held out by the engine's seeded stratified split (seed {args.seed}).\n")
    print(comparison_table(outcomes))
    plain, regularized = run_overfit_pair(args.seed)
    print()
    print(overfit_table(plain, regularized))
    narrower = 1.0 - regularized.gap / plain.gap
    print(f"\nRegularization narrows the final train/validation loss gap by {narrower:.0%}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
