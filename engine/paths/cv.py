"""``cv_path``: k-fold cross-validation over one λ sequence, and the 1-SE choice (cv.glmnet)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.errors import InputError
from engine.paths import binomial, gaussian, measures
from engine.paths.lambdas import lambda_max
from engine.paths.path import (
    DEFAULT_MAX_SWEEPS,
    DEFAULT_TOL,
    Path,
    binomial_path,
    check_alpha,
    check_inputs,
    choose_lambdas,
    gaussian_path,
)


@dataclass
class CVPath:
    """A path on all rows and its cross-validation curve; names as cv.glmnet's.

    Attributes
    ----------
    path : Path
        The fit on every row at every λ.
    lambdas : ndarray of shape (n_lambda,)
        Decreasing; computed from every row, shared by the folds.
    cvm : ndarray of shape (n_lambda,)
        Mean cross-validated measure.
    cvsd : ndarray of shape (n_lambda,)
        Its standard error (fold-size-weighted sd of the fold values / sqrt(K - 1), glmnet's).
    nzero : ndarray of shape (n_lambda,)
        Nonzero coefficients of ``path``.
    fold_values : ndarray of shape (n_folds, n_lambda)
        Each fold's measure (its held-out rows, predicted by the fit without them).
    folds : ndarray of shape (n_folds,)
        The fold ids, in the order of ``fold_values``' rows.
    measure : str
    index_min, index_1se : int
        Into ``lambdas``.
    """

    path: Path
    lambdas: np.ndarray
    cvm: np.ndarray
    cvsd: np.ndarray
    nzero: np.ndarray
    fold_values: np.ndarray
    folds: np.ndarray
    measure: str
    index_min: int
    index_1se: int

    @property
    def lambda_min(self) -> float:
        """The λ with the best ``cvm`` (the largest such, on ties)."""
        return float(self.lambdas[self.index_min])

    @property
    def lambda_1se(self) -> float:
        """The largest λ whose ``cvm`` is within one ``cvsd`` of the best."""
        return float(self.lambdas[self.index_1se])

    @property
    def cvup(self) -> np.ndarray:
        return self.cvm + self.cvsd

    @property
    def cvlo(self) -> np.ndarray:
        return self.cvm - self.cvsd


def fold_groups(folds: np.ndarray, n_samples: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct fold ids (sorted) and each one's row indices."""
    ids = np.asarray(folds).ravel()
    if ids.shape != (n_samples,):
        raise InputError(f"folds must hold one id per row: shape ({n_samples},), got {np.asarray(folds).shape}")
    labels, inverse = np.unique(ids, return_inverse=True)
    if len(labels) < 2:
        raise InputError("cross-validation needs at least 2 folds")
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(labels) + 1))
    return labels, [order[bounds[k] : bounds[k + 1]] for k in range(len(labels))]


def cv_path(
    X: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    *,
    family: str = "gaussian",
    alpha: float = 1.0,
    lambdas: np.ndarray | list[float] | None = None,
    n_lambda: int = 100,
    lambda_min_ratio: float | None = None,
    measure: str | None = None,
    standardize: bool = True,
    fit_intercept: bool = True,
    tol: float = DEFAULT_TOL,
    max_sweeps: int = DEFAULT_MAX_SWEEPS,
    on_lambda: Callable[[], None] | None = None,
) -> CVPath:
    """Cross-validate the path over given folds, as ``cv.glmnet(..., foldid=folds)``.

    The λ sequence comes from all rows (see :func:`engine.paths.fit_path`
    for it and the other parameters); each fold's model is the path fitted
    without the fold's rows, with its own standardization, on that same
    sequence, and predicts the fold. For gaussian the full fit and every
    fold are one batched problem on the covariance form (one pass over the
    data); binomial folds are solved one after the other.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    folds : ndarray of shape (n_samples,)
        Each row's fold id (any labels; at least two distinct).
    measure : str, optional
        ``mse`` (gaussian default), ``mae``; for binomial ``deviance`` (default),
        ``misclassification`` (glmnet's ``class``), ``auc``, ``mse``, ``mae``.
    on_lambda : callable, optional
        Called after each λ of each solve: ``n_lambda`` times for gaussian (one batch), ``(K + 1) · n_lambda``
        for binomial (the full fit, then each fold); it may raise to stop.

    Returns
    -------
    CVPath
    """
    X, y, fam = check_inputs(X, y, family)
    alpha = check_alpha(alpha)
    name = measures.resolve(measure, fam)
    n, p = X.shape
    labels, groups = fold_groups(folds, n)
    held_out = np.empty((n, 0))
    if fam == "gaussian":
        data = gaussian.problems(X, y, groups, fit_intercept=fit_intercept, standardize=standardize)
        top = lambda_max(data.linear[0], alpha)
        seq = choose_lambdas(top, (n, p), lambdas, n_lambda, lambda_min_ratio)
        solution = gaussian.solve_path(data, seq, alpha, top=top, tol=tol, max_sweeps=max_sweeps, on_lambda=on_lambda)
        path = gaussian_path(data, solution, seq, alpha, top, fit_intercept, index=0)
        coef, intercept = gaussian.original_scale(data, solution.weights, fit_intercept)
        held_out = np.empty((n, len(seq)))
        for k, rows in enumerate(groups):
            held_out[rows] = X[rows] @ coef[k + 1].T + intercept[k + 1]
    else:
        std = binomial.standardize_rows(X, fit_intercept=fit_intercept, standardize=standardize)
        top = lambda_max(binomial.null_gradient(std, y, fit_intercept), alpha)
        seq = choose_lambdas(top, (n, p), lambdas, n_lambda, lambda_min_ratio)

        def solve(rows_std: binomial.Standardized, rows_y: np.ndarray) -> Path:
            fit = binomial.solve_path(
                rows_std,
                rows_y,
                seq,
                alpha,
                fit_intercept=fit_intercept,
                top=top,
                tol=tol,
                max_sweeps=max_sweeps,
                on_lambda=on_lambda,
            )
            return binomial_path(rows_std, rows_y, fit, seq, alpha, top, fit_intercept)

        path = solve(std, y)
        held_out = np.empty((n, len(seq)))
        for rows in groups:
            train = np.ones(n, dtype=bool)
            train[rows] = False
            if np.all(y[train] == y[train][0]):
                raise InputError("a fold's training rows hold one class only")
            fold_std = binomial.standardize_rows(X[train], fit_intercept=fit_intercept, standardize=standardize)
            held_out[rows] = solve(fold_std, y[train]).predict(X[rows], kind="link")
    values = measures.fold_values(name, fam, y, held_out, groups)
    sizes = np.array([len(rows) for rows in groups], dtype=np.float64)
    cvm, cvsd = measures.summarize(values, sizes)
    index_min, index_1se = measures.select(cvm, cvsd, name)
    return CVPath(
        path=path,
        lambdas=seq,
        cvm=cvm,
        cvsd=cvsd,
        nzero=path.nzero,
        fold_values=values,
        folds=labels,
        measure=name,
        index_min=index_min,
        index_1se=index_1se,
    )
