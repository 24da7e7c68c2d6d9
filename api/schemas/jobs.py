"""Job schemas. The request body is the shared :class:`store.jobspec.JobSpec`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from store.jobspec import JobSpec

__all__ = ["JobList", "JobPublic", "JobSpec", "MetricsList", "PredictRequest", "PredictResponse", "Progress"]


class Progress(BaseModel):
    epoch: int = Field(description="Epochs completed.")
    epochs: int = Field(description="Epochs requested.")
    fraction: float
    eta_seconds: float | None = Field(
        None,
        description="Seconds until the last epoch, while running: epochs left times the median duration "
        "of the last 5 epochs (an upper bound when early stopping ends the job sooner).",
    )


class JobError(BaseModel):
    type: str = Field(examples=["diverged"])
    message: str


class JobPublic(BaseModel):
    """A job as the API shows it."""

    id: str
    name: str
    status: str = Field(
        description="queued, running, cancelling, succeeded, failed, cancelled, "
        "or pruned (a sweep trial its pruner stopped)."
    )
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    attempt: int
    queue_position: int | None = Field(
        None,
        description="While queued: 1 + the jobs of the service queued before this one that still wait "
        "(sweep trials waiting for a slot of their sweep included).",
    )
    progress: Progress
    latest_metrics: dict[str, Any] | None = None
    best_metrics: dict[str, Any] | None = None
    best_epoch: int | None = None
    stopped_early: bool = False
    stop_reason: str | None = Field(None, description="early_stopping, max_runtime, or null.")
    test_metrics: dict[str, Any] | None = None
    error: JobError | None = None
    spec: dict[str, Any] = Field(description="The normalized spec: every default filled in.")
    dataset: dict[str, Any]
    sweep_id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class JobList(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last.")


class MetricsList(BaseModel):
    items: list[dict[str, Any]] = Field(description="One record per epoch, in epoch order.")


Cell = float | str | bool | None


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [{"inputs": [[5.1, 3.5, 1.4, 0.2]]}, {"inputs": [{"age": 41, "color": "red"}]}]},
    )

    inputs: list[list[Cell] | dict[str, Cell]] = Field(
        ...,
        min_length=1,
        max_length=10_000,
        description="Raw rows: lists in the order of the model's columns (the weights metadata's "
        "`feature_names`), or objects keyed by column name. A cell is a number, a text level, true/false, "
        "or null for a missing value (models trained on tables with gaps fill it as they were trained to).",
    )


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(description="Class labels as the dataset names them, or values.")
    probabilities: list[list[float]] | None = Field(None, description="Per class, in `classes` order.")
    classes: list[Any] | None = None
