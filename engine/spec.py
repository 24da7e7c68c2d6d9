"""The training specification: every knob of a training run, with defaults, bounds and a line of doc.

This module is the one definition of a job's training spec. Each knob is a
dataclass field declared with :func:`knob`: its default, its bounds (as data,
:class:`Bounds`) and its description. :meth:`TrainSpec.from_dict` builds a
spec from plain JSON-like data by the fields' types and checks the bounds and
the rules that span fields, raising :class:`ConfigError` naming the field, so
the engine can be used on its own with the same guarantees as the service.
The service derives its request schema (``store/jobspec.py``) from these
dataclasses: the same names, types, defaults, bounds and descriptions.

The field names follow scikit-learn, Keras and H2O where they exist.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

from engine.errors import ConfigError

ModelType = Literal["linear", "logistic", "mlp"]
Activation = Literal["relu", "tanh", "sigmoid"]
Task = Literal["auto", "regression", "classification"]
OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop"]
ScheduleName = Literal["constant", "step", "exponential", "cosine"]
DType = Literal["auto", "float32", "float64"]
CategoricalEncoding = Literal["onehot"]
NumericImputation = Literal["mean", "median", "zero", "none"]
CategoricalImputation = Literal["most_frequent", "missing_level", "none"]
FoldAssignment = Literal["auto", "random", "stratified", "modulo"]
PathSelect = Literal["1se", "min"]
PathMeasure = Literal["mse", "mae", "deviance", "misclassification", "auc"]
#: Metrics early stopping may monitor (and a sweep may optimize).
Monitor = Literal["val_loss", "val_accuracy", "val_r2", "val_mae", "train_loss", "accuracy", "r2", "mae"]

MODEL_TYPES: tuple[str, ...] = get_args(ModelType)
ACTIVATIONS: tuple[str, ...] = get_args(Activation)
TASKS: tuple[str, ...] = get_args(Task)
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
SCHEDULES: tuple[str, ...] = get_args(ScheduleName)
DTYPES: tuple[str, ...] = get_args(DType)
#: Each monitored metric, and whether smaller is better.
MONITORS: dict[str, bool] = {name: name in ("val_loss", "val_mae", "train_loss", "mae") for name in get_args(Monitor)}


@dataclass(frozen=True)
class Bounds:
    """Bounds of a numeric knob, or of each item of a list knob.

    ``ge``, ``gt``, ``le``, ``lt`` are rules of training, which :meth:`TrainSpec.validate`
    checks. ``cap`` (an inclusive upper limit) and ``max_items`` (a list's length) are
    the service's limits on what one request may ask: the request schema enforces
    them, the engine used on its own does not.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    cap: float | None = None
    max_items: int | None = None

    def holds(self, value: float) -> bool:
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def describe(self) -> str:
        """``"must be in [0, 1)"``, ``"must be > 0"``, …: the message of a value out of bounds."""
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else None
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else None
        if low and high:
            return f"must be in {low}, {high}"
        if low:
            return f"must be {'>=' if self.ge is not None else '>'} {low[1:]}"
        return f"must be {'<=' if self.le is not None else '<'} {high[:-1] if high else ''}"


def knob(
    default: Any,
    doc: str = "",
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    cap: float | None = None,
    max_items: int | None = None,
    examples: list[Any] | None = None,
) -> Any:
    """A spec field: its default (a list default is copied per instance), bounds and description."""
    limits = (ge, gt, le, lt, cap, max_items)
    bounds = Bounds(*limits) if limits != (None,) * len(limits) else None
    metadata = {"bounds": bounds, "doc": doc, "examples": examples}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def section(cls: type, doc: str = "", default: Any = dataclasses.MISSING) -> Any:
    """A nested part of the spec (``model``, ``training``, …); ``default=None`` makes it optional."""
    metadata = {"bounds": None, "doc": doc, "examples": None}
    if default is None:
        return field(default=None, metadata=metadata)
    return field(default_factory=cls, metadata=metadata)


@dataclass
class ModelSpec:
    """Model family; ``hidden_layers`` and ``activation`` apply to ``mlp``.

    The output head follows the task (identity for regression, sigmoid for
    two classes, softmax for more).
    """

    type: ModelType = knob("mlp", "linear: least squares; logistic: sigmoid/softmax classifier; mlp: neural network.")
    hidden_layers: list[int] = knob([64], ge=1, cap=65_536, max_items=16, examples=[[128, 64]])
    activation: Activation = knob("relu")


@dataclass
class RegularizationSpec:
    """Objective = mean data loss + l1·Σ|w| + l2·Σw² over the weights (not biases); dropout rates in [0, 1)."""

    l1: float = knob(0.0, "L1 strength, applied by a proximal (soft-threshold) step.", ge=0.0)
    l2: float = knob(0.0, "L2 strength (the gradient gains 2·l2·w).", ge=0.0)
    input_dropout: float = knob(0.0, "Drop probability of each input feature at train time.", ge=0.0, lt=1.0)
    dropout: float | list[float] = knob(
        0.0, "Drop probability of hidden units: one number for all hidden layers, or one per layer.", ge=0.0, lt=1.0
    )

    def hidden_dropout(self, n_hidden: int) -> list[float]:
        """Dropout rate of each of ``n_hidden`` hidden layers."""
        if isinstance(self.dropout, list):
            return list(self.dropout)
        return [float(self.dropout)] * n_hidden


@dataclass
class OptimizerSpec:
    """Optimizer; fields that do not apply to the chosen one are ignored.

    ``momentum``/``nesterov`` belong to sgd; ``beta1``/``beta2`` to adam and
    adamw; ``rho`` (decay of the squared-gradient average) to rmsprop;
    ``weight_decay`` is adamw's decoupled decay; ``epsilon`` to all adaptive ones.
    """

    name: OptimizerName = knob("adam")
    learning_rate: float = knob(0.001, gt=0.0, cap=1e3)
    momentum: float = knob(0.9, "sgd only.", ge=0.0, lt=1.0)
    nesterov: bool = knob(False, "sgd only; needs momentum > 0.")
    beta1: float = knob(0.9, ge=0.0, lt=1.0)
    beta2: float = knob(0.999, ge=0.0, lt=1.0)
    epsilon: float = knob(1e-8, gt=0.0)
    rho: float = knob(0.9, "rmsprop's squared-gradient decay.", ge=0.0, lt=1.0)
    weight_decay: float = knob(0.01, "adamw's decoupled weight decay.", ge=0.0)


@dataclass
class ScheduleSpec:
    """Per-epoch learning-rate schedule with optional linear warm-up.

    ``step``: multiply by ``gamma`` every ``step_size`` epochs (gamma default
    0.1); ``exponential``: multiply by ``gamma`` every epoch (default 0.95);
    ``cosine``: anneal to ``min_lr`` over the epochs after warm-up. Any of them
    may start with ``warmup_epochs`` of linear warm-up.
    """

    name: ScheduleName = knob("constant")
    step_size: int = knob(10, "step: epochs between decays.", ge=1)
    gamma: float | None = knob(None, "Decay factor; default 0.1 (step), 0.95 (exp).", gt=0.0, le=1.0)
    min_lr: float = knob(0.0, "cosine: final learning rate.", ge=0.0)
    warmup_epochs: int = knob(0, ge=0)


@dataclass
class EarlyStoppingSpec:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs."""

    monitor: Monitor = knob("val_loss")
    patience: int = knob(10, ge=1)
    min_delta: float = knob(0.0, ge=0.0)
    restore_best: bool = knob(True, "Keep the weights of the best epoch.")


@dataclass
class CrossValidationSpec:
    """k-fold cross-validation of the rows outside the test split (``validation_fraction`` is then unused).

    ``auto``: stratified for classification, random otherwise, seeded by ``training.seed``; ``modulo``: row
    i in fold i mod k (H2O's); ``fold_column``: a dataset column of fold ids, which is then not a feature.
    Today a regularization path (``path``) is cross-validated this way; minibatch models are not yet.
    """

    folds: int = knob(5, "k, the number of folds.", ge=2, le=20)
    assignment: FoldAssignment = knob("auto", "How rows are assigned to folds (ignored with fold_column).")
    fold_column: str | None = knob(None, "A dataset column holding each row's fold id; it is not a feature.")


@dataclass
class TrainingSpec:
    """Loop settings. ``dtype`` auto: float64 for linear/logistic, float32 for mlp.

    Linear and logistic models are cheap and then match closed forms exactly;
    MLPs get twice the GEMM throughput in float32.
    """

    epochs: int = knob(50, ge=1, cap=100_000)
    batch_size: int = knob(64, ge=1, cap=1_000_000)
    validation_fraction: float = knob(0.2, ge=0.0, lt=1.0)
    test_fraction: float = knob(0.0, ge=0.0, lt=1.0)
    standardize: bool = knob(True)
    shuffle: bool = knob(True)
    seed: int = knob(0, ge=0, cap=2**63 - 1)
    early_stopping: EarlyStoppingSpec | None = section(EarlyStoppingSpec, "null: train all epochs.", default=None)
    cross_validation: CrossValidationSpec | None = section(
        CrossValidationSpec, "null: the holdout split of validation_fraction.", default=None
    )
    max_runtime_seconds: float = knob(3600.0, gt=0.0)
    dtype: DType = knob("auto")


@dataclass
class PreprocessingSpec:
    """How a table's columns become model inputs (``engine/columns.py``), fitted on the train split only.

    Used when the chosen columns are not all numeric and complete; then
    standardization applies to the numeric inputs only.
    """

    categorical: CategoricalEncoding = knob("onehot", "Categorical (text) columns: one-hot encoding.")
    max_categories: int = knob(
        50, "Most inputs per categorical column; the rarer levels of the train split share one.", ge=2, le=10_000
    )
    impute_numeric: NumericImputation = knob(
        "mean", "Fill gaps in numeric and boolean columns with the train split's mean, median or zero; none: refuse."
    )
    impute_categorical: CategoricalImputation = knob(
        "most_frequent", "Fill gaps in categorical columns with the most frequent level, or a level of their own."
    )
    missing_indicators: bool = knob(False, "Add a 0/1 input per column with gaps in the train split.")


@dataclass
class PathSpec:
    """A regularization path (glmnet's): the model fitted at every λ of a sequence, one chosen by validation.

    Along the path the penalty is ``λ·(alpha‖w‖₁ + (1-alpha)/2·‖w‖₂²)`` on the standardized weights, i.e.
    ``l1 = alpha·λ``, ``l2 = (1-alpha)·λ/2`` (so ``regularization`` stays 0). λ runs log-spaced from λ_max
    (the smallest λ that zeroes every weight) down to ``lambda_min_ratio``·λ_max, or over ``lambdas``.
    ``select``: ``1se`` the largest λ within one standard error of the best, ``min`` the best.
    """

    alpha: float = knob(1.0, "Elastic-net mixing: 1 the lasso, 0 the ridge.", ge=0.0, le=1.0)
    n_lambdas: int = knob(100, "Length of the λ sequence (when lambdas is null).", ge=1, le=1000)
    lambda_min_ratio: float | None = knob(
        None, "Smallest λ / λ_max; null: 1e-4 when rows > inputs, else 1e-2.", gt=0.0, lt=1.0
    )
    lambdas: list[float] | None = knob(
        None, "The λ values (sorted decreasing); null: the sequence from λ_max.", gt=0.0, max_items=1000
    )
    measure: PathMeasure | None = knob(
        None, "Validation measure; null: mse (regression), deviance (classification).", examples=["auc"]
    )
    select: PathSelect = knob("1se", "The job's model: 1se (largest λ within one standard error) or min.")


@dataclass
class TrainSpec:
    """Everything the engine needs to train, apart from the data."""

    task: Task = knob("auto")
    features: list[str] | None = knob(
        None, "Columns to train on; null: every column but the target.", max_items=10_000, examples=[["age", "city"]]
    )
    preprocessing: PreprocessingSpec = section(PreprocessingSpec, "How a table's columns become model inputs.")
    model: ModelSpec = section(ModelSpec)
    regularization: RegularizationSpec = section(RegularizationSpec)
    optimizer: OptimizerSpec = section(OptimizerSpec)
    lr_schedule: ScheduleSpec = section(ScheduleSpec)
    training: TrainingSpec = section(TrainingSpec)
    path: PathSpec | None = section(
        PathSpec, "A regularization path over λ (linear and logistic); null: one model, minibatch training.", None
    )

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
        """Check each field's choices and bounds, then the rules that span fields; ConfigError names the field."""
        _check_fields(self, "")
        m, r, o, s, t = self.model, self.regularization, self.optimizer, self.lr_schedule, self.training
        if m.type == "mlp":
            _check(len(m.hidden_layers) >= 1, "model.hidden_layers", "an mlp needs at least one hidden layer")
        if m.type == "linear":
            _check(
                self.task != "classification", "model.type", "linear is least squares; use logistic for classification"
            )
        if m.type == "logistic":
            _check(self.task != "regression", "model.type", "logistic is a classifier; use linear for regression")
        n_hidden = len(m.hidden_layers) if m.type == "mlp" else 0
        if isinstance(r.dropout, list):
            _check(
                len(r.dropout) == n_hidden,
                "regularization.dropout",
                f"a list needs one rate per hidden layer ({n_hidden}), got {len(r.dropout)}",
            )
        _check(not o.nesterov or o.momentum > 0, "optimizer.nesterov", "needs momentum > 0")
        if self.features is not None:
            _check(len(self.features) >= 1, "features", "name at least one column")
            _check(len(set(self.features)) == len(self.features), "features", "names a column twice")
        _check(s.min_lr <= o.learning_rate, "lr_schedule.min_lr", "must not exceed optimizer.learning_rate")
        _check(
            t.validation_fraction + t.test_fraction < 0.9,
            "training.test_fraction",
            "validation_fraction + test_fraction must leave at least 10% for training",
        )
        if self.path is not None:
            self._validate_path()
        elif t.cross_validation is not None:
            _check(
                False,
                "training.cross_validation",
                "cross_validation for minibatch models is not available yet; a regularization path (path) takes it",
            )
        es = t.early_stopping
        if es is not None:
            _check(
                not es.monitor.startswith("val_") or t.validation_fraction > 0,
                "training.early_stopping.monitor",
                f"{es.monitor} needs training.validation_fraction > 0",
            )

    def _validate_path(self) -> None:
        m, r, t, path = self.model, self.regularization, self.training, self.path
        assert path is not None
        _check(m.type != "mlp", "path", "a regularization path fits linear or logistic models; for an mlp, run a sweep")
        for name in ("l1", "l2", "input_dropout", "dropout"):
            value = getattr(r, name)
            _check(
                all(v == 0.0 for v in value) if isinstance(value, list) else value == 0.0,
                f"regularization.{name}",
                "must be 0 with a path: the path sets the penalty (l1 = alpha·λ, l2 = (1-alpha)·λ/2)",
            )
        if path.lambdas is not None:
            _check(len(path.lambdas) >= 1, "path.lambdas", "give at least one λ")
        if path.measure is not None:
            regression = m.type == "linear" or self.task == "regression"
            allowed = ("mse", "mae") if regression else ("deviance", "misclassification", "auc", "mse", "mae")
            _check(path.measure in allowed, "path.measure", f"must be one of {', '.join(allowed)} for {m.type}")
        cv = t.cross_validation
        if cv is None:
            _check(
                t.validation_fraction > 0,
                "training.validation_fraction",
                "a path chooses λ on a validation split or by cross_validation; give one of them",
            )
        elif cv.fold_column is not None:
            _check(cv.fold_column != "", "training.cross_validation.fold_column", "name a column")
            _check(
                self.features is None or cv.fold_column not in self.features,
                "features",
                f"{cv.fold_column!r} is the fold column; it cannot also be a feature",
            )

    @property
    def dtype_name(self) -> str:
        """The floating-point type training runs in, with ``auto`` resolved."""
        if self.training.dtype != "auto":
            return self.training.dtype
        return "float32" if self.model.type == "mlp" else "float64"


# -- reading and checking fields by their declarations -----------------------------


@cache
def field_types(cls: Any) -> dict[str, Any]:
    """The resolved type of each field of spec dataclass ``cls`` (the annotations are strings here)."""
    return typing.get_type_hints(cls)


def members(hint: Any) -> tuple[Any, ...]:
    """The members of a union type (``X | Y``), or ``(hint,)``."""
    if get_origin(hint) in (Union, types.UnionType):
        return get_args(hint)
    return (hint,)


def _check(ok: bool, path: str, message: str) -> None:
    if not ok:
        raise ConfigError(path, message)


def _check_fields(spec: Any, prefix: str) -> None:
    """Each field of dataclass ``spec`` against its declaration: a choice among its Literal, its bounds."""
    for f in dataclasses.fields(spec):
        value, path, hint = getattr(spec, f.name), f"{prefix}{f.name}", field_types(spec.__class__)[f.name]
        if dataclasses.is_dataclass(value):
            _check_fields(value, f"{path}.")
            continue
        for member in members(hint):
            if get_origin(member) is Literal and value is not None:
                choices = get_args(member)
                _check(value in choices, path, f"must be one of {', '.join(choices)}")
        for i, number in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(number, float):
                _check(math.isfinite(number), f"{path}.{i}" if isinstance(value, list) else path, "must be finite")
        bounds: Bounds | None = f.metadata.get("bounds")
        if bounds is None or value is None:
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                _check(bounds.holds(item), f"{path}.{i}", bounds.describe())
        else:
            _check(bounds.holds(value), path, bounds.describe())


def _build(cls: type, data: Any, prefix: str) -> Any:
    """Instantiate dataclass ``cls`` from a dict, checking keys and each value's type against the field's."""
    where = prefix.rstrip(".") or "spec"
    if not isinstance(data, dict):
        raise ConfigError(where, "must be an object")
    hints = field_types(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}", f"unknown field (known: {', '.join(hints)})")
    return cls(**{name: _coerce(hints[name], value, f"{prefix}{name}") for name, value in data.items()})


def _coerce(hint: Any, value: Any, path: str) -> Any:
    """``value`` read as a field of type ``hint``; a union takes None, then a list, then its scalar member."""
    options = members(hint)
    if value is None and type(None) in options:
        return None
    lists = [m for m in options if get_origin(m) is list]
    if lists and isinstance(value, list):
        (item,) = get_args(lists[0])
        return [_coerce(item, v, f"{path}.{i}") for i, v in enumerate(value)]
    scalars = [m for m in options if m is not type(None) and get_origin(m) is not list]
    if not scalars:
        raise ConfigError(path, "must be a list")
    scalar = scalars[0]
    if isinstance(scalar, type) and dataclasses.is_dataclass(scalar):
        return _build(scalar, value, f"{path}.")
    if get_origin(scalar) is Literal:
        _check(isinstance(value, str), path, "must be a string")
        return value
    if scalar is bool:
        _check(isinstance(value, bool), path, "must be true or false")
        return value
    if scalar is str:
        _check(isinstance(value, str), path, "must be a string")
        return value
    if scalar is int:
        return _integer(value, path)
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
