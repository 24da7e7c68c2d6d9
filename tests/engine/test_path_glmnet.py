"""Paths and cross-validation against R's glmnet on the same data, folds and λ values.

Runs ``bench/glmnet_path.R`` with Rscript (skipped when R, glmnet or
jsonlite is missing; CI installs r-cran-glmnet and r-cran-jsonlite). glmnet
is run with ``thresh=1e-20`` so that its own convergence error (about
1e-6 relative at its default-ish 1e-15 on the correlated diabetes columns)
is below the comparison's.

glmnet's gaussian family standardizes y before fitting, which for
``alpha < 1`` divides its ridge term by sd(y); with sd(y) = 1 (1/n) both
objectives coincide, so the ``alpha = 0.5`` gaussian comparison scales y first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path as FilePath
from typing import Any

import numpy as np
import pytest

from engine import load_builtin
from engine.paths import cv_path, fit_path

SCRIPT = FilePath(__file__).resolve().parents[2] / "bench" / "glmnet_path.R"
RTOL = 1e-6
N_LAMBDA = 30


def _glmnet_available() -> str | None:
    if shutil.which("Rscript") is None:
        return "Rscript is not installed (apt-get install r-base-core r-cran-glmnet r-cran-jsonlite)"
    probe = subprocess.run(
        ["Rscript", "-e", "suppressMessages({library(glmnet); library(jsonlite)})"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        return (
            f"R's glmnet or jsonlite is not installed (apt-get install r-cran-glmnet r-cran-jsonlite): {probe.stderr}"
        )
    return None


@pytest.fixture(scope="module")
def glmnet(tmp_path_factory: pytest.TempPathFactory):
    reason = _glmnet_available()
    if reason:
        pytest.skip(reason)
    counter = iter(range(1_000_000))

    def run(X: np.ndarray, y: np.ndarray, *, lambdas=None, folds=None, **options: Any) -> dict[str, Any]:
        work = tmp_path_factory.mktemp(f"glmnet{next(counter)}")
        np.asarray(X, dtype="<f8").T.tofile(work / "x.bin")  # column-major, as R's matrix()
        np.asarray(y, dtype="<f8").tofile(work / "y.bin")
        if lambdas is not None:
            np.asarray(lambdas, dtype="<f8").tofile(work / "lambda.bin")
        if folds is not None:
            np.asarray(folds, dtype="<f8").tofile(work / "foldid.bin")
        settings = {
            "n": X.shape[0],
            "p": X.shape[1],
            "family": "gaussian",
            "alpha": 1.0,
            "nlambda": N_LAMBDA,
            "lambda_min_ratio": None,
            "thresh": 1e-20,
            "standardize": True,
            "intercept": True,
            "type_measure": "default",
            "fit": True,
            "cv": folds is not None,
        } | options
        (work / "options.json").write_text(json.dumps(settings))
        done = subprocess.run(["Rscript", str(SCRIPT), str(work)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return json.loads((work / "out.json").read_text())

    return run


def _coef_relative(path, reference: dict[str, Any]) -> float:
    """The largest norm-relative difference over the path's points past λ_max."""
    beta = np.array(reference["beta"]).T  # (n_lambda, p)
    worst = 0.0
    for i in range(1, len(path.lambdas)):
        worst = max(worst, float(np.linalg.norm(path.coef[i] - beta[i]) / np.linalg.norm(beta[i])))
    return worst


@pytest.fixture(scope="module")
def regression() -> tuple[np.ndarray, np.ndarray]:
    data = load_builtin("diabetes")
    return data.X.astype(np.float64), data.y.astype(np.float64)


@pytest.fixture(scope="module")
def binary() -> tuple[np.ndarray, np.ndarray]:
    """breast_cancer: 569 rows, 30 correlated features; malignant is 1."""
    data = load_builtin("breast_cancer")
    return data.X.astype(np.float64), (data.y == "malignant").astype(np.float64)


def _folds(n: int, k: int = 5) -> np.ndarray:
    return np.random.default_rng(11).permutation(np.arange(n) % k) + 1


