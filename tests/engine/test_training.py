"""The training loop: determinism, resume from checkpoint, stopping, early stopping, divergence."""

from __future__ import annotations

import numpy as np
import pytest

from engine import CheckpointError, DivergenceError, TrainSpec, load_builtin, penalties, train
from engine.preprocessing import prepare
from engine.trainer import Trainer

TIMING = {"epoch_seconds", "samples_per_second", "timestamp"}

RICH_SPEC = {
    "model": {"type": "mlp", "hidden_layers": [32, 16], "activation": "relu"},
    "regularization": {"l1": 1e-4, "l2": 1e-4, "input_dropout": 0.1, "dropout": [0.3, 0.2]},
    "optimizer": {"name": "adam", "learning_rate": 0.003},
    "lr_schedule": {"name": "cosine", "warmup_epochs": 2, "min_lr": 1e-5},
    "training": {
        "epochs": 10,
        "batch_size": 50,
        "seed": 7,
        "test_fraction": 0.1,
        "early_stopping": {"monitor": "val_loss", "patience": 50},
    },
}


def _without_timing(history):
    return [{k: v for k, v in record.items() if k not in TIMING} for record in history]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop"])
def test_same_spec_and_seed_give_bit_identical_runs(dtype, optimizer):
    raw = {**RICH_SPEC, "optimizer": {"name": optimizer, "learning_rate": 0.01, "nesterov": optimizer == "sgd"}}
    raw["training"] = {**RICH_SPEC["training"], "dtype": dtype, "epochs": 4}
    spec = TrainSpec.from_dict(raw)
    data = load_builtin("digits")
    a, b = train(spec, data), train(spec, data)
    assert a.network.params.dtype == np.dtype(dtype)
    assert a.network.params.tobytes() == b.network.params.tobytes()
    assert _without_timing(a.history) == _without_timing(b.history)
    assert a.test_metrics == b.test_metrics


def test_a_different_seed_gives_a_different_run():
    data = load_builtin("digits")
    spec = TrainSpec.from_dict({**RICH_SPEC, "training": {**RICH_SPEC["training"], "epochs": 2}})
    other = TrainSpec.from_dict({**RICH_SPEC, "training": {**RICH_SPEC["training"], "epochs": 2, "seed": 8}})
    assert train(spec, data).network.params.tobytes() != train(other, data).network.params.tobytes()


@pytest.mark.parametrize("stop_after", [1, 4, 9])
def test_resumed_run_is_bit_identical_to_uninterrupted(stop_after):
    spec = TrainSpec.from_dict(RICH_SPEC)
    data = load_builtin("digits")
    full = train(spec, data)

    saved: dict[int, bytes] = {}

    def on_epoch(record, trainer):
        saved[record["epoch"]] = trainer.checkpoint()

    def stop():
        return "killed" if stop_after in saved else None

    partial = train(spec, data, on_epoch=on_epoch, should_stop=stop)
    assert partial.stop_reason == "killed"
    assert len(partial.history) == stop_after

    resumed = train(spec, data, resume_from=saved[stop_after])
    assert resumed.network.params.tobytes() == full.network.params.tobytes()
    assert _without_timing(resumed.history) == _without_timing(full.history)
    assert resumed.best_epoch == full.best_epoch
    assert resumed.test_metrics == full.test_metrics


def test_checkpoint_of_another_spec_is_rejected():
    spec = TrainSpec.from_dict({**RICH_SPEC, "training": {**RICH_SPEC["training"], "epochs": 1}})
    data = load_builtin("digits")
    blobs: list[bytes] = []
    train(spec, data, on_epoch=lambda record, trainer: blobs.append(trainer.checkpoint()))
    other = TrainSpec.from_dict({**RICH_SPEC, "regularization": {"l2": 0.5}})
    with pytest.raises(CheckpointError, match="different spec"):
        train(other, data, resume_from=blobs[0])
    with pytest.raises(CheckpointError):
        train(spec, data, resume_from=b"not a checkpoint")


def test_one_metrics_record_per_epoch_with_every_field():
    spec = TrainSpec.from_dict({**RICH_SPEC, "training": {**RICH_SPEC["training"], "epochs": 3}})
    result = train(spec, load_builtin("digits"))
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    expected = {
        "epoch",
        "train_loss",
        "val_loss",
        "penalty",
        "accuracy",
        "val_accuracy",
        "learning_rate",
        "weight_l2_norm",
        "sparsity",
        "epoch_seconds",
        "samples_per_second",
        "timestamp",
    }
    for record in result.history:
        assert set(record) == expected
        assert record["val_loss"] > 0 and record["train_loss"] > 0
        assert 0 <= record["sparsity"] <= 1
    assert set(result.test_metrics) == {"loss", "accuracy"}


def test_regression_records_r2_and_mae_in_target_units():
    spec = TrainSpec.from_dict(
        {"model": {"type": "linear"}, "optimizer": {"learning_rate": 0.05}, "training": {"epochs": 60}}
    )
    result = train(spec, load_builtin("diabetes"))
    last = result.history[-1]
    assert {"r2", "val_r2", "mae", "val_mae"} <= set(last)
    assert last["r2"] > 0.4
    assert 30 < last["mae"] < 60  # diabetes progression units, not standardized ones


