"""``fit_path``: the whole regularization path of a linear or logistic model, as glmnet computes it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.errors import ConfigError, InputError
from engine.paths import binomial, gaussian
from engine.paths.lambdas import default_min_ratio, given_sequence, lambda_max, lambda_sequence

#: The engine's model types name the families too.
FAMILIES = {"gaussian": "gaussian", "linear": "gaussian", "binomial": "binomial", "logistic": "binomial"}
#: Default KKT tolerance, in units of the target's standard deviation (see ``fit_path``).
DEFAULT_TOL = 1e-10
DEFAULT_MAX_SWEEPS = 100_000


@dataclass
class Path:
    """A fitted regularization path; index ``i`` of every array is the point at ``lambdas[i]``.

    Attributes
    ----------
    family : str
        ``"gaussian"`` (squared loss) or ``"binomial"`` (logistic).
    alpha : float
        The elastic-net mixing: penalty ``λ·(alpha‖w‖₁ + (1-alpha)/2·‖w‖₂²)``.
    lambdas : ndarray of shape (n_lambda,)
        Decreasing.
    coef : ndarray of shape (n_lambda, n_features)
        Coefficients on the raw (unstandardized) features.
    intercept : ndarray of shape (n_lambda,)
    nzero : ndarray of shape (n_lambda,)
        Nonzero coefficients (glmnet's ``df``).
    dev_ratio : ndarray of shape (n_lambda,)
        Fraction of the null deviance explained (glmnet's ``dev.ratio``).
    train_loss : ndarray of shape (n_lambda,)
        The data term of the objective: ``RSS / (2n)`` or the mean log-loss.
    n_iter : ndarray of shape (n_lambda,)
        Work per λ: coordinate sweeps (gaussian) or Newton steps (binomial).
    converged : ndarray of shape (n_lambda,)
        Whether KKT held to ``tol`` within the sweep budget.
    lambda_max : float
        The smallest λ at which every coefficient is 0 (for alpha = 0, glmnet's λ_max at alpha = 0.001).
    """

    family: str
    alpha: float
    lambdas: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    nzero: np.ndarray
    dev_ratio: np.ndarray
    train_loss: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    lambda_max: float

    def predict(self, X: np.ndarray, kind: str = "response") -> np.ndarray:
        """Predictions at every λ, shape (n_samples, n_lambda).

        ``kind="link"`` gives the linear predictor ``X coefᵀ + intercept``; ``"response"``
        gives the same for gaussian and the probability of class 1 for binomial.
        """
        eta = np.asarray(X, dtype=np.float64) @ self.coef.T + self.intercept
        if kind == "link" or self.family == "gaussian":
            return np.asarray(eta)
        return np.asarray(0.5 * (1.0 + np.tanh(0.5 * eta)))


def check_inputs(X: np.ndarray, y: np.ndarray, family: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Float64 copies of X (n, p) and y (n,), and the canonical family name."""
    if family not in FAMILIES:
        raise ConfigError("model.type", f"{family!r} has no regularization path (linear or logistic)")
    fam = FAMILIES[family]
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise InputError(f"X must be (n, p) and y (n,); got {X.shape} and {y.shape}")
    if X.shape[0] < 2:
        raise InputError("a path needs at least 2 rows")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise InputError("X and y must be finite")
    if fam == "binomial":
        if not np.all((y == 0.0) | (y == 1.0)):
            raise InputError("binomial targets must be 0 or 1")
        if y.min() == y.max():
            raise InputError("binomial targets hold one class only")
    return X, y, fam


def check_alpha(alpha: float) -> float:
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError("path.alpha", "must be in [0, 1]")
    return float(alpha)


def choose_lambdas(
    top: float,
    shape: tuple[int, int],
    lambdas: np.ndarray | list[float] | None,
    n_lambda: int,
    lambda_min_ratio: float | None,
) -> np.ndarray:
    """The given sequence (sorted decreasing) or glmnet's from ``top`` = λ_max."""
    if lambdas is not None:
        return given_sequence(lambdas)
    ratio = default_min_ratio(*shape) if lambda_min_ratio is None else lambda_min_ratio
    return lambda_sequence(top if top > 0.0 else 1.0, n_lambda, ratio)


def fit_path(
    X: np.ndarray,
    y: np.ndarray,
    *,
    family: str = "gaussian",
    alpha: float = 1.0,
    lambdas: np.ndarray | list[float] | None = None,
    n_lambda: int = 100,
    lambda_min_ratio: float | None = None,
    standardize: bool = True,
    fit_intercept: bool = True,
    tol: float = DEFAULT_TOL,
    max_sweeps: int = DEFAULT_MAX_SWEEPS,
    on_lambda: Callable[[], None] | None = None,
) -> Path:
    """Fit the elastic-net path: every λ solved to optimality, each warm-started from the last.

    Minimizes, at each λ, ``loss(w, b) + λ·(alpha‖w‖₁ + (1-alpha)/2·‖w‖₂²)`` with
    ``loss`` the squared error ``RSS / (2n)`` (gaussian) or the mean
    negative log-likelihood (binomial), the intercept unpenalized. With
    ``standardize`` the penalty applies to the weights of the features
    scaled to unit variance (1/n, glmnet's convention); coefficients are
    reported on the raw scale either way.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Targets; 0/1 for binomial.
    family : {"gaussian", "binomial"} (or the model types "linear", "logistic")
    alpha : float in [0, 1]
        1 is the lasso, 0 the ridge.
    lambdas : array-like of shape (n_lambda,), optional
        The λ values (sorted decreasing); by default ``n_lambda`` values
        log-spaced from λ_max to ``lambda_min_ratio · λ_max``.
    lambda_min_ratio : float, optional
        Default 1e-4 if ``n_samples > n_features`` else 1e-2 (glmnet's).
    tol : float
        KKT tolerance: every point is accepted when no coordinate's
        optimality condition (standardized scale) is off by more than
        ``tol · sd(y)``.
    max_sweeps : int
        Cap on coordinate sweeps per λ (gaussian) or per Newton step (binomial).
    on_lambda : callable, optional
        Called after each λ is solved (progress; it may raise to stop the fit).

    Returns
    -------
    Path
    """
    X, y, fam = check_inputs(X, y, family)
    alpha = check_alpha(alpha)
    n, p = X.shape
    if fam == "gaussian":
        data = gaussian.problems(X, y, [np.arange(n)], fit_intercept=fit_intercept, standardize=standardize)
        top = lambda_max(data.linear[0], alpha)
        seq = choose_lambdas(top, (n, p), lambdas, n_lambda, lambda_min_ratio)
        solution = gaussian.solve_path(data, seq, alpha, top=top, tol=tol, max_sweeps=max_sweeps, on_lambda=on_lambda)
        return gaussian_path(data, solution, seq, alpha, top, fit_intercept, index=0)
    std = binomial.standardize_rows(X, fit_intercept=fit_intercept, standardize=standardize)
    top = lambda_max(binomial.null_gradient(std, y, fit_intercept), alpha)
    seq = choose_lambdas(top, (n, p), lambdas, n_lambda, lambda_min_ratio)
    fit = binomial.solve_path(
        std, y, seq, alpha, fit_intercept=fit_intercept, top=top, tol=tol, max_sweeps=max_sweeps, on_lambda=on_lambda
    )
    return binomial_path(std, y, fit, seq, alpha, top, fit_intercept)


def gaussian_path(
    data: gaussian.Problems,
    solution: gaussian.Solution,
    lambdas: np.ndarray,
    alpha: float,
    top: float,
    fit_intercept: bool,
    index: int,
) -> Path:
    """Problem ``index`` of a solved batch as a :class:`Path`."""
    coef, intercept = gaussian.original_scale(data, solution.weights[index : index + 1], fit_intercept)
    null = data.y_var[index]
    rss = solution.rss[index]
    return Path(
        family="gaussian",
        alpha=alpha,
        lambdas=lambdas,
        coef=coef[0],
        intercept=intercept[0],
        nzero=np.count_nonzero(coef[0], axis=1),
        dev_ratio=1.0 - rss / null if null > 0.0 else np.zeros(len(lambdas)),
        train_loss=0.5 * rss,
        n_iter=solution.sweeps,
        converged=solution.converged,
        lambda_max=top,
    )


def binomial_path(
    std: binomial.Standardized,
    y: np.ndarray,
    fit: binomial.Solution,
    lambdas: np.ndarray,
    alpha: float,
    top: float,
    fit_intercept: bool,
) -> Path:
    """A solved binomial path on the raw scale."""
    coef = fit.weights / std.scale
    intercept = fit.intercept - coef @ std.mean
    b0 = binomial.null_model(y, fit_intercept)
    null = binomial.log_loss(y, np.full(len(y), b0))
    return Path(
        family="binomial",
        alpha=alpha,
        lambdas=lambdas,
        coef=coef,
        intercept=intercept,
        nzero=np.count_nonzero(coef, axis=1),
        dev_ratio=1.0 - fit.loss / null,
        train_loss=fit.loss,
        n_iter=fit.iterations,
        converged=fit.converged,
        lambda_max=top,
    )
