"""Cross-validation measures and the λ choice, as cv.glmnet computes them.

Per held-out row a loss (``mse``, ``mae``, ``deviance``, ``misclassification``)
or per fold a score (``auc``); a fold's value is the mean over its rows;
``cvm`` is the mean of the fold values weighted by fold size (for a per-row
loss, the mean over all rows), and ``cvsd`` glmnet's standard error::

    cvsd = sqrt( Σ_k n_k (e_k - cvm)² / Σ_k n_k / (K - 1) )

``lambda_min`` is the largest λ at which ``cvm`` is minimal (maximal for
``auc``) and ``lambda_1se`` the largest λ whose ``cvm`` is within one
``cvsd`` (taken at ``lambda_min``) of it: glmnet's ``getOptcv.glmnet``.
"""

from __future__ import annotations

import numpy as np

from engine.errors import ConfigError

#: Measures per family, the default first. glmnet's names are accepted too (``class``).
MEASURES = {
    "gaussian": ("mse", "mae"),
    "binomial": ("deviance", "misclassification", "auc", "mse", "mae"),
}
ALIASES = {"class": "misclassification"}
#: cv.glmnet clips predicted probabilities to [1e-5, 1 - 1e-5] for the deviance.
PROB_MIN = 1e-5


def resolve(measure: str | None, family: str) -> str:
    """The measure to use: the family's default for ``None``; glmnet's gaussian ``deviance`` is ``mse``."""
    if measure is None:
        return MEASURES[family][0]
    name = ALIASES.get(measure, measure)
    if family == "gaussian" and name == "deviance":
        return "mse"
    if name not in MEASURES[family]:
        raise ConfigError("path.measure", f"{measure!r} is not one of {', '.join(MEASURES[family])} for {family}")
    return name


def _probability(eta: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * eta)))


def row_losses(measure: str, family: str, y: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Per-row loss of predictions ``eta`` (link scale), shape (n_rows, n_lambda); y of shape (n_rows,)."""
    yy = y[:, None]
    if family == "gaussian":
        resid = yy - eta
        return resid * resid if measure == "mse" else np.abs(resid)
    prob = _probability(eta)
    if measure == "deviance":
        prob = np.clip(prob, PROB_MIN, 1.0 - PROB_MIN)
        return np.asarray(-2.0 * np.where(yy == 1.0, np.log(prob), np.log(1.0 - prob)))
    if measure == "misclassification":
        return np.where(yy == 1.0, prob <= 0.5, prob > 0.5).astype(np.float64)
    # glmnet scores both class columns: (y₀ - (1 - p))² + (y₁ - p)² = 2 (y - p)².
    resid = yy - prob
    return 2.0 * resid * resid if measure == "mse" else 2.0 * np.abs(resid)


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve, ties counted one half (survival's concordance); NaN with one class only."""
    positives = y == 1.0
    n1 = int(positives.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(score, kind="stable")
    ordered = score[order]
    ranks = np.empty(len(score))
    # Average ranks over runs of equal scores.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(score)]
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[positives].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def fold_values(measure: str, family: str, y: np.ndarray, eta: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Each fold's value of the measure at each λ, shape (n_folds, n_lambda).

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
    eta : ndarray of shape (n_samples, n_lambda)
        Held-out predictions on the link scale (each row predicted by the fit without its fold).
    groups : list of ndarray
        The row indices of each fold.
    """
    if measure == "auc":
        return np.array([[auc(y[rows], eta[rows, j]) for j in range(eta.shape[1])] for rows in groups])
    losses = row_losses(measure, family, y, eta)
    return np.array([losses[rows].mean(axis=0) for rows in groups])


def summarize(values: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """glmnet's ``cvm`` and ``cvsd`` from fold values (n_folds, n_lambda) and fold sizes (n_folds,).

    A fold whose value is undefined (NaN: an AUC on one class) is left out of that λ's mean.
    """
    present = ~np.isnan(values)
    weights = np.where(present, sizes[:, None], 0.0)
    filled = np.where(present, values, 0.0)
    total = weights.sum(axis=0)
    cvm = (weights * filled).sum(axis=0) / total
    spread = (weights * (filled - cvm) ** 2).sum(axis=0) / total
    counted = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cvsd = np.sqrt(spread / (counted - 1))
    return cvm, cvsd


def select(cvm: np.ndarray, cvsd: np.ndarray, measure: str) -> tuple[int, int]:
    """``(index_min, index_1se)`` along a decreasing λ sequence: glmnet's getOptcv.glmnet.

    The first qualifying index is the largest qualifying λ.
    """
    score = -cvm if measure == "auc" else cvm
    valid = ~np.isnan(score)
    best = np.nanmin(score)
    index_min = int(np.flatnonzero(valid & (score <= best))[0])
    bound = score[index_min] + cvsd[index_min]
    index_1se = int(np.flatnonzero(valid & (score <= bound))[0])
    return index_min, index_1se
