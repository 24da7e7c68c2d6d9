"""Inverted dropout masks.

At train time each unit is kept with probability ``1 - p`` and survivors are
scaled by ``1 / (1 - p)``, so the expected activation is unchanged and
evaluation needs no rescaling: at evaluation dropout is the identity. The
same mask multiplies the forward activation and the backward gradient.

A unit is dropped when a uniform 16-bit integer from the generator's raw bit
stream falls below ``round(p * 2**16)``: the rate applied is ``p`` rounded to
a multiple of 2**-16 (within 7.7e-6 of it), at a third of the cost of
drawing floats. When that rounded rate is a multiple of 2**-8 (0.5, 0.25,
0.375, ...), 8-bit integers decide the same rate exactly, with half the draws.
"""

from __future__ import annotations

import numpy as np

#: Resolution of the drop decision: rates are applied in steps of 1 / DRAW_LEVELS.
DRAW_LEVELS = 1 << 16


def threshold(p: float) -> int:
    """The 16-bit draw below which a unit is dropped at rate ``p``."""
    return min(round(p * DRAW_LEVELS), DRAW_LEVELS - 1)


def fill_mask(rng: np.random.Generator, p: float, mask: np.ndarray) -> np.ndarray:
    """Draw an inverted-dropout mask into ``mask``: ``1/(1-p)`` with probability ``1-p``, else 0.

    Parameters
    ----------
    rng : numpy.random.Generator
        Its bit generator supplies the draws (``random_raw``: 64 bits, four or eight units).
    p : float
        Drop probability in [0, 1).
    mask : ndarray of shape (n_samples, n_units)
        Output, of the training dtype.
    """
    n = mask.size
    cut = threshold(p)
    draws: np.ndarray
    if cut % 256 == 0:
        draws = rng.bit_generator.random_raw((n + 7) // 8).view(np.uint8)[:n]
        cut >>= 8
    else:
        draws = rng.bit_generator.random_raw((n + 3) // 4).view(np.uint16)[:n]
    np.greater_equal(draws.reshape(mask.shape), cut, out=mask)
    mask *= 1.0 / (1.0 - p)
    return mask
