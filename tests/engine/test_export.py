"""Exported weights: one naming scheme in three formats, reproducible with NumPy alone."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import safetensors.numpy

from engine import InputError, TrainSpec, export, load_builtin, train

CASES = {
    "mlp_softmax": ("digits", {"model": {"type": "mlp", "hidden_layers": [16, 8], "activation": "tanh"}}),
    "mlp_sigmoid": ("breast_cancer", {"model": {"type": "mlp", "hidden_layers": [8], "activation": "sigmoid"}}),
    "mlp_regression": ("diabetes", {"model": {"type": "mlp", "hidden_layers": [8]}}),
    "logistic_softmax": ("iris", {"model": {"type": "logistic"}}),
    "linear": ("diabetes", {"model": {"type": "linear"}, "regularization": {"l1": 0.05}}),
}


def _train(case: str):
    dataset, raw = CASES[case]
    spec = TrainSpec.from_dict({**raw, "training": {"epochs": 5, "seed": 2}})
    data = load_builtin(dataset)
    return data, train(spec, data)


@pytest.mark.parametrize("case", list(CASES))
def test_every_format_reproduces_predict_with_numpy_alone(case, reference_forward):
    data, result = _train(case)
    model = export.to_model(result)
    X = data.X[:50]
    expected = model.predict(X)
    for fmt in export.FORMATS:
        blob = export.dumps(model, fmt)
        if fmt == "npz":
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                tensors = {k: npz[k] for k in npz.files if k != "metadata"}
                metadata = json.loads(str(npz["metadata"]))
        elif fmt == "safetensors":
            tensors = safetensors.numpy.load(blob)
            header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
            metadata = json.loads(header["__metadata__"]["trainapi"])
        else:
            doc = json.loads(blob)
            metadata = doc["metadata"]
            tensors = {k: np.asarray(t["data"], dtype=t["dtype"]) for k, t in doc["tensors"].items()}
        predictions, proba = reference_forward(tensors, metadata)(X)
        if metadata["task"] == "regression":
            np.testing.assert_allclose(predictions, expected, rtol=1e-6)
        else:
            assert predictions == expected
            np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-6)
        assert export.loads(blob, fmt).predict(X) == expected


@pytest.mark.parametrize("case", list(CASES))
def test_folded_model_equals_the_trained_network_on_standardized_inputs(case):
    data, result = _train(case)
    model = export.to_model(result)
    raw_rows = data.X[:20]
    prepared = result.data
    standardized = (raw_rows - prepared.x_scaler.mean) / prepared.x_scaler.std
    z = result.network.forward(standardized.astype(result.network.dtype)).astype(np.float64)
    if prepared.y_scaler is not None:
        z = z * prepared.y_scaler.std[0] + prepared.y_scaler.mean[0]
    tol = 1e-4 if result.network.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(model.decision_function(raw_rows), z, rtol=tol, atol=tol)


def test_names_shapes_and_metadata_follow_the_pytorch_linear_convention():
    _, result = _train("mlp_softmax")
    model = export.to_model(result)
    shapes = {name: t.shape for name, t in model.tensors.items()}
    assert shapes == {
        "layers.0.weight": (16, 64),
        "layers.0.bias": (16,),
        "layers.1.weight": (8, 16),
        "layers.1.bias": (8,),
        "layers.2.weight": (10, 8),
        "layers.2.bias": (10,),
    }
    meta = model.metadata
    assert meta["layer_sizes"] == [64, 16, 8, 10]
    assert meta["output_head"] == "softmax" and meta["activation"] == "tanh"
    assert meta["classes"] == list(range(10))
    assert meta["standardization"]["folded"] is True and len(meta["standardization"]["mean"]) == 64
    assert meta["spec"]["model"]["hidden_layers"] == [16, 8]
    assert meta["metrics"]["epoch"] == 5
    json.dumps(meta)  # JSON-able throughout


def test_safetensors_loads_into_an_equivalent_pytorch_module():
    torch = pytest.importorskip("torch")
    from safetensors.torch import load as load_torch

    data, result = _train("mlp_softmax")
    model = export.to_model(result)
    blob = export.dumps(model, "safetensors")
    module = torch.nn.Sequential()
    module.add_module(
        "layers", torch.nn.ModuleList([torch.nn.Linear(64, 16), torch.nn.Linear(16, 8), torch.nn.Linear(8, 10)])
    )
    module.load_state_dict(load_torch(blob))
    x = torch.tensor(data.X[:10], dtype=torch.float32)
    a = x
    for i, layer in enumerate(module.layers):
        a = layer(a)
        if i < 2:
            a = torch.tanh(a)
    np.testing.assert_allclose(a.detach().numpy(), model.decision_function(data.X[:10]), rtol=1e-4, atol=1e-4)


def test_bad_inputs_are_rejected_clearly():
    _, result = _train("logistic_softmax")
    model = export.to_model(result)
    with pytest.raises(InputError, match=r"shape \(n_samples, 4\)"):
        model.predict([[1.0, 2.0]])
    with pytest.raises(InputError, match="row 1, column 2"):
        model.predict([[1, 2, 3, 4], [1, 2, float("nan"), 4]])
    with pytest.raises(InputError):
        model.predict([["a", "b", "c", "d"]])
    with pytest.raises(InputError):
        export.loads(b"garbage", "npz")
    regression = export.to_model(_train("linear")[1])
    with pytest.raises(InputError, match="no class probabilities"):
        regression.predict_proba([[0.0] * 10])