def _assert_same_cv(cv, reference: dict[str, Any]) -> None:
    np.testing.assert_allclose(cv.cvm, reference["cvm"], rtol=RTOL)
    np.testing.assert_allclose(cv.cvsd, reference["cvsd"], rtol=1e-5)
    # At λ_max itself glmnet can keep one weight of rounding size (|x_jᵀr/n| and λ·alpha differ in the
    # last bit); the weights there are exactly 0 here, so the counts are compared past it.
    np.testing.assert_array_equal(cv.nzero[1:], reference["nzero"][1:])
    assert np.max(np.abs(np.array(reference["beta"])[:, 0])) < 1e-12 * np.max(np.abs(reference["beta"]))
    assert cv.index_min == reference["index_min"] - 1
    assert cv.index_1se == reference["index_1se"] - 1
    assert cv.lambda_min == pytest.approx(reference["lambda_min"], rel=1e-13)
    assert cv.lambda_1se == pytest.approx(reference["lambda_1se"], rel=1e-13)


def test_the_gaussian_lasso_path_and_its_cross_validation_are_glmnets(glmnet, regression) -> None:
    X, y = regression
    folds = _folds(len(y))
    cv = cv_path(X, y, folds, alpha=1.0, n_lambda=N_LAMBDA)
    reference = glmnet(X, y, lambdas=cv.lambdas, folds=folds, type_measure="mse")
    assert _coef_relative(cv.path, reference) <= RTOL
    np.testing.assert_allclose(cv.path.intercept, reference["a0"], rtol=RTOL)
    np.testing.assert_allclose(cv.path.dev_ratio[1:], reference["dev_ratio"][1:], rtol=1e-6)
    _assert_same_cv(cv, reference)


def test_the_gaussian_elastic_net_path_is_glmnets_for_a_unit_variance_target(glmnet, regression) -> None:
    X, y = regression
    y = (y - y.mean()) / y.std()
    path = fit_path(X, y, alpha=0.5, n_lambda=N_LAMBDA)
    reference = glmnet(X, y, lambdas=path.lambdas, alpha=0.5)
    assert _coef_relative(path, reference) <= RTOL


def test_the_default_sequence_is_glmnets_own(glmnet, regression, binary) -> None:
    for family, (X, y) in (("gaussian", regression), ("binomial", binary)):
        path = fit_path(X, y, family=family, alpha=0.5, n_lambda=N_LAMBDA)
        reference = glmnet(X, y, family=family, alpha=0.5, thresh=1e-7)
        theirs = np.array(reference["lambda"])  # glmnet may stop early: compare what it made
        np.testing.assert_allclose(path.lambdas[: len(theirs)], theirs, rtol=1e-10)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_the_binomial_path_and_its_cross_validation_are_glmnets(glmnet, binary, alpha) -> None:
    X, y = binary
    folds = _folds(len(y))
    cv = cv_path(X, y, folds, family="binomial", alpha=alpha, n_lambda=N_LAMBDA, lambda_min_ratio=1e-2)
    reference = glmnet(X, y, lambdas=cv.lambdas, folds=folds, family="binomial", alpha=alpha, type_measure="deviance")
    assert _coef_relative(cv.path, reference) <= RTOL
    np.testing.assert_allclose(cv.path.intercept, reference["a0"], rtol=RTOL)
    _assert_same_cv(cv, reference)


@pytest.mark.parametrize("measure", ["class", "auc", "mse", "mae"])
def test_the_binomial_measures_are_glmnets(glmnet, binary, measure) -> None:
    X, y = binary
    folds = _folds(len(y))
    cv = cv_path(X, y, folds, family="binomial", n_lambda=15, lambda_min_ratio=1e-2, measure=measure)
    reference = glmnet(X, y, lambdas=cv.lambdas, folds=folds, family="binomial", type_measure=measure, fit=False)
    # Misclassification is a step function of the fit: equal at every λ, not just close.
    np.testing.assert_allclose(cv.cvm, reference["cvm"], rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(cv.cvsd, reference["cvsd"], rtol=1e-5, atol=1e-12)
    assert cv.index_min == reference["index_min"] - 1
    assert cv.index_1se == reference["index_1se"] - 1