def test_should_stop_ends_at_the_last_completed_epoch():
    spec = TrainSpec.from_dict({**RICH_SPEC, "training": {**RICH_SPEC["training"], "epochs": 5}})
    data = load_builtin("digits")
    reference = train(spec, data, should_stop=lambda: None)
    polls_after_two = {"n": 0}
    snapshots: list[np.ndarray] = []

    def stop():
        # The first poll after epoch 2 is at the start of epoch 3; the second is mid-epoch.
        if len(snapshots) == 2:
            polls_after_two["n"] += 1
        return "cancelled" if polls_after_two["n"] == 2 else None

    result = train(spec, data, on_epoch=lambda r, t: snapshots.append(t.network.params.copy()), should_stop=stop)
    assert result.stop_reason == "cancelled"
    assert len(result.history) == 2
    assert result.network.params.tobytes() == snapshots[-1].tobytes()
    assert reference.stop_reason is None and len(reference.history) == 5


def test_max_runtime_stops_training():
    spec = TrainSpec.from_dict({**RICH_SPEC, "training": {**RICH_SPEC["training"], "max_runtime_seconds": 10}})
    data = prepare(load_builtin("digits"), "auto", 0.2, 0.1, True, 7, "float32")
    ticks = iter(range(10_000))
    fake_clock = lambda: float(next(ticks))  # noqa: E731 - each call advances one second
    result = Trainer(spec, data).run(clock=fake_clock)
    assert result.stop_reason == "max_runtime"
    assert 1 <= len(result.history) < 10


def test_early_stopping_stops_and_restores_the_best_epoch():
    spec = TrainSpec.from_dict(
        {
            "model": {"type": "mlp", "hidden_layers": [128, 128]},
            "optimizer": {"learning_rate": 0.01},
            "training": {
                "epochs": 300,
                "batch_size": 16,
                "seed": 1,
                "early_stopping": {"monitor": "val_loss", "patience": 5, "restore_best": True},
            },
        }
    )
    data = load_builtin("moons")
    snapshots: dict[int, bytes] = {}
    result = train(spec, data, on_epoch=lambda r, t: snapshots.__setitem__(r["epoch"], t.network.params.tobytes()))
    assert result.stopped_early
    assert len(result.history) < 300
    best = min(result.history, key=lambda r: r["val_loss"])
    assert result.best_epoch == best["epoch"]
    assert len(result.history) - result.best_epoch == 5
    assert result.network.params.tobytes() == snapshots[result.best_epoch]


def test_divergence_raises_naming_the_epoch():
    spec = TrainSpec.from_dict(
        {
            "model": {"type": "linear"},
            "optimizer": {"name": "sgd", "learning_rate": 100.0, "momentum": 0.0},
            "training": {"epochs": 50, "standardize": False},
        }
    )
    with pytest.raises(DivergenceError, match=r"epoch \d+") as info:
        train(spec, load_builtin("diabetes"))
    assert info.value.epoch >= 1


def test_l1_reaches_exact_zeros_with_minibatches():
    spec = TrainSpec.from_dict(
        {
            "model": {"type": "linear"},
            "regularization": {"l1": 0.05},
            "optimizer": {"name": "adam", "learning_rate": 0.05},
            "training": {"epochs": 30, "batch_size": 32},
        }
    )
    result = train(spec, load_builtin("linear"))
    w = result.network.weights[0]
    assert np.count_nonzero(w == 0.0) >= 3
    assert result.history[-1]["sparsity"] == np.count_nonzero(w == 0.0) / w.size
    assert not np.any(np.signbit(w[w == 0.0]))  # no negative zeros


@pytest.mark.parametrize(
    ("dataset", "model", "optimizer", "l1"),
    [
        ("diabetes", {"type": "linear"}, {"name": "sgd", "momentum": 0.9}, 0.0),
        ("breast_cancer", {"type": "logistic"}, {"name": "rmsprop"}, 1e-3),
        ("digits", {"type": "mlp", "hidden_layers": [16]}, {"name": "adam"}, 1e-4),
    ],
)
def test_gradients_formed_at_the_l2_scale_train_the_same_model(monkeypatch, dataset, model, optimizer, l1):
    # The trainer forms gradients at scale 1 / (2 * l2) to fold L2 into one pass;
    # with the scale forced to 1 the run must be the same up to rounding.
    spec = TrainSpec.from_dict(
        {
            "model": model,
            "regularization": {"l1": l1, "l2": 1e-2, **({"dropout": 0.2} if model["type"] == "mlp" else {})},
            "optimizer": {**optimizer, "learning_rate": 0.01},
            "training": {"epochs": 3, "batch_size": 32, "seed": 3, "dtype": "float64"},
        }
    )
    data = load_builtin(dataset)
    scaled = train(spec, data)
    assert penalties.l2_gradient_scale(1e-2) == 50.0
    monkeypatch.setattr("engine.penalties.l2_gradient_scale", lambda l2: 1.0)
    plain = train(spec, data)
    np.testing.assert_allclose(scaled.network.params, plain.network.params, rtol=1e-9, atol=1e-12)
    assert scaled.history[-1]["train_loss"] == pytest.approx(plain.history[-1]["train_loss"], rel=1e-9)
