"""The service's job spec is the engine's: same fields, defaults, choices and bounds, both ways.

``store/jobspec.py`` derives its pydantic models from ``engine/spec.py``; these
tests walk every engine field and check that the request schema and
``TrainSpec.from_dict`` accept and refuse the same values, naming the same field,
and that the service's own caps (``Bounds.cap``, ``max_items``) bind the
request only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import ValidationError

from engine import ConfigError, TrainSpec
from engine.spec import Bounds, field_types, members
from store.jobspec import ENGINE_FIELDS, JobSpec


def _leaves(cls: type = TrainSpec, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any, Any]]:
    """(path, type, field) of every non-section field of the engine's spec."""
    out = []
    for f in dataclasses.fields(cls):
        hint = field_types(cls)[f.name]
        section = next((m for m in members(hint) if dataclasses.is_dataclass(m)), None)
        if section is not None:
            out += _leaves(section, (*prefix, f.name))
        else:
            out.append(((*prefix, f.name), hint, f))
    return out


LEAVES = _leaves()


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    body: dict[str, Any] = {path[-1]: value}
    for part in reversed(path[:-1]):
        body = {part: body}
    if path[:2] == ("training", "early_stopping"):
        body["training"].setdefault("validation_fraction", 0.2)
    if path[0] == "path" or path[:2] == ("training", "cross_validation"):
        # A path fits linear or logistic models (a logistic one takes every measure); only a path takes folds.
        body["model"] = {"type": "logistic"}
        body.setdefault("path", {})
    return body


def _internal(part: Any) -> bool:
    """pydantic's names of union members in an error's ``loc`` (``constrained-float``, ``list[...]``)."""
    return str(part).startswith(("constrained", "list[", "float", "int"))


def _refused_by_both(path: tuple[str, ...], value: Any) -> None:
    field = ".".join(path)
    with pytest.raises(ValidationError) as api:
        JobSpec.model_validate({"dataset": "iris", **_nest(path, value)})
    locs = [
        ".".join(str(p) for p in e["loc"] if not str(p).startswith(("constrained", "list[")))
        for e in api.value.errors()
    ]
    assert any(loc == field or loc.startswith(field + ".") for loc in locs), (field, locs)
    with pytest.raises(ConfigError) as engine:
        TrainSpec.from_dict(_nest(path, value))
    assert engine.value.field == field or engine.value.field.startswith(field + "."), (field, engine.value.field)


def _refused_by_the_service_only(path: tuple[str, ...], value: Any) -> None:
    with pytest.raises(ValidationError):
        JobSpec.model_validate({"dataset": "iris", **_nest(path, value)})
    TrainSpec.from_dict(_nest(path, value))


def _accepted_by_both(path: tuple[str, ...], value: Any) -> None:
    job = JobSpec.model_validate({"dataset": "iris", **_nest(path, value)})
    spec = TrainSpec.from_dict(_nest(path, value))
    assert job.engine_spec().to_dict() == spec.to_dict()


def test_the_schema_has_every_engine_field_with_its_default():
    assert set(ENGINE_FIELDS) == {f.name for f in dataclasses.fields(TrainSpec)}
    stored = JobSpec.model_validate({"dataset": "iris"}).normalized()
    assert {k: stored[k] for k in ENGINE_FIELDS} == TrainSpec.from_dict({}).to_dict()
    raw = JobSpec.model_validate({"dataset": "iris"}).model_dump(include=set(ENGINE_FIELDS))
    assert TrainSpec.from_dict(raw) == TrainSpec()


@pytest.mark.parametrize(("path", "hint", "field"), LEAVES, ids=[".".join(p) for p, _, _ in LEAVES])
def test_choices_and_bounds_agree(path, hint, field):
    choices = [get_args(m) for m in members(hint) if get_origin(m) is Literal]
    for options in choices:
        for option in options:
            _accepted_by_both(path, option)
        _refused_by_both(path, "no-such-choice")
    bounds: Bounds | None = field.metadata.get("bounds")
    if bounds is None:
        return
    is_int = int in members(hint) or any(get_args(m) == (int,) for m in members(hint))
    step = 1 if is_int else 1e-9
    listed = any(get_origin(m) is list for m in members(hint)) and not any(m is float for m in members(hint))

    def shape(v: Any) -> Any:
        return [v] if listed else v

    for edge, inside, outside in (
        (bounds.ge, bounds.ge, None if bounds.ge is None else bounds.ge - step),
        (bounds.gt, None if bounds.gt is None else bounds.gt + step, bounds.gt),
        (bounds.le, bounds.le, None if bounds.le is None else bounds.le + step),
        (bounds.lt, None if bounds.lt is None else bounds.lt - step, bounds.lt),
    ):
        if edge is None:
            continue
        inside, outside = (int(inside), int(outside)) if is_int else (inside, outside)
        if path == ("lr_schedule", "min_lr") and inside > 0.001:
            continue  # also bounded by optimizer.learning_rate (a rule across fields)
        if path == ("training", "test_fraction") and inside > 0.6:
            continue  # validation + test must leave 10% to train (a rule across fields)
        if path == ("training", "validation_fraction") and inside > 0.9:
            continue
        _accepted_by_both(path, shape(inside))
        _refused_by_both(path, shape(outside))
    if bounds.cap is not None:
        _accepted_by_both(path, shape(int(bounds.cap) if is_int else bounds.cap))
        _refused_by_the_service_only(path, shape(int(bounds.cap + step) if is_int else bounds.cap * 1.01))
    if bounds.max_items is not None:
        strings = any(get_args(m) == (str,) for m in members(hint))
        items = [f"c{i}" if strings else bounds.ge or 1 for i in range(bounds.max_items + 1)]
        _refused_by_the_service_only(path, items)
