"""Weight penalties: L2 through the gradient, L1 through a proximal step.

The penalized objective is ``data_loss + l1 * sum|w| + l2 * sum w**2`` over
the weights only (biases are never penalized). L2 is smooth and joins the
gradient. L1 is not differentiable at zero, so instead of a subgradient it is
applied after each optimizer update as the proximal operator of
``step * l1 * |w|``, the soft threshold, which sets small weights exactly to
zero (ISTA; with full batches the iteration converges to the exact lasso or
elastic-net solution).
"""

from __future__ import annotations

import numpy as np


def value(weights: np.ndarray, l1: float, l2: float) -> float:
    """Penalty ``l1 * sum|w| + l2 * sum w**2``.

    Parameters
    ----------
    weights : ndarray of shape (n_weights,)
        All weights, flattened (no biases).
    """
    total = 0.0
    if l1:
        total += l1 * float(np.abs(weights).sum(dtype=np.float64))
    if l2:
        total += l2 * float(np.dot(weights, weights))
    return total


#: Gradient scales :func:`l2_gradient_scale` may choose (l2 from 7.6e-6 to 512):
#: squares of scaled float32 gradients overflow only past |g| ~ 2.8e14, far
#: beyond any gradient of a converging run.
L2_SCALE_RANGE = (2.0**-10, 2.0**16)


def l2_gradient_scale(l2: float) -> float:
    """The scale ``1 / (2 * l2)`` at which the trainer forms data gradients, or 1.

    At that scale the L2 gradient ``2 * l2 * w`` becomes ``w`` itself and joins
    the gradient in one pass (``grad += w``) instead of two (multiply, then
    add). Scaling the data gradient costs nothing: it scales the loss
    gradient of the batch, a (batch, outputs) array, before backpropagation.
    The optimizers compensate exactly (see :mod:`engine.optimizers`). Outside
    :data:`L2_SCALE_RANGE`, and without L2, the scale is 1.
    """
    if l2 <= 0.0:
        return 1.0
    scale = 1.0 / (2.0 * l2)
    low, high = L2_SCALE_RANGE
    return scale if low <= scale <= high else 1.0


def add_l2_gradient(
    weights: np.ndarray,
    grad: np.ndarray,
    l2: float,
    scratch: np.ndarray | None = None,
    grad_scale: float = 1.0,
) -> None:
    """Add the L2 gradient ``2 * l2 * w``, times ``grad_scale``, to ``grad`` in place.

    Parameters
    ----------
    weights, grad : ndarray of shape (n_weights,)
        ``grad`` holds gradients multiplied by ``grad_scale``.
    l2 : float
    scratch : ndarray of shape (n_weights,), optional
        Spares a temporary.
    grad_scale : float
        At ``l2_gradient_scale(l2)`` (when that is not 1) the addition is ``grad += w``.
    """
    if not l2:
        return
    if grad_scale != 1.0 and grad_scale == l2_gradient_scale(l2):
        grad += weights
    else:
        grad += np.multiply(weights, 2.0 * l2 * grad_scale, out=scratch)


def l1_subgradient(weights: np.ndarray, l1: float) -> np.ndarray:
    """``l1 * sign(w)``: the L1 gradient away from zero (for gradient checks only)."""
    return np.asarray(l1 * np.sign(weights))


def soft_threshold(weights: np.ndarray, threshold: float | np.ndarray, scratch: np.ndarray) -> None:
    """Proximal step of the L1 penalty, in place: ``w <- sign(w) * max(|w| - t, 0)``.

    Parameters
    ----------
    weights : ndarray of shape (n_weights,)
    threshold : float or ndarray of shape (n_weights,)
        ``step_size * l1``; per coordinate for adaptive optimizers.
    scratch : ndarray of shape (n_weights,)
        Work buffer, overwritten.
    """
    np.abs(weights, out=scratch)
    scratch -= threshold
    np.maximum(scratch, 0.0, out=scratch)
    np.copysign(scratch, weights, out=weights)
    # copysign leaves -0.0 where a negative weight was cut; make zeros plain.
    weights += 0.0
