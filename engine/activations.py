"""Hidden-layer activations, computed in place.

Each activation is applied to the pre-activation ``z`` in place. The backward
pass needs a derivative factor; relu's is formed in the forward pass together
with the dropout mask (see :mod:`engine.network`), tanh and sigmoid derive
theirs from the activation value ``a`` itself.
"""

from __future__ import annotations

import numpy as np


def apply(name: str, z: np.ndarray) -> np.ndarray:
    """Replace ``z`` by ``activation(z)`` in place and return it.

    Parameters
    ----------
    name : {"relu", "tanh", "sigmoid"}
    z : ndarray of shape (n_samples, n_units)
    """
    if name == "relu":
        np.maximum(z, 0.0, out=z)
    elif name == "tanh":
        np.tanh(z, out=z)
    elif name == "sigmoid":
        # 0.5 * (1 + tanh(z / 2)) is the logistic function without exp overflow.
        z *= 0.5
        np.tanh(z, out=z)
        z += 1.0
        z *= 0.5
    else:
        raise ValueError(f"unknown activation {name!r}")
    return z


def multiply_derivative(name: str, a: np.ndarray, grad: np.ndarray, scratch: np.ndarray) -> None:
    """Multiply ``grad`` in place by the activation's derivative, given ``a = activation(z)``.

    Parameters
    ----------
    name : {"relu", "tanh", "sigmoid"}
    a : ndarray of shape (n_samples, n_units)
        The activation values (before dropout).
    grad : ndarray of shape (n_samples, n_units)
        Gradient with respect to ``a``; becomes the gradient with respect to ``z``.
    scratch : ndarray of shape (n_samples, n_units)
        Work buffer, overwritten.
    """
    if name == "relu":
        np.greater(a, 0.0, out=scratch)
    elif name == "tanh":
        np.multiply(a, a, out=scratch)
        np.subtract(1.0, scratch, out=scratch)
    elif name == "sigmoid":
        np.subtract(1.0, a, out=scratch)
        scratch *= a
    else:
        raise ValueError(f"unknown activation {name!r}")
    grad *= scratch
