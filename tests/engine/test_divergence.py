"""Divergence: a run fails once its train loss is non-finite or far past where it started."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine import BUILTIN_DATASETS, DivergenceError, TrainSpec, load_builtin, train
from engine.preprocessing import prepare
from engine.trainer import DIVERGENCE_FACTOR, DIVERGENCE_LOSS_FLOOR, Trainer

# Full-batch SGD at learning rate 50: each epoch multiplies the loss by about 1e5, so the loss
# stays finite for 50 epochs (about 1e258 at the end) and used to end "succeeded".
RUNAWAY_SGD = {
    "model": {"type": "linear"},
    "optimizer": {"name": "sgd", "learning_rate": 50.0},
    "training": {"batch_size": 512},
}


def _prepared(spec: TrainSpec, name: str):
    t = spec.training
    return prepare(
        load_builtin(name), spec.task, t.validation_fraction, t.test_fraction, t.standardize, t.seed, spec.dtype_name
    )


def test_a_finite_but_runaway_loss_is_divergence():
    spec = TrainSpec.from_dict(RUNAWAY_SGD)
    with pytest.raises(DivergenceError, match="train loss grew to") as info:
        train(spec, load_builtin("diabetes"))
    assert info.value.code == "diverged"
    # Caught within a few epochs of passing the threshold, long before the loss overflows.
    assert info.value.epoch <= 3


def test_the_threshold_is_a_multiple_of_the_loss_before_training():
    spec = TrainSpec.from_dict(RUNAWAY_SGD)
    trainer = Trainer(spec, _prepared(spec, "diabetes"))
    before = trainer.initial_loss
    # Standardized targets and a zero-initialized linear model: the mean squared error is the variance, 1.
    assert before == pytest.approx(1.0)
    assert trainer.divergence_threshold == DIVERGENCE_FACTOR * before
    trainer.train_pass()
    record = trainer.end_epoch()
    assert record["train_loss"] < trainer.divergence_threshold  # epoch 1 is still under it
    with pytest.raises(DivergenceError, match=r"epoch 2: the train loss grew to .* before training \(1\)"):
        trainer.train_pass()
        trainer.end_epoch()


def test_a_near_zero_starting_loss_is_floored():
    spec = TrainSpec.from_dict({"model": {"type": "linear"}})
    trainer = Trainer(spec, _prepared(spec, "diabetes"))
    trainer.initial_loss = 1e-12
    assert trainer.divergence_threshold == DIVERGENCE_FACTOR * DIVERGENCE_LOSS_FLOOR


def test_a_resumed_run_keeps_the_same_reference():
    spec = TrainSpec.from_dict({"model": {"type": "mlp", "hidden_layers": [8]}, "training": {"epochs": 2}})
    data = _prepared(spec, "diabetes")
    first = Trainer(spec, data)
    reference = first.initial_loss
    first.train_pass()
    first.end_epoch()
    resumed = Trainer(spec, data)
    resumed.restore(first.checkpoint())
    assert resumed.initial_loss == reference


def test_overflow_in_float32_is_divergence():
    spec = TrainSpec.from_dict(
        {**RUNAWAY_SGD, "training": {"batch_size": 512, "dtype": "float32", "epochs": 100, "standardize": False}}
    )
    with pytest.raises(DivergenceError):
        train(spec, load_builtin("diabetes"))


def test_large_scale_regression_targets_do_not_trip_it():
    # Unstandardized targets in the millions: the loss starts around 1e13 and only falls.
    base = load_builtin("diabetes")
    scaled = dataclasses.replace(base, y=base.y * 1e4)
    for standardize in (True, False):
        spec = TrainSpec.from_dict(
            {
                "model": {"type": "linear"},
                "optimizer": {"name": "adam", "learning_rate": 0.05},
                "training": {"epochs": 20, "standardize": standardize},
            }
        )
        result = train(spec, scaled)
        assert np.isfinite(result.final_metrics["train_loss"])


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_healthy_runs_of_the_builtins_stay_far_below_the_threshold(name):
    spec = TrainSpec.from_dict({"training": {"epochs": 5}})
    trainer = Trainer(spec, _prepared(spec, name))
    result = trainer.run()
    worst = max(record["train_loss"] for record in result.history)
    assert worst < 10 * trainer.initial_loss < trainer.divergence_threshold / 1e4
