"""Data losses of the three output heads, with their gradients.

Every loss is a mean over samples. Classification losses work on logits and
go through log-sum-exp, so no probability is ever exponentiated into overflow
or logged at zero.
"""

from __future__ import annotations

import numpy as np

#: Output head of each task/class-count combination.
HEADS = ("identity", "sigmoid", "softmax")


def head_for(task: str, n_classes: int) -> str:
    """The output head: identity for regression, sigmoid for 2 classes, softmax for more."""
    if task == "regression":
        return "identity"
    return "sigmoid" if n_classes == 2 else "softmax"


def loss(head: str, z: np.ndarray, y: np.ndarray) -> float:
    """Mean data loss of logits ``z`` against targets ``y``.

    Parameters
    ----------
    head : {"identity", "sigmoid", "softmax"}
    z : ndarray of shape (n_samples, n_outputs)
        Network outputs (logits for the classification heads).
    y : ndarray of shape (n_samples,)
        Float targets (identity), 0/1 labels (sigmoid) or class indices (softmax).

    Returns
    -------
    float
        Mean squared error, binary or categorical cross-entropy.
    """
    if z.shape[0] == 0:
        return float("nan")
    if head == "identity":
        diff = z[:, 0] - y
        return float(np.dot(diff, diff) / len(y))
    if head == "sigmoid":
        s = z[:, 0]
        # softplus(s) - y*s, with softplus(s) = max(s, 0) + log1p(exp(-|s|)).
        per = np.maximum(s, 0.0) - s * y + np.log1p(np.exp(-np.abs(s)))
        return float(per.mean())
    zmax = z.max(axis=1)
    lse = np.log(np.exp(z - zmax[:, None]).sum(axis=1)) + zmax
    return float((lse - z[np.arange(len(y)), y]).mean())


def gradient(head: str, z: np.ndarray, y: np.ndarray, out: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Gradient of :func:`loss` with respect to ``z``, times ``scale``, written into ``out``.

    ``out`` may be ``z`` itself (the logits are then consumed).

    Parameters
    ----------
    z, out : ndarray of shape (n_samples, n_outputs)
    y : ndarray of shape (n_samples,)
    scale : float
        Multiplies the gradient (and so every gradient backpropagated from it).
    """
    m = z.shape[0]
    if head == "identity":
        np.subtract(z[:, 0], y, out=out[:, 0])
        out *= 2.0 * scale / m
    elif head == "sigmoid":
        s = out[:, 0]
        np.multiply(z[:, 0], 0.5, out=s)
        np.tanh(s, out=s)
        s += 1.0
        s *= 0.5  # sigmoid(z)
        s -= y
        out *= scale / m
    else:
        # (softmax(z) - onehot(y)) / m. Reductions run over the contiguous class-major
        # copy and the row sums as a matrix-vector product: NumPy reduces a short axis
        # slowly, and this runs once per mini-batch.
        by_class = np.ascontiguousarray(z.T)
        row_max = np.maximum.reduce(by_class, axis=0)
        np.subtract(z, row_max[:, None], out=out)
        np.exp(out, out=out)
        total = out @ np.ones(out.shape[1], dtype=out.dtype)
        total *= m / scale
        out /= total[:, None]
        if out.flags.c_contiguous:  # flat indices: a third of the cost of a 2-D fancy index
            out.reshape(-1)[np.arange(m) * out.shape[1] + y] -= scale / m
        else:
            out[np.arange(m), y] -= scale / m
    return out


def predict_proba(head: str, z: np.ndarray) -> np.ndarray:
    """Class probabilities from logits.

    Parameters
    ----------
    z : ndarray of shape (n_samples, 1) for sigmoid or (n_samples, n_classes) for softmax

    Returns
    -------
    ndarray of shape (n_samples, n_classes)
    """
    if head == "sigmoid":
        p1 = 0.5 * (1.0 + np.tanh(0.5 * z[:, 0]))
        return np.stack([1.0 - p1, p1], axis=1)
    if head == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))
    raise ValueError("probabilities exist for classification heads only")
