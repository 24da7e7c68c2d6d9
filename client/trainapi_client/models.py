"""Typed results: the service's response schemas as dataclasses with attribute access and ``to_dict()``.

Each class mirrors one schema of the service's ``/openapi.json`` (``SCHEMAS``
names it); ``tests/client/test_models.py`` walks the live document and checks
that the fields, their types and which are required match, so the two cannot
drift apart. Fields the service adds later are ignored until a class names them.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from datetime import datetime
from typing import Any, TypeVar, Union

M = TypeVar("M", bound="Model")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Model:
    """Built from a JSON object with :meth:`from_dict`; :meth:`to_dict` gives the JSON shape back."""

    @classmethod
    def from_dict(cls: type[M], data: dict[str, Any]) -> M:
        hints = _hints(cls)
        values = {
            f.name: _build(hints[f.name], data[json_name(f)]) for f in dataclasses.fields(cls) if json_name(f) in data
        }
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {json_name(f): _dump(getattr(self, f.name)) for f in dataclasses.fields(self)}


def json_name(f: dataclasses.Field[Any]) -> str:
    """A field's name in the JSON: its own, or ``metadata["json"]`` for a name Python keeps (``lambda``)."""
    return str(f.metadata.get("json", f.name))


def _hints(cls: type) -> dict[str, Any]:
    cached = _HINTS.get(cls)
    if cached is None:
        cached = _HINTS[cls] = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
    return cached


_HINTS: dict[type, dict[str, Any]] = {}


def _build(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union or type(tp).__name__ == "UnionType":
        (inner,) = [a for a in args if a is not type(None)]
        return _build(inner, value)
    if origin is list:
        return [_build(args[0], v) for v in value]
    if origin is dict:
        return {k: _build(args[1], v) for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Model):
        return tp.from_dict(value)
    if tp is datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if tp is float:
        return float(value)
    return value


def _dump(value: Any) -> Any:
    if isinstance(value, Model):
        return value.to_dict()
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class _DatasetFacts(Model):
    """What every view of a dataset says: a job's summary of it and the dataset itself."""

    id: str
    name: str
    source: str
    n_samples: int
    n_features: int
    task: str | None
    target_name: str
    rows_missing_target: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class DatasetSummary(_DatasetFacts):
    """The dataset a job trains on, as it was when the job was created."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class LevelCount(Model):
    level: str
    count: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class ColumnSummary(Model):
    """One column of an uploaded table: its type (numeric, boolean, categorical), gaps, and values."""

    name: str
    type: str
    missing: int
    min: float | None = None
    mean: float | None = None
    max: float | None = None
    distinct: int | None = None
    top: list[LevelCount] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Dataset(_DatasetFacts):
    """A built-in or uploaded dataset."""

    classes: list[Any] | None = None
    feature_names: list[str]
    description: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    created_at: datetime | None = None
    columns: list[ColumnSummary] | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EpochMetrics(Model):
    """One epoch's record: train and validation metrics (accuracy for classification, r2 and mae for regression)."""

    epoch: int
    train_loss: float | None = None
    val_loss: float | None = None
    accuracy: float | None = None
    val_accuracy: float | None = None
    r2: float | None = None
    val_r2: float | None = None
    mae: float | None = None
    val_mae: float | None = None
    penalty: float | None = None
    weight_l2_norm: float | None = None
    sparsity: float | None = None
    learning_rate: float | None = None
    epoch_seconds: float | None = None
    samples_per_second: float | None = None
    timestamp: float | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestMetrics(Model):
    """Metrics on the held-out test split: loss and accuracy, or loss, r2 and mae."""

    __test__ = False  # not a pytest test class

    loss: float | None = None
    accuracy: float | None = None
    r2: float | None = None
    mae: float | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Progress(Model):
    epoch: int
    epochs: int
    fraction: float
    eta_seconds: float | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class JobError(Model):
    type: str
    message: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Job(Model):
    """A training job: status, progress, metrics and the normalized spec."""

    id: str
    name: str
    status: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempt: int
    queue_position: int | None = None
    progress: Progress
    latest_metrics: EpochMetrics | None = None
    best_metrics: EpochMetrics | None = None
    best_epoch: int | None = None
    stopped_early: bool = False
    stop_reason: str | None = None
    test_metrics: TestMetrics | None = None
    error: JobError | None = None
    spec: dict[str, Any]
    dataset: DatasetSummary
    sweep_id: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    path: PathSummary | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclasses.dataclass(frozen=True, kw_only=True)
class PathSummary(Model):
    """A path job's choice of λ: λ_min, λ_1se, and the point that is the job's model (``index``, ``lambda_``)."""

    n_lambdas: int
    measure: str
    select: str
    validation: str
    folds: int | None = None
    lambda_min: float
    lambda_1se: float
    index_min: int
    index_1se: int
    index: int
    lambda_: float = dataclasses.field(metadata={"json": "lambda"})
    nonzero: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class PathPoint(Model):
    """One λ of a path: the validation curve there (``cv_mean`` ± ``cv_sd``) and the raw-scale coefficients."""

    index: int
    lambda_: float = dataclasses.field(metadata={"json": "lambda"})
    cv_mean: float | None
    cv_sd: float | None
    nonzero: int
    train_loss: float
    dev_ratio: float
    intercept: float
    coef: list[float]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Path(PathSummary):
    """``GET /v1/jobs/{id}/path``: the summary, and every point in decreasing λ (glmnet's ``lambda``, ``cvm``, …)."""

    family: str
    alpha: float
    lambda_max: float
    input_names: list[str]
    classes: list[Any] | None = None
    points: list[PathPoint]


#: Every status a job can have, in the order of its life.
JOB_STATUSES = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled", "pruned")
#: Statuses a job never leaves.
FINISHED = frozenset(JOB_STATUSES[3:])
#: The ``format`` values of ``GET /v1/jobs/{id}/weights``, the service's default (npz) first.
WEIGHTS_FORMATS = ("npz", "safetensors", "json", "onnx")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Prediction(Model):
    """``/predict``: predictions (labels or values) and, for classifiers, probabilities per class."""

    predictions: list[Any]
    probabilities: list[list[float]] | None = None
    classes: list[Any] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Trial(Model):
    """One trial of a sweep (a job), as its leaderboard shows it."""

    trial_id: str
    index: int
    parameters: dict[str, Any]
    status: str
    objective: float | None = None
    best_epoch: int | None = None
    train_val_gap: float | None = None
    epochs_run: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: JobError | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sweep(Model):
    """A sweep: status, counts by status, the leaderboard (best first) and the best trial."""

    id: str
    name: str
    status: str
    created_at: datetime
    finished_at: datetime | None = None
    strategy: str
    objective: dict[str, Any]
    n_trials: int
    counts: dict[str, int]
    best_trial: Trial | None = None
    leaderboard: list[Trial]
    spec: dict[str, Any]
    importance: dict[str, float] | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


#: The service schema each class mirrors (``components.schemas`` of ``/openapi.json``).
SCHEMAS: dict[type[Model], str] = {
    Dataset: "DatasetPublic",
    ColumnSummary: "ColumnSummary",
    LevelCount: "LevelCount",
    EpochMetrics: "EpochMetrics",
    TestMetrics: "TestMetrics",
    Progress: "Progress",
    JobError: "JobError",
    DatasetSummary: "DatasetSummary",
    Job: "JobPublic",
    PathSummary: "PathSummary",
    PathPoint: "PathPoint",
    Path: "PathPublic",
    Prediction: "PredictResponse",
    Trial: "TrialResult",
    Sweep: "SweepPublic",
}
