"""The job specification: the body of ``POST /v1/jobs``, stored in every job record.

One pydantic model, used by the API to validate requests (and to document
them in ``/docs``) and by the workers to read a job back. Types, bounds and
defaults are declared here; rules that span fields (a dropout list as long as
the hidden layers, early stopping on a validation metric needing a validation
split, …) are the engine's :meth:`engine.TrainSpec.validate`, which
:meth:`JobSpec.engine_spec` runs, so the two can never disagree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.spec import TrainSpec

Rate = Annotated[float, Field(ge=0.0, lt=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Units = Annotated[int, Field(ge=1, le=65_536)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ModelSpec(_Strict):
    """Model family; ``hidden_layers`` and ``activation`` apply to ``mlp``."""

    type: Literal["linear", "logistic", "mlp"] = Field(
        "mlp", description="linear: least squares; logistic: sigmoid/softmax classifier; mlp: neural network."
    )
    hidden_layers: list[Units] = Field(default_factory=lambda: [64], max_length=16, examples=[[128, 64]])
    activation: Literal["relu", "tanh", "sigmoid"] = "relu"


class RegularizationSpec(_Strict):
    """Objective = mean data loss + l1·Σ|w| + l2·Σw² over the weights (not biases); dropout rates in [0, 1)."""

    l1: NonNegative = Field(0.0, description="L1 strength, applied by a proximal (soft-threshold) step.")
    l2: NonNegative = Field(0.0, description="L2 strength (the gradient gains 2·l2·w).")
    input_dropout: Rate = Field(0.0, description="Drop probability of each input feature at train time.")
    dropout: Rate | list[Rate] = Field(
        0.0, description="Drop probability of hidden units: one number for all hidden layers, or one per layer."
    )


class OptimizerSpec(_Strict):
    """Optimizer; fields that do not apply to the chosen one are ignored."""

    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "adam"
    learning_rate: float = Field(0.001, gt=0.0, le=1e3)
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="sgd only.")
    nesterov: bool = Field(False, description="sgd only; needs momentum > 0.")
    beta1: float = Field(0.9, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    epsilon: float = Field(1e-8, gt=0.0)
    rho: float = Field(0.9, ge=0.0, lt=1.0, description="rmsprop's squared-gradient decay.")
    weight_decay: NonNegative = Field(0.01, description="adamw's decoupled weight decay.")


class ScheduleSpec(_Strict):
    """Per-epoch learning-rate schedule with optional linear warm-up."""

    name: Literal["constant", "step", "exponential", "cosine"] = "constant"
    step_size: int = Field(10, ge=1, description="step: epochs between decays.")
    gamma: float | None = Field(None, gt=0.0, le=1.0, description="Decay factor; default 0.1 (step), 0.95 (exp).")
    min_lr: NonNegative = Field(0.0, description="cosine: final learning rate.")
    warmup_epochs: int = Field(0, ge=0)


class EarlyStoppingSpec(_Strict):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs."""

    monitor: Literal["val_loss", "val_accuracy", "val_r2", "val_mae", "train_loss", "accuracy", "r2", "mae"] = (
        "val_loss"
    )
    patience: int = Field(10, ge=1)
    min_delta: NonNegative = 0.0
    restore_best: bool = Field(True, description="Keep the weights of the best epoch.")


class TrainingSpec(_Strict):
    """Loop settings. ``dtype`` auto: float64 for linear/logistic, float32 for mlp."""

    epochs: int = Field(50, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=1_000_000)
    validation_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    standardize: bool = True
    shuffle: bool = True
    seed: int = Field(0, ge=0, le=2**63 - 1)
    early_stopping: EarlyStoppingSpec | None = Field(None, description="null: train all epochs.")
    max_runtime_seconds: float = Field(3600.0, gt=0.0)
    dtype: Literal["auto", "float32", "float64"] = "auto"


ENGINE_FIELDS = ("task", "model", "regularization", "optimizer", "lr_schedule", "training")

JOB_EXAMPLE: dict[str, Any] = {
    "name": "digits-mlp-dropout",
    "dataset": "digits",
    "model": {"type": "mlp", "hidden_layers": [128, 64], "activation": "relu"},
    "regularization": {"l2": 0.0001, "dropout": 0.5},
    "optimizer": {"name": "adam", "learning_rate": 0.001},
    "training": {
        "epochs": 30,
        "batch_size": 64,
        "validation_fraction": 0.2,
        "test_fraction": 0.2,
        "early_stopping": {"monitor": "val_loss", "patience": 10},
    },
    "tags": {"team": "search"},
}


class JobSpec(_Strict):
    """A training job: a dataset, a model, its regularization and training settings."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={"examples": [JOB_EXAMPLE]})

    name: str | None = Field(None, max_length=200, description="Free text; defaults to the job id.")
    dataset: str = Field(
        ..., min_length=1, max_length=100, description="A built-in name or an uploaded dataset id.", examples=["iris"]
    )
    target: str | None = Field(None, max_length=200, description="Target column; null: the dataset's own.")
    task: Literal["auto", "regression", "classification"] = "auto"
    model: ModelSpec = Field(default_factory=lambda: ModelSpec())
    regularization: RegularizationSpec = Field(default_factory=lambda: RegularizationSpec())
    optimizer: OptimizerSpec = Field(default_factory=lambda: OptimizerSpec())
    lr_schedule: ScheduleSpec = Field(default_factory=lambda: ScheduleSpec())
    training: TrainingSpec = Field(default_factory=lambda: TrainingSpec())
    tags: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=256)]] = Field(
        default_factory=dict, max_length=32
    )

    def engine_spec(self) -> TrainSpec:
        """The engine's spec; raises :class:`engine.ConfigError` naming the field on a cross-field rule."""
        return TrainSpec.from_dict(self.model_dump(include=set(ENGINE_FIELDS)))

    def normalized(self) -> dict[str, Any]:
        """Every default filled in, as stored and shown in ``GET /v1/jobs/{id}``."""
        out = self.model_dump(mode="json")
        out.update(self.engine_spec().to_dict())
        return out
