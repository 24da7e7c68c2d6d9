"""The training specification: every knob of a training run, with defaults and bounds.

The field names follow scikit-learn, Keras and H2O where they exist. The
service validates the JSON body of a job against its own schema and hands the
engine the plain dict; :func:`TrainSpec.from_dict` checks it again, so the
engine can be used on its own with the same guarantees.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.errors import ConfigError

ModelType = Literal["linear", "logistic", "mlp"]
Activation = Literal["relu", "tanh", "sigmoid"]
Task = Literal["auto", "regression", "classification"]
OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop"]
ScheduleName = Literal["constant", "step", "exponential", "cosine"]
DType = Literal["auto", "float32", "float64"]

MODEL_TYPES: tuple[str, ...] = ("linear", "logistic", "mlp")
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "sigmoid")
TASKS: tuple[str, ...] = ("auto", "regression", "classification")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES: tuple[str, ...] = ("constant", "step", "exponential", "cosine")
DTYPES: tuple[str, ...] = ("auto", "float32", "float64")
#: Metrics early stopping may monitor, and whether smaller is better.
MONITORS: dict[str, bool] = {
    "val_loss": True,
    "val_accuracy": False,
    "val_r2": False,
    "val_mae": True,
    "train_loss": True,
    "accuracy": False,
    "r2": False,
    "mae": True,
}


@dataclass
class ModelSpec:
    """Model family and shape.

    ``hidden_layers`` and ``activation`` apply to ``mlp`` only; the output
    head follows the task (identity for regression, sigmoid for two classes,
    softmax for more).
    """

    type: ModelType = "mlp"
    hidden_layers: list[int] = field(default_factory=lambda: [64])
    activation: Activation = "relu"


@dataclass
class RegularizationSpec:
    """Penalties on the weights (never the biases) and dropout rates.

    The objective is ``mean data loss + l1 * sum|w| + l2 * sum w**2``.
    ``dropout`` is one rate for every hidden layer or one rate per hidden
    layer; ``input_dropout`` drops input features. Rates lie in [0, 1).
    """

    l1: float = 0.0
    l2: float = 0.0
    input_dropout: float = 0.0
    dropout: float | list[float] = 0.0

    def hidden_dropout(self, n_hidden: int) -> list[float]:
        """Dropout rate of each of ``n_hidden`` hidden layers."""
        if isinstance(self.dropout, list):
            return list(self.dropout)
        return [float(self.dropout)] * n_hidden


@dataclass
class OptimizerSpec:
    """Optimizer and its hyperparameters (unused ones are ignored by the others).

    ``momentum``/``nesterov`` belong to sgd; ``beta1``/``beta2`` to adam and
    adamw; ``rho`` (decay of the squared-gradient average) to rmsprop;
    ``weight_decay`` is adamw's decoupled decay; ``epsilon`` to all adaptive ones.
    """

    name: OptimizerName = "adam"
    learning_rate: float = 0.001
    momentum: float = 0.9
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    rho: float = 0.9
    weight_decay: float = 0.01


@dataclass
class ScheduleSpec:
    """Learning-rate schedule, evaluated once per epoch.

    ``step``: multiply by ``gamma`` every ``step_size`` epochs (gamma default
    0.1); ``exponential``: multiply by ``gamma`` every epoch (default 0.95);
    ``cosine``: anneal to ``min_lr`` over the epochs after warm-up. Any of them
    may start with ``warmup_epochs`` of linear warm-up.
    """

    name: ScheduleName = "constant"
    step_size: int = 10
    gamma: float | None = None
    min_lr: float = 0.0
    warmup_epochs: int = 0


@dataclass
class EarlyStoppingSpec:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs."""

    monitor: str = "val_loss"
    patience: int = 10
    min_delta: float = 0.0
    restore_best: bool = True


@dataclass
class TrainingSpec:
    """Loop settings: epochs, batches, splits, preprocessing, seed and limits.

    ``dtype`` ``auto`` trains linear and logistic models in float64 (they are
    cheap and then match closed forms exactly) and MLPs in float32 (twice the
    GEMM throughput).
    """

    epochs: int = 50
    batch_size: int = 64
    validation_fraction: float = 0.2
    test_fraction: float = 0.0
    standardize: bool = True
    shuffle: bool = True
    seed: int = 0
    early_stopping: EarlyStoppingSpec | None = None
    max_runtime_seconds: float = 3600.0
    dtype: DType = "auto"


