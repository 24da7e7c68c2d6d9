"""The job specification: the body of ``POST /v1/jobs``, stored in every job record.

One pydantic model, used by the API to validate requests (and to document
them in ``/docs``) and by the workers to read a job back. Its training part
is derived from the engine's spec dataclasses (``engine/spec.py``): the same
field names, types, choices, defaults, bounds and descriptions, declared
once there. The rules that span fields (a dropout list as long as the hidden
layers, early stopping on a validation metric needing a validation split, …)
are the engine's :meth:`engine.TrainSpec.validate`, which
:meth:`JobSpec.engine_spec` runs, so the two can never disagree.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model

from engine import spec as engine_spec
from engine.spec import Bounds, Task, TrainSpec, field_types, members


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


#: The pydantic model derived from each engine spec dataclass.
_SCHEMAS: dict[type, type[BaseModel]] = {}


def _constrained(scalar: Any, bounds: Bounds | None) -> Any:
    if bounds is None or scalar not in (int, float):
        return scalar
    le = bounds.cap if bounds.le is None else bounds.le if bounds.cap is None else min(bounds.le, bounds.cap)
    return Annotated[scalar, Field(ge=bounds.ge, gt=bounds.gt, le=le, lt=bounds.lt)]


def _pydantic_type(hint: Any, bounds: Bounds | None) -> Any:
    """The pydantic type of an engine field's type: bounds on each number, derived models for sections."""
    out: list[Any] = []
    for member in members(hint):
        if dataclasses.is_dataclass(member):
            out.append(schema_of(member))  # type: ignore[arg-type]
        elif get_origin(member) is list:
            (item,) = get_args(member)
            out.append(list[_constrained(item, bounds)])  # type: ignore[misc]
        else:
            out.append(_constrained(member, bounds))
    return Union[tuple(out)] if len(out) > 1 else out[0]  # noqa: UP007 (built from a runtime tuple)


def _fields(cls: type) -> dict[str, Any]:
    """``create_model`` field definitions of the engine dataclass ``cls``."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        bounds: Bounds | None = f.metadata.get("bounds")
        options: dict[str, Any] = {"description": f.metadata.get("doc") or None}
        if f.metadata.get("examples"):
            options["examples"] = f.metadata["examples"]
        if bounds is not None and bounds.max_items is not None:
            options["max_length"] = bounds.max_items
        if f.default_factory is not dataclasses.MISSING:
            factory = f.default_factory
            options["default_factory"] = schema_of(factory) if dataclasses.is_dataclass(factory) else factory
        else:
            options["default"] = f.default
        out[f.name] = (_pydantic_type(field_types(cls)[f.name], bounds), Field(**options))
    return out


def schema_of(cls: type) -> type[BaseModel]:
    """The pydantic model of engine spec dataclass ``cls`` (made once, named as the dataclass)."""
    if cls not in _SCHEMAS:
        _SCHEMAS[cls] = create_model(
            cls.__name__, __base__=_Strict, __doc__=cls.__doc__, __module__=__name__, **_fields(cls)
        )
    return _SCHEMAS[cls]


if TYPE_CHECKING:
    # Type checkers read the fields as the engine's dataclasses, which have the same attributes.
    from engine.spec import (
        ModelSpec,
        OptimizerSpec,
        PathSpec,
        PreprocessingSpec,
        RegularizationSpec,
        ScheduleSpec,
        TrainingSpec,
    )
else:
    ModelSpec = schema_of(engine_spec.ModelSpec)
    RegularizationSpec = schema_of(engine_spec.RegularizationSpec)
    OptimizerSpec = schema_of(engine_spec.OptimizerSpec)
    ScheduleSpec = schema_of(engine_spec.ScheduleSpec)
    TrainingSpec = schema_of(engine_spec.TrainingSpec)
    EarlyStoppingSpec = schema_of(engine_spec.EarlyStoppingSpec)
    PreprocessingSpec = schema_of(engine_spec.PreprocessingSpec)
    CrossValidationSpec = schema_of(engine_spec.CrossValidationSpec)
    PathSpec = schema_of(engine_spec.PathSpec)

ENGINE_FIELDS = tuple(f.name for f in dataclasses.fields(TrainSpec))

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
    task: Task = Field(TrainSpec.task)
    features: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, max_length=10_000, description="Columns to train on; null: every column but the target."
    )
    preprocessing: PreprocessingSpec = Field(default_factory=PreprocessingSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    regularization: RegularizationSpec = Field(default_factory=RegularizationSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    lr_schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    path: PathSpec | None = Field(
        None,
        description="A regularization path over λ for linear and logistic models (glmnet's), cross-validated "
        "with `training.cross_validation` or validated on the holdout split; null: one model trained by minibatches.",
        examples=[{"alpha": 1.0, "n_lambdas": 100, "select": "1se"}],
    )
    tags: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=256)]] = Field(
        default_factory=dict, max_length=32
    )
    _engine: TrainSpec | None = PrivateAttr(None)

    def engine_spec(self) -> TrainSpec:
        """The engine's spec (built once); raises :class:`engine.ConfigError` naming the field on a cross-field rule."""
        if self._engine is None:
            self._engine = TrainSpec.from_dict(self.model_dump(include=set(ENGINE_FIELDS)))
        return self._engine

    def normalized(self) -> dict[str, Any]:
        """Every default filled in, as stored and shown in ``GET /v1/jobs/{id}``."""
        out = self.model_dump(mode="json")
        out.update(self.engine_spec().to_dict())
        return out
