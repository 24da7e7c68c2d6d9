"""Regularization paths against scikit-learn, point by point, and cross-validation by hand.

Every point of a path is the minimizer of ``loss + λ·(alpha‖w‖₁ + (1-alpha)/2·‖w‖₂²)``
on the standardized features (1/n variance), which is scikit-learn's
``ElasticNet(alpha=λ, l1_ratio=alpha)`` on those features (loss ``RSS/(2n)``) and
``LogisticRegression(C=1/(nλ), l1_ratio=alpha)`` (loss: the summed log-loss, so
C·Σ = (1/(nλ))·Σ). Coefficients are compared on the raw scale, norm-relative:
``‖ours - theirs‖ ≤ 1e-6 · ‖theirs‖``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score

from engine import ConfigError, InputError, load_builtin
from engine.paths import cv_path, fit_path
from engine.paths import measures as cv_measures
from engine.paths.lambdas import MIN_ALPHA_FOR_LAMBDA_MAX

RTOL = 1e-6
N_LAMBDA = 30


def _relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))


def _standardized(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, scale = X.mean(axis=0), X.std(axis=0)  # the 1/n standard deviation, glmnet's
    return (X - mean) / scale, mean, scale


@pytest.fixture(scope="module")
def regression() -> tuple[np.ndarray, np.ndarray]:
    """diabetes: 442 rows, 10 strongly correlated columns (s1..s6), the hard case for coordinate descent."""
    data = load_builtin("diabetes")
    return data.X.astype(np.float64), data.y.astype(np.float64)


@pytest.fixture(scope="module")
def binary() -> tuple[np.ndarray, np.ndarray]:
    """400 rows, 10 correlated features on different scales, 4 without effect."""
    rng = np.random.default_rng(7)
    n, p = 400, 10
    mixing = np.eye(p) + 0.2 * rng.normal(size=(p, p))
    X = rng.normal(size=(n, p)) @ mixing * rng.uniform(0.2, 5.0, p) + rng.normal(size=p) * 3
    Xs, _, _ = _standardized(X)
    beta = np.r_[rng.normal(size=6), np.zeros(4)]
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-(Xs @ beta - 0.5)))).astype(np.float64)
    return X, y


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_every_point_of_a_gaussian_path_is_sklearns_elastic_net(regression, alpha) -> None:
    X, y = regression
    path = fit_path(X, y, family="gaussian", alpha=alpha, n_lambda=N_LAMBDA)
    assert path.converged.all()
    Xs, mean, scale = _standardized(X)
    assert np.all(path.coef[0] == 0.0)
    for i, lam in enumerate(path.lambdas[1:], start=1):
        ref = ElasticNet(alpha=lam, l1_ratio=alpha, tol=1e-15, max_iter=1_000_000).fit(Xs, y)
        coef = ref.coef_ / scale
        assert _relative(path.coef[i], coef) <= RTOL, i
        assert path.intercept[i] == pytest.approx(ref.intercept_ - mean @ coef, rel=RTOL)
        assert path.nzero[i] == np.count_nonzero(coef)


def test_unstandardized_path_without_intercept_is_sklearns_on_the_raw_features(regression) -> None:
    X, y = regression
    X = X + 1.0  # so that dropping the intercept matters
    path = fit_path(X, y, alpha=1.0, n_lambda=N_LAMBDA, standardize=False, fit_intercept=False)
    for i, lam in enumerate(path.lambdas[1:], start=1):
        ref = ElasticNet(alpha=lam, l1_ratio=1.0, fit_intercept=False, tol=1e-13, max_iter=1_000_000).fit(X, y)
        assert _relative(path.coef[i], ref.coef_) <= RTOL, i
    assert np.all(path.intercept == 0.0)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_every_point_of_a_binomial_path_is_sklearns_logistic_regression(binary, alpha) -> None:
    X, y = binary
    n = len(y)
    path = fit_path(X, y, family="binomial", alpha=alpha, n_lambda=N_LAMBDA)
    assert path.converged.all()
    Xs, mean, scale = _standardized(X)
    assert np.all(path.coef[0] == 0.0)
    for i, lam in enumerate(path.lambdas[1:], start=1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ref = LogisticRegression(C=1.0 / (n * lam), l1_ratio=alpha, solver="saga", tol=1e-15, max_iter=100_000)
            ref.fit(Xs, y)
        coef = ref.coef_[0] / scale
        assert _relative(path.coef[i], coef) <= RTOL, i
        assert path.intercept[i] == pytest.approx(ref.intercept_[0] - mean @ coef, rel=RTOL, abs=1e-9)


def test_the_ridge_path_is_sklearns_ridge_and_starts_at_glmnets_lambda_max(regression) -> None:
    X, y = regression
    n = len(y)
    path = fit_path(X, y, alpha=0.0, n_lambda=10)
    Xs, _, scale = _standardized(X)
    top = np.max(np.abs(Xs.T @ (y - y.mean()) / n)) / MIN_ALPHA_FOR_LAMBDA_MAX
    assert path.lambda_max == pytest.approx(top, rel=1e-12)
    assert path.lambdas[0] == path.lambda_max
    for i, lam in enumerate(path.lambdas):
        ref = Ridge(alpha=n * lam, solver="cholesky").fit(Xs, y)
        assert _relative(path.coef[i], ref.coef_ / scale) <= RTOL, i


@pytest.mark.parametrize("family", ["gaussian", "binomial"])
@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.3])
def test_lambda_max_is_where_the_first_weight_leaves_zero(regression, binary, family, alpha) -> None:
    X, y = regression if family == "gaussian" else binary
    top = fit_path(X, y, family=family, alpha=alpha, n_lambda=1).lambda_max
    at_top = fit_path(X, y, family=family, alpha=alpha, lambdas=[top])
    assert np.all(at_top.coef == 0.0) and at_top.nzero[0] == 0
    below = fit_path(X, y, family=family, alpha=alpha, lambdas=[top * (1.0 - 1e-6)])
    assert below.nzero[0] == 1


def test_the_default_sequence_is_glmnets(regression) -> None:
    X, y = regression
    path = fit_path(X, y, tol=1e-4)  # the sequence does not depend on the tolerance
    assert len(path.lambdas) == 100
    assert path.lambdas[-1] == pytest.approx(path.lambda_max * 1e-4, rel=1e-12)  # n > p
    ratios = path.lambdas[1:] / path.lambdas[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-12)
    wide = fit_path(X[:8], y[:8], n_lambda=5)
    assert wide.lambdas[-1] == pytest.approx(wide.lambda_max * 1e-2, rel=1e-12)  # n <= p
    given = fit_path(X, y, lambdas=[0.5, 10.0, 2.0])
    np.testing.assert_array_equal(given.lambdas, [10.0, 2.0, 0.5])


def test_paths_are_deterministic(binary) -> None:
    X, y = binary
    folds = np.arange(len(y)) % 4
    first = cv_path(X, y, folds, family="binomial", alpha=0.5, n_lambda=15)
    again = cv_path(X, y, folds, family="binomial", alpha=0.5, n_lambda=15)
    np.testing.assert_array_equal(first.path.coef, again.path.coef)
    np.testing.assert_array_equal(first.cvm, again.cvm)


def _by_hand(X, y, folds, family, alpha, lambdas, measure):
    """cv.glmnet's statistics from separate fits on each fold's training rows."""
    ids = np.unique(folds)
    held_out = np.empty((len(y), len(lambdas)))
    for k in ids:
        train = folds != k
        fold = fit_path(X[train], y[train], family=family, alpha=alpha, lambdas=lambdas)
        held_out[~train] = fold.predict(X[~train], kind="link")
    if measure == "auc":
        values = np.array(
            [[roc_auc_score(y[folds == k], held_out[folds == k, j]) for j in range(len(lambdas))] for k in ids]
        )
    elif measure == "deviance":
        prob = np.clip(1.0 / (1.0 + np.exp(-held_out)), 1e-5, 1 - 1e-5)
        losses = -2.0 * (y[:, None] * np.log(prob) + (1 - y[:, None]) * np.log(1 - prob))
        values = np.array([losses[folds == k].mean(axis=0) for k in ids])
    else:
        losses = (y[:, None] - held_out) ** 2
        values = np.array([losses[folds == k].mean(axis=0) for k in ids])
    sizes = np.array([np.sum(folds == k) for k in ids], dtype=float)
    cvm = sizes @ values / sizes.sum()
    cvsd = np.sqrt(sizes @ (values - cvm) ** 2 / sizes.sum() / (len(ids) - 1))
    return cvm, cvsd


@pytest.mark.parametrize(
    ("family", "measure"),
    [("gaussian", "mse"), ("binomial", "deviance"), ("binomial", "auc")],
)
def test_cross_validation_is_the_folds_fitted_apart(regression, binary, family, measure) -> None:
    X, y = regression if family == "gaussian" else binary
    rng = np.random.default_rng(3)
    folds = rng.permutation(np.arange(len(y)) % 5) + 1
    cv = cv_path(X, y, folds, family=family, alpha=0.5, n_lambda=12, measure=measure)
    cvm, cvsd = _by_hand(X, y, folds, family, 0.5, cv.lambdas, measure)
    np.testing.assert_allclose(cv.cvm, cvm, rtol=1e-7)
    np.testing.assert_allclose(cv.cvsd, cvsd, rtol=1e-5, atol=1e-9)
    full = fit_path(X, y, family=family, alpha=0.5, n_lambda=12)
    np.testing.assert_allclose(cv.lambdas, full.lambdas, rtol=1e-13)
    assert _relative(cv.path.coef[1:], full.coef[1:]) <= RTOL
    np.testing.assert_array_equal(cv.nzero, full.nzero)
    assert cv.fold_values.shape == (5, 12)
    best = np.argmax(cv.cvm) if measure == "auc" else np.argmin(cv.cvm)
    assert cv.index_min == best and cv.lambda_min == cv.lambdas[best]


def test_the_one_standard_error_rule() -> None:
    cvm = np.array([5.0, 3.0, 2.2, 2.0, 2.0, 2.4])
    cvsd = np.array([0.1, 0.1, 0.1, 0.3, 0.2, 0.1])
    # The minimum is tied at 3 and 4: the larger λ (3) wins; within 2.0 + 0.3 is index 2 (2.2).
    assert cv_measures.select(cvm, cvsd, "mse") == (3, 2)
    # AUC is maximized.
    assert cv_measures.select(-cvm, cvsd, "auc") == (3, 2)


def test_auc_counts_ties_one_half() -> None:
    y = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    score = np.array([0.1, 0.4, 0.4, 0.8, 0.8, 0.3])
    assert cv_measures.auc(y, score) == pytest.approx(roc_auc_score(y, score), rel=1e-15)


def test_misclassification_and_the_default_measures(binary) -> None:
    X, y = binary
    folds = np.arange(len(y)) % 3
    cv = cv_path(X, y, folds, family="binomial", n_lambda=5, measure="class")
    assert cv.measure == "misclassification"
    assert np.all((cv.cvm >= 0.0) & (cv.cvm <= 1.0))
    assert cv.cvm[0] == pytest.approx(min(y.mean(), 1 - y.mean()), abs=0.02)  # the null model
    assert cv_path(X, y, folds, family="logistic", n_lambda=3).measure == "deviance"
    assert cv_path(X, y, folds, family="linear", n_lambda=3).measure == "mse"


def test_constant_features_stay_at_zero(regression) -> None:
    X, y = regression
    X = np.column_stack([X, np.full(len(y), 3.0)])
    path = fit_path(X, y, n_lambda=10)
    assert np.all(path.coef[:, -1] == 0.0)
    reference = fit_path(X[:, :-1], y, n_lambda=10)
    np.testing.assert_allclose(path.coef[:, :-1], reference.coef, rtol=1e-9, atol=1e-12)


def test_bad_inputs_are_engine_errors(binary) -> None:
    X, y = binary
    with pytest.raises(ConfigError):
        fit_path(X, y, family="mlp")
    with pytest.raises(ConfigError):
        fit_path(X, y, alpha=1.5)
    with pytest.raises(InputError):
        fit_path(X, y * 2.0, family="binomial")
    with pytest.raises(InputError):
        cv_path(X, y, np.zeros(len(y)))
    with pytest.raises(ConfigError):
        cv_path(X, y, np.arange(len(y)) % 3, family="binomial", measure="r2")
