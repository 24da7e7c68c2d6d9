"""The convex models against closed forms and scikit-learn: same objective, same optimum.

The engine minimizes ``mean data loss + l1 * sum|w| + l2 * sum w**2`` over
the weights (never the biases). With the MSE as data loss (no 1/2) the
engine's objective is twice scikit-learn's, which gives the mappings

- ``Ridge(alpha = n * l2)``
- ``Lasso(alpha = l1 / 2)``
- ``ElasticNet(alpha = l1 / 2 + l2, l1_ratio = (l1 / 2) / alpha)``
- ``LogisticRegression(C = 1 / (2 * n * l2))``

with ``n`` the number of training rows. Every run is float64 and full batch
(``batch_size >= n``), so plain gradient descent (ISTA when L1 is on, the
engine's proximal soft-threshold after each step) or Nesterov's accelerated
gradient converges to the exact minimizer; each test also checks the
optimality conditions directly, independently of scikit-learn.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import ElasticNet, Lasso, LogisticRegression, Ridge

from engine import Dataset, TrainResult, TrainSpec, export, load_builtin, train
from engine.datasets import linear_true_coefficients, make_linear
from engine.preprocessing import prepare

SEED = 0
#: The sparse regression problem: 200 rows, 10 features, 5 true coefficients exactly zero.
LINEAR_ROWS, LINEAR_FEATURES, LINEAR_NOISE = 200, 10, 0.5
#: Curvature of the data loss per unit of ``lambda_max(A'A / n)``, A = [X, 1]: the MSE's
#: Hessian is 2 A'A / n; cross-entropy's is A' D A / n with D <= 1/4 (sigmoid) or <= 1/2 (softmax).
CURVATURE = {"mse": 2.0, "sigmoid": 0.25, "softmax": 0.5}


def _spec(
    model: str,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    l1: float = 0.0,
    l2: float = 0.0,
    standardize: bool = False,
) -> TrainSpec:
    return TrainSpec.from_dict(
        {
            "model": {"type": model},
            "regularization": {"l1": l1, "l2": l2},
            "optimizer": {"name": "sgd", "learning_rate": learning_rate, "momentum": momentum, "nesterov": nesterov},
            "training": {
                "epochs": epochs,
                "batch_size": batch_size,
                "validation_fraction": 0.0,
                "test_fraction": 0.0,
                "standardize": standardize,
                "seed": SEED,
                "dtype": "float64",
            },
        }
    )


def _design(X: np.ndarray) -> np.ndarray:
    """``X`` with a column of ones: the bias is a parameter the optimizer steps too."""
    return np.column_stack([X, np.ones(len(X))])


def _lipschitz(X: np.ndarray, loss: str, l2: float) -> float:
    """An upper bound on the objective's curvature over (weights, bias)."""
    A = _design(X)
    return CURVATURE[loss] * float(np.linalg.eigvalsh(A.T @ A / len(X)).max()) + 2.0 * l2


def _nesterov(L: float, mu: float) -> dict[str, Any]:
    """Step 1/L and the momentum of Nesterov's method for an L-smooth, mu-strongly convex objective."""
    root = math.sqrt(L / mu)
    return {"learning_rate": 1.0 / L, "momentum": (root - 1.0) / (root + 1.0), "nesterov": True}


def _linear_dataset() -> Dataset:
    return make_linear(n_samples=LINEAR_ROWS, n_features=LINEAR_FEATURES, noise=LINEAR_NOISE, seed=SEED)


def _train_rows(result: TrainResult) -> tuple[np.ndarray, np.ndarray]:
    """The rows the engine trained on, in its order (all rows: no validation or test split)."""
    data = result.data
    assert len(data.y_val) == 0 and len(data.y_test) == 0
    return data.X_train, data.y_train


