"""The λ sequence of a path: λ_max from the data, then log-spaced down, as glmnet makes it."""

from __future__ import annotations

import numpy as np

from engine.errors import ConfigError

#: glmnet computes λ_max with ``max(alpha, 1e-3)``: for the ridge (alpha = 0) no finite λ zeroes
#: every weight, so the sequence starts where a penalty with alpha = 0.001 would.
MIN_ALPHA_FOR_LAMBDA_MAX = 1e-3


def lambda_max(gradient: np.ndarray, alpha: float) -> float:
    """The smallest λ at which every weight is 0.

    Parameters
    ----------
    gradient : ndarray of shape (n_features,)
        The loss gradient at the null model (intercept only), in the
        standardized coordinates: ``x_jᵀ(y - ŷ₀) / n``.
    alpha : float
        The mixing ``alpha`` of the penalty ``λ·(alpha‖w‖₁ + (1-alpha)/2·‖w‖₂²)``.
    """
    if gradient.size == 0:
        return 0.0
    return float(np.max(np.abs(gradient))) / max(alpha, MIN_ALPHA_FOR_LAMBDA_MAX)


def default_min_ratio(n_samples: int, n_features: int) -> float:
    """glmnet's ``lambda.min.ratio``: 1e-4 when there are more rows than features, else 1e-2."""
    return 1e-4 if n_samples > n_features else 1e-2


def lambda_sequence(top: float, n_lambda: int, min_ratio: float) -> np.ndarray:
    """``n_lambda`` values log-spaced from ``top`` down to ``top * min_ratio`` (shape (n_lambda,))."""
    if n_lambda < 1:
        raise ConfigError("path.n_lambdas", "must be at least 1")
    if not 0.0 < min_ratio < 1.0:
        raise ConfigError("path.lambda_min_ratio", "must be in (0, 1)")
    if n_lambda == 1:
        return np.array([top])
    # glmnet's own recursion: λ_k = λ_max · ratio^(k/(n-1)).
    return top * np.exp(np.log(min_ratio) * np.arange(n_lambda) / (n_lambda - 1))


def given_sequence(lambdas: np.ndarray | list[float]) -> np.ndarray:
    """A caller's λ values, checked and sorted decreasing (shape (n_lambda,))."""
    values = np.asarray(lambdas, dtype=np.float64).ravel()
    if values.size == 0:
        raise ConfigError("path.lambdas", "must hold at least one value")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ConfigError("path.lambdas", "must be finite and non-negative")
    return np.sort(values)[::-1].copy()
