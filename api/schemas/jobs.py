"""Job schemas. The request body is the shared :class:`store.jobspec.JobSpec`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from store.jobspec import JobSpec
from store.statuses import JobStatus, StopReason

__all__ = [
    "DatasetSummary",
    "EpochMetrics",
    "JobList",
    "JobPublic",
    "JobSpec",
    "JobStatus",
    "MetricsList",
    "PathPoint",
    "PathPublic",
    "PathSummary",
    "PredictRequest",
    "PredictResponse",
    "Progress",
    "TestMetrics",
    "Timestamp",
]

#: RFC 3339 UTC, milliseconds: ``2026-01-31T12:00:00.000Z``. Sent as stored, documented as ``date-time``.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"}, examples=["2026-01-31T12:00:00.000Z"])]


class EpochMetrics(BaseModel):
    """One epoch's record. Classification jobs carry ``accuracy``/``val_accuracy``, regression jobs
    ``r2``/``val_r2`` and ``mae``/``val_mae``; a field that does not apply is absent."""

    model_config = ConfigDict(extra="allow")

    epoch: int = Field(description="1-based.")
    train_loss: float | None = None
    val_loss: float | None = Field(None, description="null without a validation split.")
    accuracy: float | None = None
    val_accuracy: float | None = None
    r2: float | None = None
    val_r2: float | None = None
    mae: float | None = None
    val_mae: float | None = None
    penalty: float | None = Field(None, description="l1*sum|w| + l2*sum w^2 over the weights.")
    weight_l2_norm: float | None = None
    sparsity: float | None = Field(None, description="Fraction of weights exactly 0.")
    learning_rate: float | None = None
    epoch_seconds: float | None = None
    samples_per_second: float | None = None
    timestamp: float | None = Field(None, description="Unix seconds at the end of the epoch.")


class TestMetrics(BaseModel):
    """On the held-out test split: ``loss`` and ``accuracy``, or ``loss``, ``r2`` and ``mae``."""

    __test__ = False  # not a pytest test class

    loss: float | None = None
    accuracy: float | None = None
    r2: float | None = None
    mae: float | None = None


class DatasetSummary(BaseModel):
    """The dataset a job trains on, as it was when the job was created."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    source: str = Field(description="builtin or upload")
    n_samples: int
    n_features: int
    task: str | None
    target_name: str
    rows_missing_target: int = Field(0, description="Rows left out of training because their target is missing.")


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


class PathSummary(BaseModel):
    """A path job's choice of λ (``GET /v1/jobs/{id}/path`` has every point)."""

    n_lambdas: int
    measure: str = Field(description="The validation measure: mse, mae, deviance, misclassification or auc.")
    select: str = Field(description="`1se` or `min`: which point is the job's model.")
    validation: str = Field(description="`cross_validation` (k folds) or `holdout` (the validation split).")
    folds: int | None = Field(None, description="k with cross-validation.")
    lambda_min: float = Field(description="The λ with the best cv_mean.")
    lambda_1se: float = Field(description="The largest λ whose cv_mean is within one cv_sd of the best.")
    index_min: int
    index_1se: int
    index: int = Field(description="The job's model: the point at `select`.")
    # A field named `lambda` would be a keyword in the generated clients' languages; the summary says `lambda_`.
    lambda_: float = Field(alias="lambda", description="λ of the job's model.")
    nonzero: int = Field(description="Nonzero coefficients of the job's model.")

    model_config = ConfigDict(populate_by_name=True)


class JobPublic(BaseModel):
    """A job as the API shows it. Routes send it with ``response_model_exclude_unset``: a metric that does
    not apply to the job is absent, as in the stored record (and as ``GET /v1/jobs/{id}`` sends it)."""

    id: str
    name: str
    status: JobStatus = Field(description="`pruned`: a sweep trial its pruner stopped.")
    created_at: Timestamp
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    attempt: int
    queue_position: int | None = Field(
        None,
        description="While queued: 1 + the jobs of the service queued before this one that still wait "
        "(sweep trials waiting for a slot of their sweep included).",
    )
    progress: Progress
    latest_metrics: EpochMetrics | None = None
    best_metrics: EpochMetrics | None = None
    best_epoch: int | None = None
    stopped_early: bool = False
    stop_reason: StopReason | None = Field(None, description="null: every epoch ran.")
    test_metrics: TestMetrics | None = None
    error: JobError | None = None
    spec: JobSpec = Field(description="The normalized spec: every default filled in.")
    dataset: DatasetSummary
    sweep_id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    path: PathSummary | None = Field(None, description="A path job's λ choice, once it has succeeded.")


class PathPoint(BaseModel):
    """One λ of a path: its statistics and the coefficients on the raw scale of the model's inputs."""

    index: int
    lambda_: float = Field(alias="lambda")
    cv_mean: float | None = Field(description="The validation measure (mean over the folds, weighted by size).")
    cv_sd: float | None = Field(
        description="Its standard error: glmnet's cvsd over the folds, or over the validation rows (holdout); "
        "null where undefined (an AUC on a holdout split)."
    )
    nonzero: int
    train_loss: float = Field(description="RSS/(2n) or the mean log-loss on the training rows.")
    dev_ratio: float = Field(description="Fraction of the null deviance explained (glmnet's dev.ratio).")
    intercept: float
    coef: list[float] = Field(description="One per model input, in `input_names` order.")

    model_config = ConfigDict(populate_by_name=True)


class PathPublic(PathSummary):
    """A path job's regularization path, every λ in decreasing order (glmnet's `lambda`, `cvm`, `cvsd`, `nzero`)."""

    family: str = Field(description="`gaussian` (linear) or `binomial` (logistic).")
    alpha: float
    lambda_max: float = Field(description="The smallest λ at which every coefficient is 0.")
    input_names: list[str] = Field(description="The model's inputs, which the coefficients multiply.")
    classes: list[Any] | None = Field(None, description="Binomial: the coefficients predict `classes[1]`.")
    points: list[PathPoint]


class JobList(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last.")


class MetricsList(BaseModel):
    items: list[EpochMetrics] = Field(description="One record per epoch, in epoch order.")


Cell = float | str | bool | None
ROW_SCHEMA: dict[str, JsonValue] = {
    "title": "Row",
    "description": "A list of cells in the order of the model's columns, or an object of cells keyed by column "
    "name; a cell is a number, a string, true/false or null.",
    "examples": [[5.1, 3.5, 1.4, 0.2], {"age": 41, "color": "red"}],
}


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
        # A row's schema is left open: a union of a list and an object of a union of primitives is what the
        # generators cannot build from plain lists (openapi-generator wraps each row and each cell in a model).
        json_schema_extra={"items": ROW_SCHEMA},
    )


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(description="Class labels as the dataset names them, or values.")
    probabilities: list[list[float]] | None = Field(None, description="Per class, in `classes` order.")
    classes: list[Any] | None = None