def _weights_bias(result: TrainResult) -> tuple[np.ndarray, np.ndarray]:
    net = result.network
    assert net.params.dtype == np.float64
    assert len(net.weights) == 1, "linear and logistic models have a single layer"
    return net.weights[0], net.biases[0]


# -- least squares with L2: closed form --------------------------------------------------


@pytest.mark.parametrize("l2", [1e-3, 1e-2, 1e-1])
def test_ridge_matches_closed_form_and_sklearn(l2: float) -> None:
    ds = _linear_dataset()
    X, y = ds.X, ds.y
    n, d = X.shape
    # Exact minimizer of mean((Xw + b - y)^2) + l2 |w|^2: centre, solve, recover the bias.
    x_mean, y_mean = X.mean(axis=0), y.mean()
    Xc, yc = X - x_mean, y - y_mean
    w_exact = np.linalg.solve(Xc.T @ Xc / n + l2 * np.eye(d), Xc.T @ yc / n)
    b_exact = y_mean - x_mean @ w_exact
    objective = float(np.mean((X @ w_exact + b_exact - y) ** 2) + l2 * w_exact @ w_exact)

    # The Hessian over (w, b) is constant: its extreme eigenvalues give the optimal Nesterov settings.
    A = _design(X)
    H = 2.0 * A.T @ A / n
    H[:d, :d] += 2.0 * l2 * np.eye(d)
    eig = np.linalg.eigvalsh(H)
    result = train(_spec("linear", epochs=600, batch_size=n, l2=l2, **_nesterov(eig[-1], eig[0])), ds)
    w, b = _weights_bias(result)

    assert w.shape == (1, d) and b.shape == (1,)
    np.testing.assert_allclose(w[0], w_exact, rtol=1e-6, atol=0)
    np.testing.assert_allclose(b[0], b_exact, rtol=1e-6, atol=0)
    # The reported loss and penalty are the engine's objective, the MSE without a 1/2.
    last = result.history[-1]
    assert last["train_loss"] + last["penalty"] == pytest.approx(objective, rel=1e-12)

    ridge = Ridge(alpha=n * l2, fit_intercept=True).fit(X, y)
    np.testing.assert_allclose(w[0], ridge.coef_, rtol=1e-6, atol=0)
    np.testing.assert_allclose(b[0], ridge.intercept_, rtol=1e-6, atol=0)
    # Without standardization the exported model is the raw network itself.
    np.testing.assert_allclose(export.to_model(result).predict(X), ridge.predict(X), rtol=1e-9, atol=1e-9)


# -- least squares with L1 / elastic net: proximal gradient --------------------------------


def _sparse_reference(X: np.ndarray, y: np.ndarray, l1: float, l2: float) -> Lasso | ElasticNet:
    if l2 == 0.0:
        return Lasso(alpha=l1 / 2.0, fit_intercept=True, tol=1e-12, max_iter=1_000_000).fit(X, y)
    alpha = l1 / 2.0 + l2
    return ElasticNet(alpha=alpha, l1_ratio=(l1 / 2.0) / alpha, fit_intercept=True, tol=1e-12, max_iter=1_000_000).fit(
        X, y
    )


def _assert_sparse_optimal(X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float, l1: float, l2: float) -> None:
    """Subgradient optimality of mean((Xw + b - y)^2) + l1 |w|_1 + l2 |w|^2 at (w, b)."""
    r = X @ w + b - y
    grad = 2.0 * X.T @ r / len(y) + 2.0 * l2 * w
    assert abs(2.0 * r.mean()) < 1e-10
    on = w != 0.0
    np.testing.assert_allclose(grad[on], -l1 * np.sign(w[on]), rtol=0, atol=1e-10)
    assert np.all(np.abs(grad[~on]) <= l1 + 1e-10)


