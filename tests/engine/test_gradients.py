"""Analytic gradients against central differences, in float64.

Every model x activation x loss x penalty x dropout combination: the data-loss
gradient from the backward pass plus the penalty gradient (2·l2·w, and
l1·sign(w) with every weight kept away from zero) must match central
differences of the objective with the dropout masks held fixed. The fourth-order
central stencil keeps both truncation (h**4) and round-off (1e-16 / h) far
below the tolerance, even for the smallest gradient entries.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine import losses, penalties
from engine.network import Network

EPS = 1e-4
TOLERANCE = 1e-6

HEADS = {"identity": 1, "sigmoid": 1, "softmax": 3}
PENALTIES = {"none": (0.0, 0.0), "l2": (0.0, 0.03), "l1": (0.02, 0.0), "elastic_net": (0.02, 0.03)}


def _problem(head: str, hidden: list[int], activation: str, dropout: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    n, n_in = 7, 4
    net = Network([n_in, *hidden, HEADS[head]], activation, head, np.dtype(np.float64))
    net.initialize(rng)
    # Keep every weight away from zero so |w| is differentiable within +-EPS.
    w = net.params[: net.n_weights]
    w[:] = np.sign(rng.standard_normal(w.size)) * rng.uniform(0.1, 0.6, size=w.size)
    net.params[net.n_weights :] = rng.uniform(-0.3, 0.3, size=net.params.size - net.n_weights)
    X = rng.standard_normal((n, n_in))
    if head == "identity":
        y = rng.standard_normal(n)
    elif head == "sigmoid":
        y = np.array([0, 1, 1, 0, 1, 0, 0], dtype=np.float64)
    else:
        y = np.array([0, 1, 2, 2, 1, 0, 2], dtype=np.int64)
    masks: list[np.ndarray | None] = [None] * (len(hidden) + 1)
    if dropout:
        for i, units in enumerate([n_in, *hidden]):
            p = 0.25 if i == 0 else 0.4
            masks[i] = (rng.uniform(size=(n, units)) >= p) / (1.0 - p)
    return net, X, y, masks


def _objective(net: Network, X, y, masks, l1: float, l2: float) -> float:
    data_loss = net.loss_and_gradient(X, y, masks)
    return data_loss + penalties.value(net.params[: net.n_weights], l1, l2)


def _analytic(net: Network, X, y, masks, l1: float, l2: float) -> np.ndarray:
    net.loss_and_gradient(X, y, masks)
    grad = net.grads.copy()
    w = net.params[: net.n_weights]
    penalties.add_l2_gradient(w, grad[: net.n_weights], l2)
    grad[: net.n_weights] += penalties.l1_subgradient(w, l1)
    return grad


def _numeric(net: Network, X, y, masks, l1: float, l2: float) -> np.ndarray:
    grad = np.zeros_like(net.params)
    for i in range(net.params.size):
        saved = net.params[i]
        f = {}
        for k in (-2, -1, 1, 2):
            net.params[i] = saved + k * EPS
            f[k] = _objective(net, X, y, masks, l1, l2)
        net.params[i] = saved
        grad[i] = (8 * (f[1] - f[-1]) - (f[2] - f[-2])) / (12 * EPS)
    return grad


def _max_relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = np.maximum(np.abs(analytic) + np.abs(numeric), 1e-7)
    return float(np.max(np.abs(analytic - numeric) / scale))


CASES = [
    # (model, head, hidden, activation, dropout)
    ("linear", "identity", [], "relu", False),
    ("logistic", "sigmoid", [], "relu", False),
    ("logistic", "softmax", [], "relu", False),
    *[
        ("mlp", head, [5, 4], activation, dropout)
        for head, activation, dropout in itertools.product(HEADS, ("relu", "tanh", "sigmoid"), (False, True))
    ],
    ("logistic", "softmax", [], "relu", True),  # input dropout on a model without hidden layers
]


@pytest.mark.parametrize("penalty", list(PENALTIES))
@pytest.mark.parametrize(("model", "head", "hidden", "activation", "dropout"), CASES)
def test_gradient_matches_central_differences(model, head, hidden, activation, dropout, penalty):
    l1, l2 = PENALTIES[penalty]
    net, X, y, masks = _problem(head, hidden, activation, dropout)
    analytic = _analytic(net, X, y, masks, l1, l2)
    numeric = _numeric(net, X, y, masks, l1, l2)
    assert _max_relative_error(analytic, numeric) < TOLERANCE


def test_relative_error_measure_detects_a_wrong_gradient():
    net, X, y, masks = _problem("softmax", [5, 4], "tanh", True)
    analytic = _analytic(net, X, y, masks, 0.0, 0.03)
    numeric = _numeric(net, X, y, masks, 0.0, 0.0)  # penalty left out on one side
    assert _max_relative_error(analytic, numeric) > 1e-3


def test_softmax_loss_is_stable_for_huge_logits():
    net, X, y, masks = _problem("softmax", [5, 4], "relu", False)
    net.params *= 1e4
    loss = net.loss_and_gradient(X, y, masks)
    assert np.isfinite(loss)
    assert np.all(np.isfinite(net.grads))


@pytest.mark.parametrize("contiguous", [True, False])
def test_softmax_gradient_into_contiguous_and_strided_outputs(contiguous):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((7, 4)) * 30.0  # large logits: the row maximum must be subtracted
    y = rng.integers(0, 4, 7)
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    expected[np.arange(7), y] -= 1.0
    expected *= 3.0 / 7
    out = np.empty((7, 4)) if contiguous else np.empty((4, 7)).T
    losses.gradient("softmax", z, y, out=out, scale=3.0)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-15)
