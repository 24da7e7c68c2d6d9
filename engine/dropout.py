"""Inverted dropout masks.

At train time each unit is kept with probability ``1 - p`` and survivors are
scaled by ``1 / (1 - p)``, so the expected activation is unchanged and
evaluation needs no rescaling: at evaluation dropout is the identity. The
same mask multiplies the forward activation and the backward gradient.
"""

from __future__ import annotations

import numpy as np


def fill_mask(rng: np.random.Generator, p: float, mask: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Draw an inverted-dropout mask into ``mask``: ``1/(1-p)`` with probability ``1-p``, else 0.

    Parameters
    ----------
    rng : numpy.random.Generator
    p : float
        Drop probability in [0, 1).
    mask, uniform : ndarray of shape (n_samples, n_units)
        Output and work buffer, both of the training dtype.
    """
    rng.random(dtype=uniform.dtype.type, out=uniform)
    np.greater_equal(uniform, p, out=mask)
    mask *= 1.0 / (1.0 - p)
    return mask
