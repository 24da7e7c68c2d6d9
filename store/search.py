"""Adaptive search for sweeps: Optuna's TPE sampler asked one trial at a time, and parameter importance.

A ``tpe`` sweep does not expand its trials up front: each trial's parameters
are asked when a slot frees up (``store/sweeps.py`` reserves the slot and
records the answer). Nothing of Optuna is kept between asks. Each ask
rebuilds the study from the sweep's trial records, in slot order:

- a succeeded trial with an objective is ``COMPLETE`` with its best objective
  (the leaderboard's number);
- a pruned trial is ``PRUNED`` with its best objective so far as the
  intermediate value at its last epoch (what the pruner compared);
- a failed or cancelled one (or a succeeded one without the metric) is ``FAIL``;
- a queued or running one is ``RUNNING`` with its parameters, so parallel
  slots follow the constant-liar rule.

The sampler (``TPESampler``, multivariate, constant liar) is seeded from the
sweep's seed and the slot number, so an ask is a function of the seed, the
slot and the records alone: with one trial at a time the same seed gives the
same trials, and any process (after a restart of every process, too) asks
what any other would have.

Search-space mapping: ``values`` → ``CategoricalDistribution`` over the
values' JSON texts (so lists and objects are choices too), ``uniform`` /
``log_uniform`` → ``FloatDistribution`` (``log=True``), ``int_uniform`` →
``IntDistribution(ceil(low), floor(high))``.

Optuna is imported on first use, so processes that never see a ``tpe``
sweep nor eight finished trials of a sweep do not load it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from store.statuses import ACTIVE

if TYPE_CHECKING:
    from optuna import Study
    from optuna.distributions import BaseDistribution
    from optuna.samplers import BaseSampler
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)

#: Succeeded trials needed before a sweep reports parameter importance.
IMPORTANCE_MIN_TRIALS = 8
#: Optuna's default number of random trials before TPE models the results.
STARTUP_TRIALS = 10


class SpaceError(ValueError):
    """The search space cannot be applied to the job spec; ``field`` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


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


