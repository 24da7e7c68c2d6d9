"""Evaluation metrics: accuracy for classifiers, R² and MAE for regressors."""

from __future__ import annotations

import numpy as np


def predicted_classes(head: str, z: np.ndarray) -> np.ndarray:
    """Class indices from logits: ``z > 0`` for a sigmoid head, argmax for softmax.

    Parameters
    ----------
    z : ndarray of shape (n_samples, n_outputs)
    """
    if head == "sigmoid":
        return (z[:, 0] > 0).astype(np.int64)
    return np.asarray(z.argmax(axis=1))


def accuracy(head: str, z: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose predicted class index equals ``y`` (shape (n_samples,))."""
    return float(np.mean(predicted_classes(head, z) == y))


def r2(y_pred: np.ndarray, y: np.ndarray) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (shapes (n_samples,)).

    A constant target gives 1.0 for a perfect fit and 0.0 otherwise, as scikit-learn does.
    """
    resid = np.asarray(y, dtype=np.float64) - y_pred
    ss_res = float(np.dot(resid, resid))
    centred = y - np.mean(y, dtype=np.float64)
    ss_tot = float(np.dot(centred, centred))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def mae(y_pred: np.ndarray, y: np.ndarray) -> float:
    """Mean absolute error (shapes (n_samples,))."""
    return float(np.mean(np.abs(np.asarray(y, dtype=np.float64) - y_pred)))
