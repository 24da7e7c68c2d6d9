"""The binary logistic path: glmnet's quadratic approximation solved by coordinate descent.

At each λ a proximal Newton iteration (IRLS): at the current fit, the
log-likelihood is replaced by its second-order expansion — a weighted
least-squares problem with weights ``v = p(1-p)`` — whose penalized minimum,
found by :mod:`engine.paths.coordinate_descent` on the weighted Gram matrix of
the candidate features (intercept included, unpenalized), is the next fit.
The step is halved while it would raise the penalized objective. It stops
when the KKT conditions of the *logistic* problem hold to ``tol``, checked
with the exact gradient over every feature; violators outside the strong
set join it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.paths import coordinate_descent as cd

#: Floor on the IRLS weights p(1-p) (glmnet's pmin = 1e-5): keeps the Newton model
#: positive definite near separation; the fixed point still solves the exact problem.
MIN_WEIGHT = 1e-5 * (1.0 - 1e-5)
#: Newton iterations per λ before giving up, and halvings of a step.
MAX_NEWTON, MAX_HALVINGS = 100, 40


def _expit(eta: np.ndarray) -> np.ndarray:
    out = np.empty_like(eta)
    pos = eta >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-eta[pos]))
    e = np.exp(eta[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def log_loss(y: np.ndarray, eta: np.ndarray) -> float:
    """Mean negative log-likelihood ``mean(log(1 + e^η) - yη)`` (shapes (n_samples,))."""
    return float(np.mean(np.logaddexp(0.0, eta) - y * eta))


@dataclass
class Standardized:
    """Rows standardized with 1/n variance: ``X`` (n, p); ``mean``, ``scale``, ``excluded`` (p,)."""

    X: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    excluded: np.ndarray


def standardize_rows(X: np.ndarray, *, fit_intercept: bool, standardize: bool) -> Standardized:
    """glmnet's standardization of x (a constant column is excluded and its weight stays 0)."""
    p = X.shape[1]
    mean = X.mean(axis=0) if fit_intercept else np.zeros(p)
    Xc = X - mean
    high, low = X.max(axis=0), X.min(axis=0)
    excluded = high == low if fit_intercept else (high == low) & (high == 0.0)
    scale = np.sqrt(np.mean(Xc * Xc, axis=0)) if standardize else np.ones(p)
    scale[excluded] = 1.0
    Xc /= scale
    Xc[:, excluded] = 0.0
    return Standardized(Xc, mean, scale, excluded)


def null_model(y: np.ndarray, fit_intercept: bool) -> float:
    """Intercept of the intercept-only fit (0 without an intercept)."""
    if not fit_intercept:
        return 0.0
    mean = float(np.mean(y))
    return float(np.log(mean / (1.0 - mean)))


@dataclass
class Solution:
    """Standardized weights (n_lambda, p), intercepts, log-losses and work per λ (n_lambda,)."""

    weights: np.ndarray
    intercept: np.ndarray
    loss: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    #: The gradient x_jᵀ(y - p₀)/n at the null model, whose max gives λ_max: shape (p,).
    null_gradient: np.ndarray


def null_gradient(data: Standardized, y: np.ndarray, fit_intercept: bool) -> np.ndarray:
    p0 = _expit(np.full(len(y), null_model(y, fit_intercept)))
    return np.asarray(data.X.T @ (y - p0) / len(y))


