"""Cyclic coordinate descent on the Gram (covariance) form, for K problems at once.

Every path point, of either family, comes down to ``K`` penalized quadratics
over the same ``p`` coordinates::

    minimize over w   ½ wᵀ G_k w - c_kᵀ w + Σ_j l1_j |w_j| + Σ_j l2_j / 2 · w_j²

(``G_k`` symmetric positive semi-definite, shape (p, p)): a least-squares
fit with standardized features has ``G = XᵀX / n`` and ``c = Xᵀy / n``; a
logistic fit's Newton step has ``G = XᵀVX / n`` (glmnet's quadratic
approximation). Cross-validation's folds are the ``K`` problems of one
call, so one Python loop over the coordinates updates every fold's weight
in one NumPy operation.

The solver keeps ``r = c - G w`` (the negative gradient of the smooth part
without the ridge term) for every coordinate, so the KKT conditions of
every coordinate are checked for free. The stopping rule is KKT: a point is
accepted when, for every problem and every coordinate, the distance from
``r_j - l2_j w_j`` to the subdifferential ``l1_j ∂|w_j|`` is at most the
problem's ``tol`` (with ``r`` recomputed from scratch, so no rounding
accumulated by the updates hides a violation).

Between checks it runs glmnet's schedule: one sweep over the candidate set
(the strong set and everything ever active), then sweeps over the active
coordinates only until no step exceeds the tolerance, then the check;
coordinates outside the candidate set that violate KKT join it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Relative margin by which a sweep's soft threshold exceeds l1 (see :func:`solve`).
TIE_MARGIN = 1e-13


@dataclass
class Quadratic:
    """K quadratic problems over the same coordinates.

    Parameters
    ----------
    gram : ndarray of shape (K, p, p)
        ``G_k``, symmetric.
    linear : ndarray of shape (K, p)
        ``c_k``.
    """

    gram: np.ndarray
    linear: np.ndarray
    #: rows[j] is row j of every G_k, contiguous: shape (p, K, p).
    rows: np.ndarray = field(init=False, repr=False)
    #: diag[j] is G_k[j, j] for every k: shape (p, K).
    diag: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rows = np.ascontiguousarray(self.gram.transpose(1, 0, 2))
        self.diag = np.ascontiguousarray(np.diagonal(self.gram, axis1=1, axis2=2).T)

    @property
    def n_problems(self) -> int:
        return int(self.gram.shape[0])

    @property
    def n_coords(self) -> int:
        return int(self.gram.shape[1])

    def residual(self, W: np.ndarray) -> np.ndarray:
        """``r = c - G w`` computed from scratch (W and r of shape (K, p))."""
        return self.linear - np.matmul(self.gram, W[:, :, None])[:, :, 0]


def kkt_violation(W: np.ndarray, R: np.ndarray, l1: np.ndarray, l2: np.ndarray) -> np.ndarray:
    """Per problem and coordinate, how far ``w_j`` is from satisfying its optimality condition.

    Parameters
    ----------
    W, R : ndarray of shape (K, p)
        Weights and ``r = c - G w``.
    l1, l2 : ndarray of shape (p,)
        Per-coordinate penalties.

    Returns
    -------
    ndarray of shape (K, p)
        ``|r_j - l2_j w_j - l1_j sign(w_j)|`` where ``w_j ≠ 0``, ``max(|r_j| - l1_j, 0)`` where it is 0.
    """
    q = R - l2 * W
    at_zero = np.maximum(np.abs(q) - l1, 0.0)
    off_zero = np.abs(q - l1 * np.sign(W))
    return np.where(W == 0.0, at_zero, off_zero)


def _sweep_one(
    coords: np.ndarray,
    w: np.ndarray,
    r: np.ndarray,
    rows: np.ndarray,
    diag: np.ndarray,
    hess: np.ndarray,
    l1: np.ndarray,
    inv_tol: float,
) -> float:
    """One cyclic pass for a single problem (w, r of shape (p,)); returns the largest step in tolerances."""
    worst = 0.0
    for j in coords.tolist():
        wj = float(w[j])
        z = float(r[j]) + float(diag[j]) * wj
        shrunk = abs(z) - float(l1[j])
        new = (shrunk if z > 0.0 else -shrunk) / float(hess[j]) if shrunk > 0.0 else 0.0
        d = new - wj
        if d == 0.0:
            continue
        w[j] = new
        r -= d * rows[j]
        step = abs(d) * float(hess[j]) * inv_tol
        worst = max(worst, step)
    return worst


def _sweep_batch(
    coords: np.ndarray,
    WT: np.ndarray,
    R: np.ndarray,
    rows: np.ndarray,
    diag: np.ndarray,
    inv_hess: np.ndarray,
    l1: np.ndarray,
    step_scale: np.ndarray,
    buf: np.ndarray,
) -> float:
    """One cyclic pass for K problems (WT of shape (p, K), R of shape (K, p)); the largest step in tolerances.

    ``inv_hess`` is ``1 / (G_jj + l2_j)`` and ``step_scale`` is ``(G_jj + l2_j) / tol``, both (p, K).
    """
    worst = 0.0
    for j in coords.tolist():
        w = WT[j]
        z = R[:, j] + diag[j] * w
        new = np.copysign(np.maximum(np.abs(z) - l1[j], 0.0), z) * inv_hess[j]
        d = new - w
        step = float((np.abs(d) * step_scale[j]).max())
        if step == 0.0:
            continue
        WT[j] = new
        np.multiply(rows[j], d[:, None], out=buf)
        R -= buf
        worst = max(worst, step)
    return worst


@dataclass
class Outcome:
    """What one :func:`solve` call did."""

    sweeps: int
    converged: bool


def solve(
    problem: Quadratic,
    W: np.ndarray,
    l1: np.ndarray,
    l2: np.ndarray,
    candidates: np.ndarray,
    tol: np.ndarray,
    max_sweeps: int,
) -> tuple[np.ndarray, Outcome]:
    """Minimize every problem from the warm start ``W`` until KKT holds to ``tol``.

    Parameters
    ----------
    problem : Quadratic
    W : ndarray of shape (K, p)
        Warm start, updated in place.
    l1, l2 : ndarray of shape (p,)
        Per-coordinate penalties (0 for an unpenalized coordinate such as an intercept).
    candidates : ndarray of shape (p,), bool
        Coordinates to update first (strong set | ever active); grown in place by KKT violators.
    tol : ndarray of shape (K,)
        Each problem's KKT tolerance.
    max_sweeps : int
        Cap on passes over coordinates; reaching it returns ``converged=False``.

    Returns
    -------
    R : ndarray of shape (K, p)
        ``c - G w`` at the returned weights, exact.
    outcome : Outcome
    """
    K = problem.n_problems
    hess = problem.diag + l2[:, None]  # (p, K)
    # A coordinate exactly at its threshold stays 0 even when λ·alpha rounded one ulp low
    # (λ_max · alpha / alpha), so the weights at λ_max are exactly zero.
    threshold = l1 * (1.0 + TIE_MARGIN)
    inv_tol = 1.0 / tol
    inv_hess = 1.0 / hess
    step_scale = hess * inv_tol
    R = problem.residual(W)
    WT = np.ascontiguousarray(W.T)
    buf = np.empty_like(R)
    inner = 1.0  # steps below this many tolerances end the active-set sweeps

    def sweep(coords: np.ndarray) -> float:
        if K == 1:
            return _sweep_one(
                coords, WT[:, 0], R[0], problem.rows[:, 0], problem.diag[:, 0], hess[:, 0], threshold, float(inv_tol[0])
            )
        return _sweep_batch(coords, WT, R, problem.rows, problem.diag, inv_hess, threshold, step_scale, buf)

    sweeps = 0
    while True:
        worst = sweep(np.flatnonzero(candidates))
        sweeps += 1
        while worst > inner and sweeps < max_sweeps:
            active = np.flatnonzero(candidates & np.any(WT != 0.0, axis=1))
            worst = sweep(active)
            sweeps += 1
        W[:] = WT.T
        R[:] = problem.residual(W)
        violation = kkt_violation(W, R, l1, l2) * inv_tol[:, None]
        bad = violation > 1.0
        if not bad.any():
            return R, Outcome(sweeps, True)
        if sweeps >= max_sweeps:
            return R, Outcome(sweeps, False)
        entering = np.any(bad & (W == 0.0), axis=0)
        if np.any(entering & ~candidates):
            candidates |= entering
        elif not entering.any():
            # Only coordinates already moving are off: the active sweeps stopped too early.
            inner *= 0.1
