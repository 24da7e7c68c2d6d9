"""Acceptance: quality on the built-in datasets, next to scikit-learn on the same split.

The cases (engine specs and reference models) are those of ``bench/quality.py``,
loaded from that file so the test and the published table cannot drift apart.
Each case holds out 20% of the rows with the engine's seeded, stratified split;
scikit-learn fits the engine's (standardized) training rows and is scored on
the same test rows. These assert quality, never timing.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from engine import export, load_builtin
from engine.preprocessing import encode_labels, split_indices

BENCH_FILE = Path(__file__).resolve().parents[2] / "bench" / "quality.py"


def _load_bench() -> ModuleType:
    name = "trainapi_bench_quality"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


quality = _load_bench()


@functools.cache
def outcome(name: str) -> Any:
    """The bench's run of one case at its default seed (each case trains once per session)."""
    return quality.run_case(quality.CASES_BY_NAME[name])


def test_every_case_has_an_acceptance_test() -> None:
    assert set(quality.CASES_BY_NAME) == {
        "digits-mlp",
        "breast_cancer-logistic",
        "iris-logistic",
        "wine-logistic",
        "diabetes-linear",
    }


def test_digits_mlp_reaches_97_percent_and_matches_mlpclassifier() -> None:
    o = outcome("digits-mlp")
    assert o.result.test_metrics is not None
    assert len(o.result.data.y_test) == 359  # round(0.2 * rows) of each digit
    assert o.engine >= 0.97, f"engine test accuracy {o.engine:.4f}"
    assert o.engine >= o.sklearn, f"engine {o.engine:.4f} below MLPClassifier {o.sklearn:.4f}"


@pytest.mark.parametrize("name", ["breast_cancer-logistic", "iris-logistic", "wine-logistic"])
def test_logistic_not_below_sklearn(name: str) -> None:
    o = outcome(name)
    assert o.engine >= o.sklearn - 0.01, f"engine {o.engine:.4f} vs LogisticRegression {o.sklearn:.4f}"
    # Same objective (C = 1 is l2 = 1/(2n)), so the same coefficients, not just a similar score.
    assert o.max_param_diff is not None and o.max_param_diff < 1e-4


def test_diabetes_linear_r2_matches_linear_regression() -> None:
    o = outcome("diabetes-linear")
    assert abs(o.engine - o.sklearn) <= 0.01, f"engine r2 {o.engine:.4f} vs LinearRegression {o.sklearn:.4f}"
    assert o.max_param_diff is not None and o.max_param_diff < 1e-6


@pytest.mark.parametrize(("name", "metric"), [("breast_cancer-logistic", "accuracy"), ("diabetes-linear", "r2")])
def test_exported_model_scores_the_same_on_raw_test_rows(name: str, metric: str) -> None:
    """The test metric is what a downloaded model gives on the raw held-out rows."""
    o = outcome(name)
    result = o.result
    dataset = load_builtin(o.case.dataset)
    labels = encode_labels(dataset.y)[0] if result.data.task == "classification" else None
    _, _, test_rows = split_indices(len(dataset.y), labels, 0.0, quality.TEST_FRACTION, quality.SEED)
    predictions = export.to_model(result).predict(dataset.X[test_rows])
    truth = dataset.y[test_rows]
    if metric == "accuracy":
        value = float(np.mean(np.asarray(predictions) == truth))
    else:
        residual = truth - np.asarray(predictions)
        value = 1.0 - float(residual @ residual) / float(((truth - truth.mean()) ** 2).sum())
    assert result.test_metrics is not None
    assert value == pytest.approx(result.test_metrics[metric], abs=1e-9)


def test_regularization_narrows_the_overfitting_gap() -> None:
    plain, regularized = quality.run_overfit_pair()
    # Without regularization the wide network memorizes the 120 noisy training points...
    assert plain.train_accuracy >= 0.98
    assert plain.gap > 0.5, f"no over-fitting to speak of: gap {plain.gap:.3f}"
    # ...with dropout and L2 the train/validation loss gap is at least 30% narrower.
    assert regularized.gap <= 0.7 * plain.gap, f"gap {regularized.gap:.3f} vs {plain.gap:.3f} unregularized"
    assert regularized.val_loss < plain.val_loss
