"""Turn a sweep's search space into trial job specs, reproducibly.

``grid`` takes every combination of the ``values`` parameters (the first
parameter varies slowest); parameters with a distribution are sampled per
trial, and when there are any, ``max_trials`` may repeat the grid with fresh
samples. ``random`` samples every parameter per trial. Sampling uses
``random.Random(seed)`` alone, so one seed always gives the same trials.
``tpe`` asks Optuna for each trial when its slot frees up
(``store/search.py``); here only the points that bound its space are listed,
so that the API validates them before the sweep starts.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from api.schemas.sweeps import Parameter, SweepCreate

RANDOM_DEFAULT_TRIALS = 10


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


def probe_points(sweep: SweepCreate) -> list[dict[str, Any]]:
    """Assignments that bound the space: every parameter at each of its values or bounds, the others at their first."""
    options = {name: _extremes(param) for name, param in sweep.parameters.items()}
    first = {name: values[0] for name, values in options.items()}
    return [first] + [{**first, name: value} for name, values in options.items() for value in values[1:]]


def _extremes(param: Parameter) -> list[Any]:
    if param.values is not None:
        return list(param.values)
    low, high = float(param.low or 0.0), float(param.high or 0.0)
    if param.distribution == "int_uniform":
        return [math.ceil(low), math.floor(high)]
    return [low, high]


def _sample(param: Parameter, rng: random.Random) -> Any:
    if param.values is not None:
        return rng.choice(param.values)
    low, high = float(param.low or 0.0), float(param.high or 0.0)
    if param.distribution == "uniform":
        return rng.uniform(low, high)
    if param.distribution == "log_uniform":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    return rng.randint(math.ceil(low), math.floor(high))
