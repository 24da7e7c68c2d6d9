"""The least-squares (elastic-net) path on the covariance form, with every CV fold in one batch.

glmnet's ``type.gaussian = "covariance"``: the data enter only through
``XᵀX``, ``Xᵀy`` and the column sums, so a fold's training rows (all rows
minus the fold) have statistics ``total - fold``. One pass over the data
computes them for the full fit and every fold; standardization (1/n
variance, glmnet's) and centering for the intercept are then exact
rank-one corrections of those sums, and the solver sees K+1 small
(p x p) problems.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.paths import coordinate_descent as cd


@dataclass
class Problems:
    """K standardized least-squares problems: ``½ wᵀGw - cᵀw + ½ y_var`` is ``RSS / (2n)``.

    Shapes: ``gram`` (K, p, p); ``linear``, ``x_mean``, ``x_scale``, ``excluded`` (K, p);
    ``y_mean``, ``y_var``, ``n_rows`` (K,). A feature constant on a problem's rows is
    ``excluded`` (its weight stays 0, as glmnet's ``ju``).
    """

    gram: np.ndarray
    linear: np.ndarray
    x_mean: np.ndarray
    x_scale: np.ndarray
    excluded: np.ndarray
    y_mean: np.ndarray
    y_var: np.ndarray
    n_rows: np.ndarray


def problems(
    X: np.ndarray,
    y: np.ndarray,
    groups: list[np.ndarray],
    *,
    fit_intercept: bool,
    standardize: bool,
) -> Problems:
    """The full-data problem (index 0) and, per group of rows, the problem without those rows.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    groups : list of ndarray of row indices
        Disjoint groups covering the rows (CV folds), or ``[all rows]`` for the full fit only.
    """
    p = X.shape[1]
    # Shift by the overall means first, so that the fold means the corrections subtract are small.
    x_shift = X.mean(axis=0) if fit_intercept else np.zeros(p)
    y_shift = float(y.mean()) if fit_intercept else 0.0
    Xc = X - x_shift
    yc = y - y_shift
    n_groups = len(groups)
    sums = np.empty((n_groups, p))
    cross = np.empty((n_groups, p, p))
    xty = np.empty((n_groups, p))
    ysum = np.empty(n_groups)
    yss = np.empty(n_groups)
    high = np.empty((n_groups, p))
    low = np.empty((n_groups, p))
    counts = np.array([len(rows) for rows in groups], dtype=np.float64)
    for g, rows in enumerate(groups):
        Xg = Xc if len(groups) == 1 else Xc[rows]
        yg = yc if len(groups) == 1 else yc[rows]
        sums[g] = Xg.sum(axis=0)
        cross[g] = Xg.T @ Xg
        xty[g] = Xg.T @ yg
        ysum[g] = yg.sum()
        yss[g] = yg @ yg
        high[g] = Xg.max(axis=0) if len(rows) else -np.inf
        low[g] = Xg.min(axis=0) if len(rows) else np.inf

    def totals(keep: np.ndarray) -> tuple[np.ndarray, ...]:
        return (
            counts[keep].sum(),
            sums[keep].sum(axis=0),
            cross[keep].sum(axis=0),
            xty[keep].sum(axis=0),
            ysum[keep].sum(),
            yss[keep].sum(),
            high[keep].max(axis=0),
            low[keep].min(axis=0),
        )

    everything = np.ones(n_groups, dtype=bool)
    selections = (
        [everything]
        if n_groups == 1
        else [everything] + [everything & (np.arange(n_groups) != g) for g in range(n_groups)]
    )
    K = len(selections)
    out = Problems(
        gram=np.empty((K, p, p)),
        linear=np.empty((K, p)),
        x_mean=np.empty((K, p)),
        x_scale=np.empty((K, p)),
        excluded=np.empty((K, p), dtype=bool),
        y_mean=np.empty(K),
        y_var=np.empty(K),
        n_rows=np.empty(K),
    )
    for k, keep in enumerate(selections):
        m, sx, Q, t, sy, syy, hi, lo = totals(keep)
        if fit_intercept:
            xm = sx / m
            ym = sy / m
            cov = Q / m - np.outer(xm, xm)
            xy = t / m - xm * ym
            yv = syy / m - ym * ym
        else:
            xm = np.zeros(p)
            ym = 0.0
            cov = Q / m
            xy = t / m
            yv = syy / m
        excluded = hi == lo if fit_intercept else (hi == lo) & (hi == 0.0)
        scale = np.sqrt(np.maximum(np.diagonal(cov), 0.0)) if standardize else np.ones(p)
        scale[excluded] = 1.0
        G = cov / np.outer(scale, scale)
        c = xy / scale
        G[excluded, :] = 0.0
        G[:, excluded] = 0.0
        G[excluded, excluded] = 1.0
        c[excluded] = 0.0
        out.gram[k] = G
        out.linear[k] = c
        out.x_mean[k] = x_shift + xm
        out.x_scale[k] = scale
        out.excluded[k] = excluded
        out.y_mean[k] = y_shift + ym
        out.y_var[k] = max(yv, 0.0)
        out.n_rows[k] = m
    return out


@dataclass
class Solution:
    """Standardized weights along the path: ``weights`` (K, n_lambda, p); ``sweeps`` and ``converged`` (n_lambda,)."""

    weights: np.ndarray
    sweeps: np.ndarray
    converged: np.ndarray
    #: RSS / n of each problem at each λ: shape (K, n_lambda).
    rss: np.ndarray


def solve_path(
    data: Problems,
    lambdas: np.ndarray,
    alpha: float,
    *,
    top: float,
    tol: float,
    max_sweeps: int,
    on_lambda: Callable[[], None] | None = None,
) -> Solution:
    """Every problem at every λ, warm-started, with the sequential strong rule.

    ``top`` is the full data's λ_max, the reference λ for the first strong set; ``on_lambda`` is called
    after each λ (every problem of the batch solved at it) and may raise to stop.
    """
    K, p = data.linear.shape
    quad = cd.Quadratic(data.gram, data.linear)
    W = np.zeros((K, p))
    R = data.linear.copy()
    tols = tol * np.sqrt(np.where(data.y_var > 0.0, data.y_var, 1.0))
    ever = np.zeros(p, dtype=bool)
    n_lambda = len(lambdas)
    weights = np.zeros((K, n_lambda, p))
    rss = np.empty((K, n_lambda))
    sweeps = np.zeros(n_lambda, dtype=np.int64)
    converged = np.ones(n_lambda, dtype=bool)
    previous = max(top, float(lambdas[0]))
    for i, lam in enumerate(lambdas.tolist()):
        l1 = np.full(p, lam * alpha)
        l2 = np.full(p, lam * (1.0 - alpha))
        # Sequential strong rule (Tibshirani et al. 2012): |x_jᵀr/n| ≥ alpha(2λ - λ_prev).
        strong = np.any(np.abs(R) >= alpha * (2.0 * lam - previous), axis=0)
        candidates = (ever | strong) & ~np.all(data.excluded, axis=0)
        R, outcome = cd.solve(quad, W, l1, l2, candidates, tols, max_sweeps)
        ever |= np.any(W != 0.0, axis=0)
        weights[:, i] = W
        sweeps[i] = outcome.sweeps
        converged[i] = outcome.converged
        # RSS/n = y_var - 2cᵀw + wᵀGw, and wᵀGw = cᵀw - rᵀw.
        rss[:, i] = data.y_var - np.einsum("kj,kj->k", data.linear + R, W)
        previous = lam
        if on_lambda is not None:
            on_lambda()
    return Solution(weights, sweeps, converged, np.maximum(rss, 0.0))


def original_scale(data: Problems, weights: np.ndarray, fit_intercept: bool) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients on the raw features and intercepts.

    Parameters
    ----------
    weights : ndarray of shape (K, n_lambda, p)
        Standardized weights.

    Returns
    -------
    coef : ndarray of shape (K, n_lambda, p)
    intercept : ndarray of shape (K, n_lambda)
    """
    coef = weights / data.x_scale[:, None, :]
    if not fit_intercept:
        return coef, np.zeros(coef.shape[:2])
    intercept = data.y_mean[:, None] - np.einsum("klj,kj->kl", coef, data.x_mean)
    return coef, intercept