@dataclass
class TrainSpec:
    """Everything the engine needs to train, apart from the data."""

    task: Task = "auto"
    model: ModelSpec = field(default_factory=ModelSpec)
    regularization: RegularizationSpec = field(default_factory=RegularizationSpec)
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    lr_schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None = None) -> TrainSpec:
        """Build and validate a spec from plain JSON-like data.

        Unknown keys and values of the wrong type or out of bounds raise
        :class:`~engine.errors.ConfigError` naming the dotted field path.
        """
        spec = _build(cls, data or {}, "")
        spec.validate()
        return spec

    def to_dict(self) -> dict[str, Any]:
        """The normalized spec: every default filled in, JSON-serializable."""
        out = dataclasses.asdict(self)
        out["lr_schedule"]["gamma"] = self.schedule_gamma
        return out

    @property
    def schedule_gamma(self) -> float:
        """The schedule's decay factor with its per-schedule default applied."""
        if self.lr_schedule.gamma is not None:
            return self.lr_schedule.gamma
        return 0.95 if self.lr_schedule.name == "exponential" else 0.1

    def validate(self) -> None:
        """Check bounds and cross-field rules; raise ConfigError naming the field."""
        m, r, o, s, t = self.model, self.regularization, self.optimizer, self.lr_schedule, self.training
        _check(m.type in MODEL_TYPES, "model.type", f"must be one of {', '.join(MODEL_TYPES)}")
        _check(m.activation in ACTIVATIONS, "model.activation", f"must be one of {', '.join(ACTIVATIONS)}")
        _check(self.task in TASKS, "task", f"must be one of {', '.join(TASKS)}")
        if m.type == "mlp":
            _check(len(m.hidden_layers) >= 1, "model.hidden_layers", "an mlp needs at least one hidden layer")
        for i, units in enumerate(m.hidden_layers):
            _check(units >= 1, f"model.hidden_layers.{i}", "must be a positive number of units")
        if m.type == "linear":
            _check(
                self.task != "classification", "model.type", "linear is least squares; use logistic for classification"
            )
        if m.type == "logistic":
            _check(self.task != "regression", "model.type", "logistic is a classifier; use linear for regression")

        _finite_at_least(r.l1, 0.0, "regularization.l1")
        _finite_at_least(r.l2, 0.0, "regularization.l2")
        _rate(r.input_dropout, "regularization.input_dropout")
        n_hidden = len(m.hidden_layers) if m.type == "mlp" else 0
        if isinstance(r.dropout, list):
            _check(
                len(r.dropout) == n_hidden,
                "regularization.dropout",
                f"a list needs one rate per hidden layer ({n_hidden}), got {len(r.dropout)}",
            )
            for i, p in enumerate(r.dropout):
                _rate(p, f"regularization.dropout.{i}")
        else:
            _rate(r.dropout, "regularization.dropout")

        _check(o.name in OPTIMIZERS, "optimizer.name", f"must be one of {', '.join(OPTIMIZERS)}")
        _check(math.isfinite(o.learning_rate) and o.learning_rate > 0, "optimizer.learning_rate", "must be > 0")
        _check(0.0 <= o.momentum < 1.0, "optimizer.momentum", "must be in [0, 1)")
        _check(0.0 <= o.beta1 < 1.0, "optimizer.beta1", "must be in [0, 1)")
        _check(0.0 <= o.beta2 < 1.0, "optimizer.beta2", "must be in [0, 1)")
        _check(0.0 <= o.rho < 1.0, "optimizer.rho", "must be in [0, 1)")
        _check(math.isfinite(o.epsilon) and o.epsilon > 0, "optimizer.epsilon", "must be > 0")
        _finite_at_least(o.weight_decay, 0.0, "optimizer.weight_decay")
        _check(not o.nesterov or o.momentum > 0, "optimizer.nesterov", "needs momentum > 0")

        _check(s.name in SCHEDULES, "lr_schedule.name", f"must be one of {', '.join(SCHEDULES)}")
        _check(s.step_size >= 1, "lr_schedule.step_size", "must be >= 1")
        if s.gamma is not None:
            _check(math.isfinite(s.gamma) and 0 < s.gamma <= 1, "lr_schedule.gamma", "must be in (0, 1]")
        _finite_at_least(s.min_lr, 0.0, "lr_schedule.min_lr")
        _check(s.min_lr <= o.learning_rate, "lr_schedule.min_lr", "must not exceed optimizer.learning_rate")
        _check(s.warmup_epochs >= 0, "lr_schedule.warmup_epochs", "must be >= 0")

        _check(t.epochs >= 1, "training.epochs", "must be >= 1")
        _check(t.batch_size >= 1, "training.batch_size", "must be >= 1")
        _check(0.0 <= t.validation_fraction < 1.0, "training.validation_fraction", "must be in [0, 1)")
        _check(0.0 <= t.test_fraction < 1.0, "training.test_fraction", "must be in [0, 1)")
        _check(
            t.validation_fraction + t.test_fraction < 0.9,
            "training.test_fraction",
            "validation_fraction + test_fraction must leave at least 10% for training",
        )
        _check(t.seed >= 0, "training.seed", "must be >= 0")
        _check(t.dtype in DTYPES, "training.dtype", f"must be one of {', '.join(DTYPES)}")
        _check(
            math.isfinite(t.max_runtime_seconds) and t.max_runtime_seconds > 0,
            "training.max_runtime_seconds",
            "must be > 0",
        )
        es = t.early_stopping
        if es is not None:
            _check(es.monitor in MONITORS, "training.early_stopping.monitor", f"must be one of {', '.join(MONITORS)}")
            _check(es.patience >= 1, "training.early_stopping.patience", "must be >= 1")
            _finite_at_least(es.min_delta, 0.0, "training.early_stopping.min_delta")
            _check(
                not es.monitor.startswith("val_") or t.validation_fraction > 0,
                "training.early_stopping.monitor",
                f"{es.monitor} needs training.validation_fraction > 0",
            )

    @property
    def dtype_name(self) -> str:
        """The floating-point type training runs in, with ``auto`` resolved."""
        if self.training.dtype != "auto":
            return self.training.dtype
        return "float32" if self.model.type == "mlp" else "float64"


