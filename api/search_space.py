"""Turn a sweep's search space into trial job specs, reproducibly.

``grid`` takes every combination of the ``values`` parameters (the first
parameter varies slowest); parameters with a distribution are sampled per
trial, and when there are any, ``max_trials`` may repeat the grid with fresh
samples. ``random`` samples every parameter per trial. Sampling uses
``random.Random(seed)`` alone, so one seed always gives the same trials.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from typing import Any

from api.schemas.sweeps import Parameter, SweepCreate

RANDOM_DEFAULT_TRIALS = 10


class SpaceError(ValueError):
    """The search space cannot be expanded; ``field`` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def trial_parameters(sweep: SweepCreate) -> list[dict[str, Any]]:
    """The parameter assignment of every trial, in trial order."""
    rng = random.Random(sweep.seed)
    names = list(sweep.parameters)
    if sweep.strategy == "random":
        count = sweep.max_trials or RANDOM_DEFAULT_TRIALS
        return [{name: _sample(sweep.parameters[name], rng) for name in names} for _ in range(count)]

    gridded = [n for n in names if sweep.parameters[n].values is not None]
    sampled = [n for n in names if sweep.parameters[n].values is None]
    grid = list(itertools.product(*(sweep.parameters[n].values or [] for n in gridded)))
    count = len(grid) if not sampled else (sweep.max_trials or len(grid))
    if sweep.max_trials is not None:
        count = min(count, sweep.max_trials)
    trials = []
    for i in range(count):
        point = dict(zip(gridded, grid[i % len(grid)], strict=True))
        point.update({n: _sample(sweep.parameters[n], rng) for n in sampled})
        trials.append({n: point[n] for n in names})
    return trials


def apply(base: dict[str, Any], assignment: dict[str, Any]) -> dict[str, Any]:
    """A copy of job spec ``base`` with each dotted path set to its value.

    Raises
    ------
    SpaceError
        A path that does not exist in the spec.
    """
    spec = copy.deepcopy(base)
    for path, value in assignment.items():
        parts = path.split(".")
        node: Any = spec
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, dict) and part in node:
                if last:
                    node[part] = value
                else:
                    node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            else:
                raise SpaceError(f"parameters.{path}", f"{path!r} is not a field of the job spec")
    return spec


def _sample(param: Parameter, rng: random.Random) -> Any:
    if param.values is not None:
        return rng.choice(param.values)
    low, high = float(param.low or 0.0), float(param.high or 0.0)
    if param.distribution == "uniform":
        return rng.uniform(low, high)
    if param.distribution == "log_uniform":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    return rng.randint(math.ceil(low), math.floor(high))
