"""Inverted dropout: p=0 is a no-op, evaluation is mask-free, train-time statistics hold."""

from __future__ import annotations

import numpy as np
import pytest

from engine import TrainSpec, load_builtin, train
from engine.dropout import fill_mask
from engine.network import Network


def _spec(**regularization) -> TrainSpec:
    return TrainSpec.from_dict(
        {
            "model": {"type": "mlp", "hidden_layers": [16, 8]},
            "regularization": regularization,
            "training": {"epochs": 3, "batch_size": 32, "seed": 3},
        }
    )


def test_zero_dropout_is_bit_identical_to_no_dropout():
    data = load_builtin("iris")
    plain = train(_spec(), data)
    scalar = train(_spec(dropout=0.0, input_dropout=0.0), data)
    per_layer = train(_spec(dropout=[0.0, 0.0]), data)
    assert plain.network.params.tobytes() == scalar.network.params.tobytes() == per_layer.network.params.tobytes()


def test_zero_rate_batch_equals_mask_free_gradient():
    rng = np.random.default_rng(0)
    net = Network([4, 6, 3], "relu", "softmax", np.dtype(np.float32))
    net.initialize(rng)
    X = rng.standard_normal((10, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=10)
    net.loss_and_gradient(X, y, [None, None])
    expected = net.grads.copy()
    state = rng.bit_generator.state
    net.train_batch(X, y, rng, 0.0, [0.0])
    assert net.grads.tobytes() == expected.tobytes()
    assert rng.bit_generator.state == state  # p = 0 draws nothing


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.8])  # 0.25, 0.5: 8-bit draws; 0.1, 0.8: 16-bit
def test_mask_keeps_one_minus_p_and_preserves_the_expectation(p):
    rng = np.random.default_rng(1)
    mask = np.empty((1000, 1000), dtype=np.float32)
    fill_mask(rng, p, mask)
    kept = np.count_nonzero(mask) / mask.size
    assert kept == pytest.approx(1 - p, rel=0.01)
    assert set(np.unique(mask)) == {0.0, np.float32(1 / (1 - p))}
    assert float(mask.mean(dtype=np.float64)) == pytest.approx(1.0, rel=0.01)


def test_expected_hidden_activation_is_preserved_through_the_network():
    rng = np.random.default_rng(2)
    net = Network([5, 32, 1], "relu", "identity", np.dtype(np.float64))
    net.initialize(rng)
    x = rng.standard_normal((1, 5))
    clean = np.maximum(x @ net.weights[0].T + net.biases[0], 0.0)
    draws = 20000
    mask = np.empty((draws, 32))
    fill_mask(rng, 0.5, mask)
    dropped = clean * mask  # what the forward pass feeds the next layer
    np.testing.assert_allclose(dropped.mean(axis=0), clean[0], rtol=0.05, atol=1e-12)
    assert float(dropped.mean()) == pytest.approx(float(clean.mean()), rel=0.01)


def test_dropped_units_pass_no_gradient():
    rng = np.random.default_rng(3)
    net = Network([3, 4, 1], "tanh", "identity", np.dtype(np.float64))
    net.initialize(rng)
    X = rng.standard_normal((6, 3))
    y = rng.standard_normal(6)
    mask = np.ones((6, 4)) * 2.0
    mask[:, 1] = 0.0  # unit 1 dropped for every sample
    net.loss_and_gradient(X, y, [None, mask])
    assert np.all(net.grad_weights[0][1] == 0.0)
    assert net.grad_biases[0][1] == 0.0
    assert net.grad_weights[1][0, 1] == 0.0


def test_evaluation_is_deterministic_and_mask_free():
    result = train(_spec(dropout=0.5, input_dropout=0.2), load_builtin("wine"))
    net, X = result.network, result.data.X_val
    first = net.forward(X)
    assert first.tobytes() == net.forward(X).tobytes()
    a = X.astype(np.float64)
    for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        a = a @ w.T.astype(np.float64) + b
        if i < net.n_layers - 1:
            a = np.maximum(a, 0.0)
    np.testing.assert_allclose(first, a, rtol=1e-4, atol=1e-5)


def test_dropout_changes_training():
    data = load_builtin("iris")
    assert train(_spec(), data).network.params.tobytes() != train(_spec(dropout=0.3), data).network.params.tobytes()
