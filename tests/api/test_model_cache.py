"""The API's model cache is bounded by bytes (least recently used first out), not by count."""

from __future__ import annotations

import numpy as np

from api.state import AppState
from engine.inference import Model
from trainapi.keys import KeyRing
from trainapi.settings import Settings


def _model(hidden: int, dtype: type = np.float64) -> Model:
    tensors = {
        "layers.0.weight": np.zeros((hidden, 4), dtype=dtype),
        "layers.0.bias": np.zeros(hidden, dtype=dtype),
        "layers.1.weight": np.zeros((1, hidden), dtype=dtype),
        "layers.1.bias": np.zeros(1, dtype=dtype),
    }
    return Model(tensors, {"layer_sizes": [4, hidden, 1], "activation": "relu", "output_head": "identity"})


def _state(cache_bytes: int, tmp_path) -> AppState:
    settings = Settings(redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path, model_cache_bytes=cache_bytes)
    return AppState(settings=settings, stores=None, keys=KeyRing(None), producer=None)  # type: ignore[arg-type]


def test_model_bytes_count_float64_copies_of_float32_tensors():
    assert _model(100).nbytes == (100 * 4 + 100 + 100 + 1) * 8
    assert _model(100, np.float32).nbytes == (100 * 4 + 100 + 100 + 1) * (4 + 8)


def test_the_cache_holds_models_up_to_its_bytes_least_recently_used_out(tmp_path):
    one = _model(1000)  # 48 kB
    state = _state(3 * one.nbytes, tmp_path)
    for name in ("a", "b", "c"):
        state.keep_model(name, _model(1000))
    assert state.cached_model("a") is not None  # a is now the most recently used
    state.keep_model("d", _model(1000))
    assert list(state.models) == ["c", "a", "d"] and state.models_bytes == 3 * one.nbytes
    state.keep_model("huge", _model(10_000))  # larger than the whole cache: used, never held
    assert "huge" not in state.models and state.models_bytes == 3 * one.nbytes
    loads = []
    assert state.model("e", lambda: loads.append(1) or _model(1000)) is state.model("e", lambda: _model(1))
    assert loads == [1] and state.models_bytes <= 3 * one.nbytes
