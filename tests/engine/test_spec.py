"""The training spec: defaults, normalization and field-naming validation errors."""

from __future__ import annotations

import math

import pytest

from engine import ConfigError, TrainSpec
from engine.schedules import learning_rate


def test_every_field_has_a_default():
    spec = TrainSpec.from_dict({})
    normalized = spec.to_dict()
    assert normalized["model"] == {"type": "mlp", "hidden_layers": [64], "activation": "relu"}
    assert normalized["optimizer"]["name"] == "adam"
    assert normalized["training"]["epochs"] == 50
    assert normalized["lr_schedule"]["gamma"] == 0.1
    assert TrainSpec.from_dict(normalized).to_dict() == normalized


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"model": {"layers": [3]}}, "model.layers"),
        ({"optimizer": {"learning_rate": 0}}, "optimizer.learning_rate"),
        ({"optimizer": {"learning_rate": -1e-3}}, "optimizer.learning_rate"),
        ({"optimizer": {"learning_rate": "fast"}}, "optimizer.learning_rate"),
        ({"optimizer": {"name": "lbfgs"}}, "optimizer.name"),
        ({"regularization": {"dropout": 1.0}}, "regularization.dropout"),
        ({"regularization": {"dropout": [0.1, 0.2]}}, "regularization.dropout"),
        ({"model": {"hidden_layers": [8, 8]}, "regularization": {"dropout": [0.1, 1.5]}}, "regularization.dropout.1"),
        ({"regularization": {"input_dropout": -0.1}}, "regularization.input_dropout"),
        ({"regularization": {"l2": -1}}, "regularization.l2"),
        ({"regularization": {"l1": math.inf}}, "regularization.l1"),
        ({"model": {"hidden_layers": [0]}}, "model.hidden_layers.0"),
        ({"model": {"hidden_layers": []}}, "model.hidden_layers"),
        ({"model": {"hidden_layers": [2.5]}}, "model.hidden_layers.0"),
        ({"model": {"activation": "gelu"}}, "model.activation"),
        ({"model": {"type": "linear"}, "task": "classification"}, "model.type"),
        ({"training": {"epochs": 0}}, "training.epochs"),
        ({"training": {"batch_size": 0}}, "training.batch_size"),
        ({"training": {"epochs": True}}, "training.epochs"),
        ({"training": {"validation_fraction": 1.0}}, "training.validation_fraction"),
        ({"training": {"validation_fraction": 0.5, "test_fraction": 0.45}}, "training.test_fraction"),
        ({"training": {"validation_fraction": 0.0, "early_stopping": {}}}, "training.early_stopping.monitor"),
        ({"training": {"early_stopping": {"monitor": "f1"}}}, "training.early_stopping.monitor"),
        ({"training": {"early_stopping": {"patience": 0}}}, "training.early_stopping.patience"),
        ({"lr_schedule": {"name": "step", "gamma": 2}}, "lr_schedule.gamma"),
        ({"lr_schedule": {"min_lr": 1.0}}, "lr_schedule.min_lr"),
        ({"optimizer": {"name": "sgd", "momentum": 0, "nesterov": True}}, "optimizer.nesterov"),
        ({"training": "long"}, "training"),
    ],
)
def test_invalid_values_name_the_field(raw, field):
    with pytest.raises(ConfigError) as info:
        TrainSpec.from_dict(raw)
    assert info.value.field == field


def test_auto_dtype_is_float64_for_linear_models_and_float32_for_mlps():
    assert TrainSpec.from_dict({"model": {"type": "logistic"}}).dtype_name == "float64"
    assert TrainSpec.from_dict({"model": {"type": "mlp"}}).dtype_name == "float32"
    assert TrainSpec.from_dict({"training": {"dtype": "float64"}}).dtype_name == "float64"


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({"name": "constant"}, [0.1, 0.1, 0.1, 0.1]),
        ({"name": "step", "step_size": 2, "gamma": 0.5}, [0.1, 0.1, 0.05, 0.05]),
        ({"name": "exponential", "gamma": 0.5}, [0.1, 0.05, 0.025, 0.0125]),
        ({"name": "cosine", "min_lr": 0.0}, [0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05, None]),
        ({"name": "constant", "warmup_epochs": 3}, [0.025, 0.05, 0.075, 0.1]),
    ],
)
def test_learning_rate_schedules(schedule, expected):
    spec = TrainSpec.from_dict(
        {"optimizer": {"learning_rate": 0.1}, "lr_schedule": schedule, "training": {"epochs": 4}}
    )
    for epoch, value in enumerate(expected):
        if value is not None:
            assert learning_rate(spec, epoch) == pytest.approx(value)