@pytest.mark.parametrize(("l1", "l2"), [(0.05, 0.0), (0.2, 0.0), (0.05, 0.01), (0.1, 0.05)])
def test_lasso_and_elastic_net_match_sklearn(l1: float, l2: float) -> None:
    ds = _linear_dataset()
    X, y = ds.X, ds.y
    n = len(y)
    true_coef, _ = linear_true_coefficients(SEED, LINEAR_FEATURES)
    assert np.count_nonzero(true_coef == 0.0) >= true_coef.size / 2

    # ISTA: plain gradient steps of 1/L, each followed by the soft threshold of lr * l1.
    lr = 1.0 / _lipschitz(X, "mse", l2)
    result = train(_spec("linear", epochs=3000, batch_size=n, learning_rate=lr, l1=l1, l2=l2), ds)
    w, b = _weights_bias(result)
    w, b0 = w[0], float(b[0])

    ref = _sparse_reference(X, y, l1, l2)
    np.testing.assert_allclose(w, ref.coef_, rtol=0, atol=1e-4)
    assert b0 == pytest.approx(float(ref.intercept_), abs=1e-4)
    # The same support, and the engine's zeros are exact (and plain +0.0, not -0.0).
    zeros = w == 0.0
    np.testing.assert_array_equal(zeros, ref.coef_ == 0.0)
    assert 1 <= np.count_nonzero(zeros) < w.size
    assert not np.signbit(w[zeros]).any()
    assert result.history[-1]["sparsity"] == np.count_nonzero(zeros) / w.size
    _assert_sparse_optimal(X, y, w, b0, l1, l2)


def test_l1_gives_exact_zeros_with_mini_batches() -> None:
    ds = _linear_dataset()
    X = ds.X
    l1 = 0.1
    true_coef, _ = linear_true_coefficients(SEED, LINEAR_FEATURES)
    lr = 1.0 / _lipschitz(X, "mse", 0.0)
    result = train(_spec("linear", epochs=50, batch_size=32, learning_rate=lr, l1=l1), ds)
    w = _weights_bias(result)[0][0]
    lasso = _sparse_reference(X, ds.y, l1, 0.0).coef_

    zeros = w == 0.0
    assert np.count_nonzero(zeros) >= 1
    assert not np.signbit(w[zeros]).any()
    assert result.history[-1]["sparsity"] == np.count_nonzero(zeros) / w.size > 0.0
    # Only coefficients that are zero in the truth and in the lasso solution get cut;
    # the true signal (|w| >= 1) survives.
    assert np.all(true_coef[zeros] == 0.0)
    assert np.all(lasso[zeros] == 0.0)
    assert np.all(w[true_coef != 0.0] != 0.0)
    # Stochastic steps of constant size stop near, not at, the lasso solution.
    np.testing.assert_allclose(w, lasso, rtol=0, atol=0.2)


@pytest.mark.parametrize(("momentum", "nesterov"), [(0.9, False), (0.8, True)])
def test_lasso_with_momentum_matches_sklearn(momentum: float, nesterov: bool) -> None:
    ds = _linear_dataset()
    X, y = ds.X, ds.y
    l1 = 0.05
    lr = 0.2 / _lipschitz(X, "mse", 0.0)
    spec = _spec(
        "linear", epochs=5000, batch_size=len(y), learning_rate=lr, momentum=momentum, nesterov=nesterov, l1=l1
    )
    w = _weights_bias(train(spec, ds))[0][0]
    np.testing.assert_allclose(w, _sparse_reference(X, y, l1, 0.0).coef_, rtol=0, atol=1e-4)


# -- logistic regression with L2 ------------------------------------------------------------


