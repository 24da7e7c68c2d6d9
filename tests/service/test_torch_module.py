"""The PyTorch module of docs/weights.md, run as it stands against ``/predict``.

With PyTorch installed (the ``bench`` extra) the block runs on it. Without it
(CI installs the test extras only) the same block runs on :func:`numpy_torch`,
a NumPy stand-in for the few ``torch`` calls it makes: that checks the module's
logic, the layer names and the strict loading, not PyTorch itself.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from typing import Any

import numpy as np
import pytest
import safetensors
import safetensors.numpy
from support import doc_block

EXAMPLE_ROWS = [[0.1, 0.2], [1.5, -1.0]]  # the block's own predict call, for a two-feature model
MLP = {"type": "mlp", "hidden_layers": [8]}
JOBS = {
    "binary": {"dataset": "moons", "model": {**MLP, "activation": "tanh"}, "training": {"epochs": 4}},
    "multiclass": {"dataset": "iris", "model": {**MLP, "hidden_layers": [8, 4]}, "training": {"epochs": 4}},
    "regression": {"dataset": "diabetes", "model": {**MLP, "activation": "sigmoid"}, "training": {"epochs": 4}},
}
BACKENDS = [
    pytest.param(
        "torch",
        marks=pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed"),
    ),
    "numpy",
]


class _Tensor(np.ndarray):
    """ndarray with the two torch spellings the block uses."""

    def argmax(self, dim: int | None = None, **_: Any) -> Any:  # type: ignore[override]
        return np.asarray(self).argmax(axis=dim).view(_Tensor)


class _Module:
    def __init__(self) -> None:
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "_params", {})

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, _Module):
            self._children[name] = value
        object.__setattr__(self, name, value)

    def __call__(self, *args: Any) -> Any:
        return self.forward(*args)  # type: ignore[attr-defined]

    def named_parameters(self, prefix: str = "") -> Any:
        for name in self._params:
            yield prefix + name, self, name
        for name, child in self._children.items():
            yield from child.named_parameters(f"{prefix}{name}.")

    def double(self) -> _Module:
        for _, owner, name in self.named_parameters():
            owner._params[name] = owner._params[name].astype(np.float64)
        return self

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        params = {full: (owner, name) for full, owner, name in self.named_parameters()}
        missing, unexpected = sorted(params.keys() - state.keys()), sorted(state.keys() - params.keys())
        if strict and (missing or unexpected):
            raise RuntimeError(f"Error(s) in loading state_dict: missing {missing}, unexpected {unexpected}")
        for full, value in state.items():
            owner, name = params[full]
            if owner._params[name].shape != value.shape:
                raise RuntimeError(f"size mismatch for {full}: {value.shape} vs {owner._params[name].shape}")
            owner._params[name] = np.asarray(value, dtype=owner._params[name].dtype)


class _Linear(_Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self._params.update(weight=np.zeros((n_out, n_in), np.float32), bias=np.zeros(n_out, np.float32))

    def forward(self, x: Any) -> Any:
        return (np.asarray(x) @ self._params["weight"].T + self._params["bias"]).view(_Tensor)


class _ModuleList(_Module):
    def __init__(self, modules: Any) -> None:
        super().__init__()
        for i, module in enumerate(modules):
            self._children[str(i)] = module

    def __iter__(self) -> Any:
        return iter(self._children.values())

    def __len__(self) -> int:
        return len(self._children)


def _softmax(z: Any, dim: int) -> Any:
    e = np.exp(z - z.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def _load_file(path: str) -> dict[str, Any]:
    return {name: tensor.view(_Tensor) for name, tensor in safetensors.numpy.load_file(path).items()}


def numpy_torch() -> tuple[types.ModuleType, types.ModuleType]:
    """Stand-ins for ``torch`` and ``safetensors.torch`` covering the calls of the documented block."""
    torch = types.ModuleType("torch")
    torch.nn = types.SimpleNamespace(Module=_Module, ModuleList=_ModuleList, Linear=_Linear)  # type: ignore[attr-defined]
    torch.Tensor = _Tensor  # type: ignore[attr-defined]
    torch.float64 = np.float64  # type: ignore[attr-defined]
    torch.relu = lambda z: np.maximum(z, 0)  # type: ignore[attr-defined]
    torch.tanh = np.tanh  # type: ignore[attr-defined]
    torch.sigmoid = lambda z: 1 / (1 + np.exp(-z))  # type: ignore[attr-defined]
    torch.softmax = _softmax  # type: ignore[attr-defined]
    torch.stack = lambda seq, dim: np.stack(seq, axis=dim).view(_Tensor)  # type: ignore[attr-defined]
    torch.as_tensor = lambda rows, dtype: np.asarray(rows, dtype=dtype).view(_Tensor)  # type: ignore[attr-defined]
    torch.no_grad = lambda: lambda function: function  # type: ignore[attr-defined]
    st_torch = types.ModuleType("safetensors.torch")
    st_torch.load_file = _load_file  # type: ignore[attr-defined]
    return torch, st_torch


@pytest.mark.parametrize("backend", BACKENDS)
def test_documented_pytorch_module_answers_like_predict(backend, api, wait_job, tmp_path, monkeypatch):
    if backend == "numpy":
        torch, st_torch = numpy_torch()
        monkeypatch.setitem(sys.modules, "torch", torch)
        monkeypatch.setitem(sys.modules, "safetensors.torch", st_torch)
        # safe_open(framework="pt") needs the real torch; the block only reads the header through it.
        open_numpy = safetensors.safe_open
        monkeypatch.setattr(safetensors, "safe_open", lambda path, framework: open_numpy(path, framework="numpy"))
    ids = {
        task: api.post("/v1/jobs", json={**spec, "training": {"epochs": 4}}).json()["id"] for task, spec in JOBS.items()
    }
    rng = np.random.default_rng(3)
    for task, job_id in ids.items():
        assert wait_job(api, job_id)["status"] == "succeeded"
        workdir = tmp_path / task
        workdir.mkdir()
        weights = api.get(f"/v1/jobs/{job_id}/weights", params={"format": "safetensors"})
        (workdir / "weights.safetensors").write_bytes(weights.content)
        monkeypatch.chdir(workdir)
        if task == "binary":  # the block as it stands, its last line included
            namespace: dict[str, Any] = {"__name__": "docs_weights"}
            exec(compile(doc_block("docs/weights.md", "## In PyTorch"), "docs/weights.md", "exec"), namespace)
            rows, labels, probabilities = EXAMPLE_ROWS, namespace["labels"], namespace["probabilities"]
            net, cls = namespace["net"], namespace["TrainapiNet"]
            safe_open, load_file = namespace["safe_open"], namespace["load_file"]
        else:
            shape, scale = {"multiclass": ((20, 4), 1.0), "regression": ((20, 10), 0.05)}[task]
            rows = (rng.normal(size=shape) * scale).tolist()
            with safe_open("weights.safetensors", framework="pt") as f:
                metadata = json.loads(f.metadata()["trainapi"])
            net = cls(metadata).double()
            net.load_state_dict(load_file("weights.safetensors"), strict=True)
            labels, probabilities = net.predict(rows)
        expected = api.post(f"/v1/jobs/{job_id}/predict", json={"inputs": rows}).json()
        if task == "regression":
            np.testing.assert_allclose(labels, expected["predictions"], rtol=1e-9, atol=1e-9)
            assert probabilities is None
        else:
            assert labels == expected["predictions"]
            np.testing.assert_allclose(np.asarray(probabilities), expected["probabilities"], rtol=0, atol=1e-9)
        renamed = {k.replace("layers.", "hidden."): v for k, v in load_file("weights.safetensors").items()}
        with pytest.raises(RuntimeError):
            net.load_state_dict(renamed, strict=True)  # strict: the names must match exactly