def startup_trials(max_trials: int) -> int:
    """Random trials before TPE takes over: Optuna's 10, or a quarter of a smaller budget (at least 2)."""
    return max(2, min(STARTUP_TRIALS, max_trials // 4))


def ask(spec: dict[str, Any], trials: Iterable[dict[str, Any]], slots: Sequence[int]) -> list[dict[str, Any]]:
    """The parameters of trials ``slots`` of the sweep ``spec``, given its trials so far.

    The study is built once; each slot in turn is asked with a sampler seeded
    from the sweep's seed and the slot, and stays in the study as running for
    the next one, so asking slots together gives what asking them one by one
    (each filled before the next) would.

    Parameters
    ----------
    spec : dict
        The sweep's normalized request: ``parameters``, ``seed``, ``max_trials``, ``objective``.
    trials : iterable of dict
        Trial states (``SweepStore.trial_states``): ``parameters``, ``status``, ``best``, ``epochs_run``.
    slots : sequence of int
        The slots being filled (0-based), in order.
    """
    optuna = _optuna()
    space = distributions(spec["parameters"])
    study = _study(spec, trials, None)
    out = []
    for slot in slots:
        study.sampler = optuna.samplers.TPESampler(
            seed=_slot_seed(int(spec.get("seed") or 0), slot),
            multivariate=True,
            constant_liar=True,
            n_startup_trials=startup_trials(int(spec.get("max_trials") or STARTUP_TRIALS)),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trial = study.ask(space)
        out.append({name: _external(space[name], trial.params[name]) for name in spec["parameters"]})
    return out


def importance(spec: dict[str, Any], trials: Iterable[dict[str, Any]]) -> dict[str, float] | None:
    """Each parameter's share of the objective's importance (PED-ANOVA), best first; shares sum to 1.

    None until :data:`IMPORTANCE_MIN_TRIALS` trials succeeded with an
    objective, or when no parameter made any difference. PED-ANOVA (as Optuna
    ships it) compares where the best trials (the top 10 %) lie with where all
    trials lie, per parameter; unlike fANOVA it needs no scikit-learn at run
    time. ``bench/README.md`` ("Search") compares the evaluators.
    """
    optuna = _optuna()
    study = _study(spec, trials, None)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < IMPORTANCE_MIN_TRIALS:
        return None
    if len({trial.value for trial in complete}) < 2:
        return None  # every trial scored the same: nothing made a difference
    with warnings.catch_warnings():
        # Experimental-API notices, and "importances will be equal" when nothing mattered (None below).
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        raw = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=False)
    values = {name: max(0.0, float(value)) for name, value in raw.items() if math.isfinite(value)}
    total = sum(values.values())
    if total <= 0.0:
        return None
    shares = {name: values.get(name, 0.0) / total for name in spec["parameters"]}
    return dict(sorted(shares.items(), key=lambda item: -item[1]))


def distributions(parameters: dict[str, dict[str, Any]]) -> dict[str, BaseDistribution]:
    """Optuna's distribution for each parameter of a sweep (as stored: plain dicts)."""
    optuna = _optuna()
    out: dict[str, BaseDistribution] = {}
    for name, param in parameters.items():
        if param.get("values") is not None:
            choices = list(dict.fromkeys(_choice(value) for value in param["values"]))
            out[name] = optuna.distributions.CategoricalDistribution(choices)
        elif param["distribution"] == "int_uniform":
            out[name] = optuna.distributions.IntDistribution(math.ceil(param["low"]), math.floor(param["high"]))
        else:
            log_scale = param["distribution"] == "log_uniform"
            out[name] = optuna.distributions.FloatDistribution(float(param["low"]), float(param["high"]), log=log_scale)
    return out


def _study(spec: dict[str, Any], trials: Iterable[dict[str, Any]], sampler: BaseSampler | None) -> Study:
    """An in-memory study holding the sweep's trials in order."""
    optuna = _optuna()
    direction = "minimize" if (spec.get("objective") or {}).get("mode", "min") == "min" else "maximize"
    study = optuna.create_study(direction=direction, sampler=sampler)
    space = distributions(spec["parameters"])
    for trial in trials:
        frozen = _frozen(trial, space)
        if frozen is not None:
            study.add_trial(frozen)
    return study


def _frozen(trial: dict[str, Any], space: dict[str, BaseDistribution]) -> FrozenTrial | None:
    """One trial record as Optuna's trial; None when its parameters do not fit the space."""
    optuna = _optuna()
    state = optuna.trial.TrialState
    params = trial.get("parameters") or {}
    try:
        internal = {name: _internal(dist, params[name]) for name, dist in space.items()}
    except (KeyError, ValueError, TypeError):
        log.warning("trial %s: parameters outside the search space; left out of the study", trial.get("trial_id"))
        return None
    status = trial.get("status")
    objective = (trial.get("best") or {}).get("objective")
    value = float(objective) if isinstance(objective, int | float) and math.isfinite(objective) else None
    common: dict[str, Any] = {"params": internal, "distributions": space}
    if status == "succeeded" and value is not None:
        return optuna.trial.create_trial(value=value, **common)
    if status == "pruned" and value is not None:
        step = max(int(trial.get("epochs_run") or 1), 1)
        return optuna.trial.create_trial(state=state.PRUNED, value=value, intermediate_values={step: value}, **common)
    if status in ACTIVE:
        return optuna.trial.create_trial(state=state.RUNNING, **common)
    return optuna.trial.create_trial(state=state.FAIL, **common)


def _choice(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _internal(dist: BaseDistribution, value: Any) -> Any:
    """A trial's parameter value as Optuna holds it in ``dist`` (floats clipped to its bounds)."""
    optuna = _optuna()
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        choice = _choice(value)
        if choice not in dist.choices:
            raise ValueError(f"{choice} is not a choice")
        return choice
    if isinstance(dist, optuna.distributions.IntDistribution):
        return min(max(int(value), dist.low), dist.high)
    assert isinstance(dist, optuna.distributions.FloatDistribution)
    return min(max(float(value), dist.low), dist.high)


def _external(dist: BaseDistribution, value: Any) -> Any:
    """An asked value as the job spec takes it."""
    optuna = _optuna()
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return json.loads(value)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return int(value)
    return float(value)


def _slot_seed(seed: int, slot: int) -> int:
    """A 32-bit sampler seed for one slot of the sweep seeded ``seed``."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{slot}".encode()).digest()[:4], "big")


def _optuna() -> Any:
    """The optuna module, imported (and quietened) on first use."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna
