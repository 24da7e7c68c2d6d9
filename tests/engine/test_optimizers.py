"""Optimizer updates against textbook formulas, and the L1 proximal step."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import optimizers, penalties
from engine.spec import OptimizerSpec


def _run(name: str, steps: int = 5, **kwargs):
    rng = np.random.default_rng(0)
    params = rng.standard_normal(6)
    grads = [rng.standard_normal(6) for _ in range(steps)]
    opt = optimizers.create(OptimizerSpec(name=name, **kwargs), 6, 4, np.dtype(np.float64))
    ours = params.copy()
    for g in grads:
        opt.step(ours, g.copy(), 0.1)
    return params, grads, ours


def test_adam_matches_the_textbook_update():
    p, grads, ours = _run("adam", beta1=0.9, beta2=0.999, epsilon=1e-8)
    m = v = np.zeros(6)
    for t, g in enumerate(grads, start=1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        p = p - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(ours, p, rtol=1e-12)


def test_adamw_decays_weights_not_biases():
    p, grads, ours = _run("adamw", weight_decay=0.5)
    m = v = np.zeros(6)
    for t, g in enumerate(grads, start=1):
        p = p.copy()
        p[:4] *= 1 - 0.1 * 0.5
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        p = p - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(ours, p, rtol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_matches_pytorch_formulation(nesterov):
    p, grads, ours = _run("sgd", momentum=0.9, nesterov=nesterov)
    buf = np.zeros(6)
    for g in grads:
        buf = 0.9 * buf + g
        p = p - 0.1 * (g + 0.9 * buf if nesterov else buf)
    np.testing.assert_allclose(ours, p, rtol=1e-12)


def test_rmsprop_matches_the_textbook_update():
    p, grads, ours = _run("rmsprop", rho=0.9, epsilon=1e-7)
    s = np.zeros(6)
    for g in grads:
        s = 0.9 * s + 0.1 * g * g
        p = p - 0.1 * g / (np.sqrt(s) + 1e-7)
    np.testing.assert_allclose(ours, p, rtol=1e-12)


def test_float32_state_stays_float32():
    opt = optimizers.create(OptimizerSpec(name="adam"), 5, 5, np.dtype(np.float32))
    params = np.ones(5, dtype=np.float32)
    opt.step(params, np.full(5, 0.5, dtype=np.float32), 0.01)
    assert params.dtype == np.float32
    assert all(state.dtype == np.float32 for state in opt.state.values())


def test_soft_threshold_is_the_l1_proximal_operator():
    w = np.array([-1.0, -0.05, 0.0, 0.03, 0.5])
    penalties.soft_threshold(w, 0.1, np.empty_like(w))
    np.testing.assert_array_equal(w, [-0.9, 0.0, 0.0, 0.0, 0.4])
    assert not np.any(np.signbit(w[w == 0.0]))


def test_adaptive_l1_threshold_uses_the_per_coordinate_step():
    opt = optimizers.create(OptimizerSpec(name="adam"), 3, 3, np.dtype(np.float64))
    params = np.zeros(3)
    g = np.array([1.0, 0.1, 0.01])
    opt.step(params, g, 0.1)
    threshold = opt.l1_threshold(0.1, 2.0)
    # After one Adam step m_hat = g and v_hat = g**2, so the step per coordinate is lr / (|g| + eps).
    np.testing.assert_allclose(threshold, 0.1 * 2.0 / (np.abs(g) + 1e-8), rtol=1e-6)
    assert math.isclose(float(penalties.value(np.array([1.0, -2.0]), 0.5, 0.25)), 0.5 * 3 + 0.25 * 5)


def test_adam_reads_checkpoints_that_stored_the_textbook_moments():
    rng = np.random.default_rng(0)
    size = 8
    spec = OptimizerSpec(name="adam", learning_rate=0.01)
    reference = optimizers.create(spec, size, 6, np.dtype(np.float64))
    p_ref = rng.standard_normal(size)
    for _ in range(3):
        reference.step(p_ref, rng.standard_normal(size), 0.01)
    scalars, arrays = reference.state_dict()
    older = {"m": arrays["m_sum"] * (1 - 0.9), "v": arrays["v_sum"] * (1 - 0.999)}
    restored = optimizers.create(spec, size, 6, np.dtype(np.float64))
    restored.load_state_dict(scalars, older)
    g = rng.standard_normal(size)
    p_restored = p_ref.copy()
    reference.step(p_ref, g, 0.01)
    restored.step(p_restored, g, 0.01)
    np.testing.assert_allclose(p_restored, p_ref, rtol=1e-12)


OPTIMIZER_CASES = [
    ("sgd", {}),
    ("sgd", {"momentum": 0.9}),
    ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("adam", {}),
    ("adamw", {"weight_decay": 0.1}),
    ("rmsprop", {}),
]


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZER_CASES)
def test_scaled_gradients_give_the_same_updates_and_l1_thresholds(name, kwargs):
    # Tiny gradients, so that epsilon matters and a wrongly scaled one would show.
    rng = np.random.default_rng(1)
    spec = OptimizerSpec(name=name, **kwargs)
    plain = optimizers.create(spec, 6, 4, np.dtype(np.float64))
    scaled = optimizers.create(spec, 6, 4, np.dtype(np.float64), grad_scale=5000.0)
    p_plain = rng.standard_normal(6)
    p_scaled = p_plain.copy()
    for _ in range(6):
        g = rng.standard_normal(6) * 1e-7
        plain.step(p_plain, g.copy(), 0.01)
        scaled.step(p_scaled, g * 5000.0, 0.01)
        np.testing.assert_allclose(p_scaled, p_plain, rtol=1e-12)
        np.testing.assert_allclose(scaled.l1_threshold(0.01, 0.5), plain.l1_threshold(0.01, 0.5), rtol=1e-12)


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZER_CASES)
def test_state_saved_at_one_gradient_scale_continues_at_another(name, kwargs):
    rng = np.random.default_rng(2)
    spec = OptimizerSpec(name=name, **kwargs)
    plain = optimizers.create(spec, 6, 4, np.dtype(np.float64))
    params = rng.standard_normal(6)
    for _ in range(3):
        plain.step(params, rng.standard_normal(6), 0.01)
    scalars, arrays = plain.state_dict()
    scalars.pop("grad_scale")  # as checkpoints written before gradient scales were
    scaled = optimizers.create(spec, 6, 4, np.dtype(np.float64), grad_scale=0.25)
    scaled.load_state_dict(scalars, arrays)
    g = rng.standard_normal(6)
    p_scaled = params.copy()
    plain.step(params, g, 0.01)
    scaled.step(p_scaled, g * 0.25, 0.01)
    np.testing.assert_allclose(p_scaled, params, rtol=1e-12)


def test_l2_gradient_at_its_scale_is_one_pass_and_the_same_gradient():
    rng = np.random.default_rng(3)
    w, g = rng.standard_normal(5), rng.standard_normal(5)
    k = penalties.l2_gradient_scale(1e-4)
    assert k == 5000.0
    scaled = g * k
    penalties.add_l2_gradient(w, scaled, 1e-4, grad_scale=k)
    np.testing.assert_allclose(scaled, (g + 2e-4 * w) * k, rtol=1e-12)
    unscaled = g.copy()
    penalties.add_l2_gradient(w, unscaled, 1e-4)
    np.testing.assert_allclose(unscaled, g + 2e-4 * w, rtol=1e-15)
    # No L2, or an L2 so small that its scale could overflow float32 squares: no scaling.
    assert penalties.l2_gradient_scale(0.0) == 1.0
    assert penalties.l2_gradient_scale(1e-9) == 1.0
