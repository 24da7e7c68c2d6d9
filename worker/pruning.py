"""Early stopping of bad sweep trials: the median rule and asynchronous successive halving (ASHA).

Pure functions over recorded objective values; the runner feeds them what
the trials of a sweep have reported at an epoch, and stops its trial when
they say so. Values are oriented so that smaller is better.
"""

from __future__ import annotations

import math
import statistics
from typing import Any


def oriented(value: float | None, smaller_is_better: bool) -> float:
    """``value`` turned into a cost (smaller is better); missing or NaN values are the worst."""
    if value is None or not math.isfinite(value):
        return math.inf
    return value if smaller_is_better else -value


def best_so_far(history: list[dict[str, Any]], metric: str, smaller_is_better: bool) -> tuple[float, int]:
    """The best cost of ``metric`` over the epochs in ``history`` and its epoch (1-based)."""
    costs = [oriented(record.get(metric), smaller_is_better) for record in history]
    index = min(range(len(costs)), key=costs.__getitem__)
    return costs[index], index + 1


def median_stops(mine: float, others: list[float], min_trials: int) -> bool:
    """Stop when at least ``min_trials`` other trials reported and ``mine`` is worse than their median."""
    return len(others) >= min_trials and mine > statistics.median(others)


def asha_rungs(grace_epochs: int, reduction_factor: int, epochs: int) -> list[int]:
    """Epochs at which ASHA compares trials: grace, grace*η, grace*η², … below ``epochs``."""
    rungs, rung = [], grace_epochs
    while rung < epochs:
        rungs.append(rung)
        rung *= reduction_factor
    return rungs


def asha_stops(mine: float, at_rung: list[float], reduction_factor: int, min_trials: int) -> bool:
    """Stop unless ``mine`` is among the best 1/η of the costs recorded at this rung (itself included)."""
    if len(at_rung) < max(min_trials, reduction_factor):
        return False
    keep = max(1, len(at_rung) // reduction_factor)
    return mine > sorted(at_rung)[keep - 1]
