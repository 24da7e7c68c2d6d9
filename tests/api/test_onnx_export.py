"""ONNX export: onnxruntime's outputs equal what ``/predict`` computes, for every model type, activation and task.

The models are trained with the engine directly (a few epochs, so the test is
fast) and go through the npz file ``/predict`` loads; the service tests
(``tests/service/test_exports.py``) download real ones.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from api import onnx_export
from engine import TrainSpec, export, load_builtin, train

TASKS = {
    # binary and multiclass with string labels, as the datasets name them; regression in target units
    "binary": "breast_cancer",
    "multiclass": "iris",
    "regression": "diabetes",
}
MODELS = [
    ("linear", None, "regression"),
    ("logistic", None, "binary"),
    ("logistic", None, "multiclass"),
    *[("mlp", act, task) for act in ("relu", "tanh", "sigmoid") for task in TASKS],
]


def _model(model_type: str, activation: str | None, task: str, standardize: bool, dataset: str | None = None):
    model: dict = {"type": model_type}
    if model_type == "mlp":
        model.update(hidden_layers=[12, 6], activation=activation)
    spec = TrainSpec.from_dict(
        {
            "model": model,
            "optimizer": {"learning_rate": 0.01},
            "training": {"epochs": 3, "batch_size": 32, "standardize": standardize, "seed": 3},
        }
    )
    data = load_builtin(dataset or TASKS[task])
    served = export.loads(export.dumps(export.to_model(train(spec, data)), "npz"), "npz")  # what /predict loads
    return data, served


def _session(blob: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(blob, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("standardize", [True, False], ids=["standardized", "raw"])
@pytest.mark.parametrize(("model_type", "activation", "task"), MODELS)
def test_onnxruntime_equals_predict(model_type, activation, task, standardize):
    data, model = _model(model_type, activation, task, standardize)
    blob = onnx_export.dumps(model)
    proto = onnx.load_from_string(blob)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    (graph_input,) = proto.graph.input
    assert graph_input.name == "input"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph_input.type.tensor_type.shape.dim[1].dim_value == data.X.shape[1]
    props = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert props["model_type"] == model_type and props["task"] == model.metadata["task"]
    assert props["layer_sizes"] == model.metadata["layer_sizes"] and props["classes"] == model.metadata["classes"]
    assert props["spec"] == model.metadata["spec"]

    X = np.concatenate([data.X[:40], data.X[:5] * 3.0]).astype(np.float32)  # also beyond the training range
    X64 = X.astype(np.float64)  # the same numbers as /predict receives them in JSON
    session = _session(blob)
    values = session.run(None, {"input": X})
    outputs = {out.name: value for out, value in zip(session.get_outputs(), values, strict=True)}
    if task == "regression":
        assert list(outputs) == ["prediction"]
        np.testing.assert_allclose(outputs["prediction"], model.predict(X64), rtol=0, atol=1e-5)
    else:
        assert list(outputs) == ["label", "probabilities"]
        assert outputs["label"].tolist() == model.predict(X64)
        assert outputs["probabilities"].dtype == np.float32
        np.testing.assert_allclose(outputs["probabilities"], model.predict_proba(X64), rtol=0, atol=1e-5)


def test_integer_labels_stay_integers():
    _, model = _model("logistic", None, "multiclass", True, dataset="digits")
    session = _session(onnx_export.dumps(model))
    X = load_builtin("digits").X[:30].astype(np.float32)
    label, _ = session.run(None, {"input": X})
    assert label.dtype == np.int64
    assert label.tolist() == model.predict(X)
