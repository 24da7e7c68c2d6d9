"""Sweep schemas: the search space, the objective, pruning, and the leaderboard view."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas.jobs import JobError, JobStatus, Timestamp
from engine.spec import MONITORS, Monitor
from store.jobspec import JOB_EXAMPLE, JobSpec
from store.statuses import SweepStatus


def _values_or_distribution(schema: dict[str, Any]) -> None:
    """The JSON schema of :class:`Parameter`: one of two shapes, each with its required keys.

    The shapes leave the other's keys unlisted rather than typed null (openapi-generator cannot build a
    null-typed property), so a key of the other shape sent as null still matches, as the model accepts it;
    ``propertyNames`` keeps out unknown keys. Rules that span values (``low`` < ``high``, ...) stay the model's.
    """
    props = schema.pop("properties")
    schema.pop("additionalProperties", None)
    schema["propertyNames"] = {"enum": list(props)}
    schema["oneOf"] = [
        {
            "title": "ValuesParameter",
            "type": "object",
            "required": ["values"],
            "properties": {"values": {**props["values"]["anyOf"][0], "description": "The values to try."}},
        },
        {
            "title": "DistributionParameter",
            "type": "object",
            "required": ["distribution", "low", "high"],
            "properties": {
                "distribution": {**props["distribution"]["anyOf"][0], "description": "How values are drawn."},
                "low": {"type": "number", "description": "Lower bound; > 0 for log_uniform."},
                "high": {"type": "number", "description": "Upper bound, greater than `low`."},
            },
        },
    ]
    schema["examples"] = [{"values": [0, 0.0001, 0.001]}, {"distribution": "log_uniform", "low": 1e-5, "high": 0.1}]


class Parameter(BaseModel):
    """One dimension of the search space: a list of ``values``, or a ``distribution`` with ``low`` and ``high``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra=_values_or_distribution)

    values: list[Any] | None = Field(None, min_length=1, max_length=1000, examples=[[0, 0.0001, 0.001]])
    distribution: Literal["uniform", "log_uniform", "int_uniform"] | None = None
    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Parameter:
        if (self.values is None) == (self.distribution is None) or (
            self.values is not None and (self.low is not None or self.high is not None)
        ):
            raise ValueError("give either `values` or a `distribution` with `low` and `high`")
        if self.distribution is not None:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError("a distribution needs `low` < `high`")
            if self.distribution == "log_uniform" and self.low <= 0:
                raise ValueError("log_uniform needs `low` > 0")
            if self.distribution == "int_uniform" and math.ceil(self.low) > math.floor(self.high):
                raise ValueError("int_uniform needs an integer between `low` and `high`")
        return self


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: Monitor = "val_loss"
    mode: Literal["min", "max"] | None = Field(None, description="Default: min for losses and MAE, else max.")

    @property
    def smaller_is_better(self) -> bool:
        if self.mode is not None:
            return self.mode == "min"
        return MONITORS[self.metric]


class Pruning(BaseModel):
    """Stopping of bad trials: ``median`` (Optuna/Vizier style) or ``asha`` (asynchronous successive halving)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["median", "asha"]
    grace_epochs: int = Field(5, ge=1, le=100_000, description="No trial is stopped before this epoch.")
    min_trials: int = Field(3, ge=1, le=1000, description="Other trials needed at an epoch (median) or rung (asha).")
    reduction_factor: int = Field(3, ge=2, le=100, description="asha: keep the best 1/factor at each rung.")


SWEEP_EXAMPLE: dict[str, Any] = {
    "name": "digits-regularization",
    "base": {**JOB_EXAMPLE, "training": {"epochs": 20, "batch_size": 64}},
    "parameters": {
        "regularization.l2": {"values": [0, 0.0001, 0.001]},
        "regularization.dropout": {"values": [0, 0.3]},
    },
    "strategy": "grid",
    "max_concurrent_trials": 2,
    "objective": {"metric": "val_loss", "mode": "min"},
    "early_stopping": {"type": "median", "grace_epochs": 5},
    "seed": 0,
}


class SweepCreate(BaseModel):
    """A search over job specs: ``parameters`` address the base spec by dotted path."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={"examples": [SWEEP_EXAMPLE]})

    name: str | None = Field(None, max_length=200)
    base: JobSpec
    parameters: dict[str, Parameter] = Field(
        ..., min_length=1, max_length=32, description="e.g. `regularization.l2`, `model.hidden_layers.0`."
    )
    strategy: Literal["grid", "random", "tpe"] = Field(
        "grid",
        description="grid: every combination of `values` (distributions sampled per trial); random: sampled; "
        "tpe: Optuna's TPE sampler, each trial asked when a slot frees up, from the results so far.",
    )
    max_trials: int | None = Field(
        None, ge=1, le=1000, description="Default: the grid size, or 10 for random; tpe needs it."
    )
    max_concurrent_trials: int = Field(2, ge=1, le=256)
    objective: Objective = Field(default_factory=lambda: Objective())
    early_stopping: Pruning | None = None
    seed: int = Field(
        0,
        ge=0,
        le=2**63 - 1,
        description="Seeds random and tpe sampling: same seed, same trials (tpe: with max_concurrent_trials 1).",
    )


class TrialResult(BaseModel):
    trial_id: str
    index: int
    parameters: dict[str, Any]
    status: JobStatus | Literal["deleted"] = Field(description="`deleted`: the trial's job was deleted.")
    objective: float | None = None
    best_epoch: int | None = None
    train_val_gap: float | None = Field(None, description="val_loss - train_loss at the best epoch.")
    epochs_run: int
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    error: JobError | None = None


class SweepPublic(BaseModel):
    id: str
    name: str
    status: SweepStatus = Field(description="`failed`: every trial failed.")
    created_at: Timestamp
    finished_at: Timestamp | None = None
    strategy: str
    objective: dict[str, Any]
    n_trials: int
    counts: dict[str, int] = Field(description="Trials by status.")
    best_trial: TrialResult | None = Field(None, description="The best succeeded trial.")
    leaderboard: list[TrialResult] = Field(description="Trials by objective, best first; those without one last.")
    importance: dict[str, float] | None = Field(
        None,
        description="Each parameter's share of the objective's importance (Optuna's PED-ANOVA), largest first; "
        "shares sum to 1. Present once 8 trials succeeded.",
        examples=[{"optimizer.learning_rate": 0.81, "regularization.l2": 0.12, "regularization.dropout": 0.07}],
    )
    spec: dict[str, Any]


class SweepList(BaseModel):
    items: list[SweepPublic]