def solve_path(
    data: Standardized,
    y: np.ndarray,
    lambdas: np.ndarray,
    alpha: float,
    *,
    fit_intercept: bool,
    top: float,
    tol: float,
    max_sweeps: int,
    on_lambda: Callable[[], None] | None = None,
) -> Solution:
    """Every λ of the sequence, warm-started; ``top`` is the full data's λ_max (first strong set).

    ``on_lambda`` is called after each λ and may raise to stop.
    """
    Xs = data.X
    n, p = Xs.shape
    y_sd = float(np.std(y))
    tolerance = tol * (y_sd if y_sd > 0.0 else 1.0)
    w = np.zeros(p)
    b0 = null_model(y, fit_intercept)
    eta = np.full(n, b0)
    prob = _expit(eta)
    grad = Xs.T @ (y - prob) / n
    g0 = float(np.mean(y - prob))
    ever = np.zeros(p, dtype=bool)
    n_lambda = len(lambdas)
    out = Solution(
        weights=np.zeros((n_lambda, p)),
        intercept=np.zeros(n_lambda),
        loss=np.zeros(n_lambda),
        iterations=np.zeros(n_lambda, dtype=np.int64),
        converged=np.ones(n_lambda, dtype=bool),
        null_gradient=grad.copy(),
    )
    previous = max(top, float(lambdas[0]))
    usable = ~data.excluded
    lead = 1 if fit_intercept else 0  # theta = (intercept, weights of the candidates)
    for i, lam in enumerate(lambdas.tolist()):
        l1, l2 = lam * alpha, lam * (1.0 - alpha)

        def objective(b: float, weights: np.ndarray, linear: np.ndarray, l1: float = l1, l2: float = l2) -> float:
            return log_loss(y, linear) + l1 * float(np.abs(weights).sum()) + 0.5 * l2 * float(weights @ weights)

        candidates = (ever | (np.abs(grad) >= alpha * (2.0 * lam - previous))) & usable
        iterations = 0
        done = False
        while iterations < MAX_NEWTON:
            violation = cd.kkt_violation(w[None], grad[None], np.full(p, l1), np.full(p, l2))[0]
            worst = max(float(violation.max(initial=0.0)), abs(g0) if fit_intercept else 0.0)
            if worst <= tolerance:
                done = True
                break
            candidates |= (violation > tolerance) & usable
            S = np.flatnonzero(candidates)
            A = Xs[:, S]
            v = np.maximum(prob * (1.0 - prob), MIN_WEIGHT)
            Av = A.T * v
            H = Av @ A / n
            r = A.T @ (y - prob) / n
            linear = H @ w[S] + r
            if fit_intercept:
                # The intercept is minimized out exactly (Schur complement): the features enter
                # centred by their v-weighted means, which keeps coordinate descent well conditioned.
                h00 = float(v.mean())
                h = Av.sum(axis=1) / n
                c0 = h00 * b0 + h @ w[S] + g0
                linear = linear + h * b0 - h * (c0 / h00)
                H = H - np.outer(h, h) / h00
            quad = cd.Quadratic(H[None], linear[None])
            step = w[S][None].copy()
            # Inexact Newton: the step need only be accurate relative to the violation it corrects.
            inner = np.array([max(0.1 * tolerance, 1e-3 * worst)])
            cd.solve(
                quad, step, np.full(len(S), l1), np.full(len(S), l2), np.ones(len(S), dtype=bool), inner, max_sweeps
            )
            theta = np.concatenate([[b0], w[S]]) if fit_intercept else w[S].copy()
            target = np.concatenate([[(c0 - h @ step[0]) / h00], step[0]]) if fit_intercept else step[0]
            direction = target - theta
            before = objective(b0, w, eta)
            t = 1.0
            for _ in range(MAX_HALVINGS):
                trial = theta + t * direction
                b_new = float(trial[0]) if fit_intercept else 0.0
                w_new = w.copy()
                w_new[S] = trial[lead:]
                eta_new = b_new + Xs[:, S] @ w_new[S]
                if objective(b_new, w_new, eta_new) <= before + 1e-15 * abs(before):
                    break
                t *= 0.5
            b0, w, eta = b_new, w_new, eta_new
            prob = _expit(eta)
            grad = Xs.T @ (y - prob) / n
            g0 = float(np.mean(y - prob))
            iterations += 1
        ever |= w != 0.0
        out.weights[i] = w
        out.intercept[i] = b0
        out.loss[i] = log_loss(y, eta)
        out.iterations[i] = iterations
        out.converged[i] = done
        previous = lam
        if on_lambda is not None:
            on_lambda()
    return out