def _logistic_run(name: str, l2: float, epochs: int) -> tuple[TrainResult, LogisticRegression]:
    """The engine (standardizing itself) and scikit-learn on the engine's standardized rows."""
    ds = load_builtin(name)
    X_std = prepare(ds, "classification", 0.0, 0.0, True, SEED, "float64").X_train
    n = len(X_std)
    loss = "sigmoid" if len(np.unique(ds.y)) == 2 else "softmax"
    # mu = 2 * l2 bounds the curvature along the weights from below.
    nesterov = _nesterov(_lipschitz(X_std, loss, l2), 2.0 * l2)
    result = train(_spec("logistic", epochs=epochs, batch_size=n, l2=l2, standardize=True, **nesterov), ds)
    X, y = _train_rows(result)
    np.testing.assert_array_equal(X, X_std)
    ref = LogisticRegression(C=1.0 / (2.0 * n * l2), tol=1e-12, max_iter=10_000).fit(X, y)
    return result, ref


def _assert_logistic_optimal(X: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray, l2: float) -> None:
    """The gradient of mean cross-entropy + l2 |W|^2 vanishes at (W, b)."""
    Z = X @ W.T + b
    if W.shape[0] == 1:
        G = 1.0 / (1.0 + np.exp(-Z)) - y[:, None]
    else:
        P = np.exp(Z - Z.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        G = P - np.eye(W.shape[0])[y]
    grad_w = G.T @ X / len(y) + 2.0 * l2 * W
    grad_b = G.mean(axis=0)
    assert np.abs(grad_w).max() < 1e-9
    assert np.abs(grad_b).max() < 1e-9


@pytest.mark.parametrize(("l2", "epochs"), [(1e-2, 600), (1e-3, 2000)])
def test_binary_logistic_matches_sklearn(l2: float, epochs: int) -> None:
    result, ref = _logistic_run("breast_cancer", l2, epochs)
    data = result.data
    # Sorted labels: 'benign' is class 0, 'malignant' class 1, the positive (sigmoid) class.
    assert data.classes is not None and data.classes.tolist() == ["benign", "malignant"]
    assert ref.classes_.tolist() == [0, 1]
    W, b = _weights_bias(result)
    assert W.shape == (1, 30) and b.shape == (1,)

    np.testing.assert_allclose(W, ref.coef_, rtol=0, atol=1e-4)
    np.testing.assert_allclose(b, ref.intercept_, rtol=0, atol=1e-4)
    _assert_logistic_optimal(data.X_train, data.y_train, W, b, l2)

    # The exported model folds the standardization in: raw features give the same scores.
    assert data.x_scaler is not None
    raw = data.X_train * data.x_scaler.std + data.x_scaler.mean
    model = export.to_model(result)
    np.testing.assert_allclose(model.decision_function(raw)[:, 0], ref.decision_function(data.X_train), atol=1e-4)
    np.testing.assert_allclose(model.predict_proba(raw), ref.predict_proba(data.X_train), atol=1e-5)
    assert model.predict(raw) == data.classes[ref.predict(data.X_train)].tolist()


@pytest.mark.parametrize("name", ["iris", "wine"])
@pytest.mark.parametrize(("l2", "epochs"), [(1e-2, 1000), (1e-3, 3000)])
def test_multinomial_logistic_matches_sklearn(name: str, l2: float, epochs: int) -> None:
    result, ref = _logistic_run(name, l2, epochs)
    data = result.data
    W, b = _weights_bias(result)
    assert data.classes is not None and W.shape == (3, data.n_features) and b.shape == (3,)
    assert ref.coef_.shape == W.shape, "scikit-learn fits the full K-class (multinomial) parameterization"

    # With l2 > 0 the weights are unique (and sum to zero over the classes); the unpenalized
    # intercepts only up to a common shift, so compare them centred.
    np.testing.assert_allclose(W, ref.coef_, rtol=0, atol=1e-4)
    np.testing.assert_allclose(W.sum(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(b - b.mean(), ref.intercept_ - ref.intercept_.mean(), rtol=0, atol=1e-4)
    _assert_logistic_optimal(data.X_train, data.y_train, W, b, l2)
    np.testing.assert_allclose(
        export.to_model(result).predict_proba(data.X_train * data.x_scaler.std + data.x_scaler.mean),
        ref.predict_proba(data.X_train),
        atol=1e-5,
    )