def _check(ok: bool, path: str, message: str) -> None:
    if not ok:
        raise ConfigError(path, message)


def _finite_at_least(value: float, low: float, path: str) -> None:
    _check(math.isfinite(value) and value >= low, path, f"must be a finite number >= {low:g}")


def _rate(value: float, path: str) -> None:
    _check(0.0 <= value < 1.0, path, "a dropout rate must be in [0, 1)")


def _build(cls: type, data: Any, prefix: str) -> Any:
    """Instantiate dataclass ``cls`` from a dict, checking keys and scalar types."""
    where = prefix.rstrip(".") or "spec"
    if not isinstance(data, dict):
        raise ConfigError(where, "must be an object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}", f"unknown field (known: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        path = f"{prefix}{name}"
        kwargs[name] = _coerce(cls, name, value, path)
    return cls(**kwargs)


_NESTED: dict[tuple[str, str], type] = {
    ("TrainSpec", "model"): ModelSpec,
    ("TrainSpec", "regularization"): RegularizationSpec,
    ("TrainSpec", "optimizer"): OptimizerSpec,
    ("TrainSpec", "lr_schedule"): ScheduleSpec,
    ("TrainSpec", "training"): TrainingSpec,
    ("TrainingSpec", "early_stopping"): EarlyStoppingSpec,
}
_INTS = {"epochs", "batch_size", "seed", "step_size", "warmup_epochs", "patience"}
_BOOLS = {"nesterov", "standardize", "shuffle", "restore_best"}
_STRS = {"type", "activation", "name", "monitor", "task", "dtype"}


def _coerce(cls: type, name: str, value: Any, path: str) -> Any:
    nested = _NESTED.get((cls.__name__, name))
    if nested is not None:
        if value is None and nested is EarlyStoppingSpec:
            return None
        return _build(nested, value, f"{path}.")
    if name in _STRS:
        if not isinstance(value, str):
            raise ConfigError(path, "must be a string")
        return value
    if name in _BOOLS:
        if not isinstance(value, bool):
            raise ConfigError(path, "must be true or false")
        return value
    if name in _INTS:
        return _integer(value, path)
    if name == "hidden_layers":
        if not isinstance(value, list):
            raise ConfigError(path, "must be a list of layer widths")
        return [_integer(v, f"{path}.{i}") for i, v in enumerate(value)]
    if name == "dropout" and isinstance(value, list):
        return [_number(v, f"{path}.{i}") for i, v in enumerate(value)]
    if name == "gamma" and value is None:
        return None
    return _number(value, path)


def _integer(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, "must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(path, "must be an integer")
        value = int(value)
    return int(value)


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, "must be a number")
    result = float(value)
    if not math.isfinite(result):
        raise ConfigError(path, "must be finite")
    return result
