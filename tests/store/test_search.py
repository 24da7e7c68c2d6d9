"""The adaptive search's asking and importance, on trial records made up here (no Redis, no training)."""

from __future__ import annotations

import math

import pytest

from store import search

SPACE = {
    "optimizer.learning_rate": {"distribution": "log_uniform", "low": 1e-4, "high": 1e-1},
    "model.hidden_layers.0": {"distribution": "int_uniform", "low": 8, "high": 64},
    "regularization.dropout": {"distribution": "uniform", "low": 0.0, "high": 0.5},
    "model.hidden_layers": {"values": [[16], [32, 32]]},
}


def sweep_spec(seed: int = 0, max_trials: int = 24, mode: str = "min") -> dict:
    objective = {"metric": "val_loss", "mode": mode}
    return {"parameters": SPACE, "seed": seed, "max_trials": max_trials, "objective": objective}


def loss(params: dict) -> float:
    """Best at a learning rate of 1e-2; width and dropout matter a little."""
    return (
        (math.log10(params["optimizer.learning_rate"]) + 2) ** 2
        + 0.002 * abs(params["model.hidden_layers.0"] - 40)
        + 0.05 * params["regularization.dropout"]
    )


def finished(params: dict, value: float | None, status: str = "succeeded", epochs: int = 5) -> dict:
    return {"parameters": params, "status": status, "best": {"objective": value}, "epochs_run": epochs}


def run(spec: dict, n: int) -> list[dict]:
    trials: list[dict] = []
    for slot in range(n):
        [params] = search.ask(spec, trials, [slot])
        trials.append(finished(params, loss(params)))
    return trials


@pytest.fixture(scope="module")
def forty() -> tuple[dict, list[dict]]:
    """A 40-trial search of ``loss``: the spec and the trials, in order."""
    spec = sweep_spec(seed=5, max_trials=40)
    return spec, run(spec, 40)


def test_asked_values_lie_in_the_space_with_the_spec_types(forty):
    for trial in forty[1]:
        p = trial["parameters"]
        assert 1e-4 <= p["optimizer.learning_rate"] <= 1e-1 and isinstance(p["optimizer.learning_rate"], float)
        assert 8 <= p["model.hidden_layers.0"] <= 64 and isinstance(p["model.hidden_layers.0"], int)
        assert 0.0 <= p["regularization.dropout"] <= 0.5
        assert p["model.hidden_layers"] in ([16], [32, 32])


def test_an_ask_depends_only_on_seed_slot_and_records():
    first, again, other = run(sweep_spec(seed=3), 14), run(sweep_spec(seed=3), 14), run(sweep_spec(seed=4), 14)
    assert [t["parameters"] for t in first] == [t["parameters"] for t in again]
    assert [t["parameters"] for t in first] != [t["parameters"] for t in other]


def test_tpe_concentrates_on_the_good_region_after_the_random_start(forty):
    _, trials = forty
    start = search.startup_trials(40)
    random_part = sorted(t["best"]["objective"] for t in trials[:start])
    modelled = sorted(t["best"]["objective"] for t in trials[start:])
    assert modelled[len(modelled) // 2] < random_part[len(random_part) // 2]


def test_running_failed_and_pruned_trials_enter_the_study():
    spec = sweep_spec(seed=2)
    done = run(spec, 6)
    pending = [*done, finished(done[0]["parameters"], None, status="running")]
    assert search.ask(spec, pending, [7]) != search.ask(spec, done, [7])  # the running trial is a constant lie
    # Asking two slots together is asking one, then the next with the first running.
    [first] = search.ask(spec, done, [6])
    assert search.ask(spec, done, [6, 7]) == [first, *search.ask(spec, [*done, finished(first, None, "running")], [7])]
    mixed = [
        *done,
        finished(done[1]["parameters"], 3.0, status="pruned", epochs=2),
        finished(done[2]["parameters"], None, status="failed"),
        {"parameters": {"unknown": 1}, "status": "succeeded", "best": {"objective": 1.0}},  # outside the space
    ]
    [params] = search.ask(spec, mixed, [9])
    assert set(params) == set(SPACE)


def test_importance_needs_eight_successes_and_gives_shares_summing_to_one(forty):
    spec, trials = forty
    assert search.importance(spec, trials[:7]) is None
    assert search.importance(spec, [{**t, "status": "failed"} for t in trials]) is None
    shares = search.importance(spec, trials)
    assert shares is not None and set(shares) == set(SPACE)
    assert all(v >= 0 for v in shares.values()) and math.isclose(sum(shares.values()), 1.0)
    assert next(iter(shares)) == "optimizer.learning_rate"  # largest first
    assert list(shares.values()) == sorted(shares.values(), reverse=True)


def test_importance_is_none_when_nothing_matters():
    spec = sweep_spec()
    trials = [finished(t["parameters"], 1.0) for t in run(spec, 10)]
    assert search.importance(spec, trials) is None


@pytest.mark.parametrize("mode", ["min", "max"])
def test_direction_follows_the_objective_mode(mode):
    spec = sweep_spec(seed=6, mode=mode, max_trials=20)
    sign = 1.0 if mode == "min" else -1.0
    trials: list[dict] = []
    for slot in range(20):
        [params] = search.ask(spec, trials, [slot])
        trials.append(finished(params, sign * loss(params)))
    best = min(trials, key=lambda t: sign * t["best"]["objective"])
    assert abs(math.log10(best["parameters"]["optimizer.learning_rate"]) + 2) < 0.5


def test_apply_sets_dotted_paths_and_names_unknown_ones():
    base = {"model": {"hidden_layers": [8, 8]}, "optimizer": {"learning_rate": 0.1}}
    out = search.apply(base, {"model.hidden_layers.1": 4, "optimizer.learning_rate": 0.01})
    assert out == {"model": {"hidden_layers": [8, 4]}, "optimizer": {"learning_rate": 0.01}}
    assert base["model"]["hidden_layers"] == [8, 8]
    with pytest.raises(search.SpaceError) as error:
        search.apply(base, {"model.depth": 3})
    assert error.value.field == "parameters.model.depth"
