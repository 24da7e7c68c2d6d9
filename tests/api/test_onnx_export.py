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
from engine import Dataset, TrainSpec, export, load_builtin, train

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


def _table(task: str, n: int = 240, seed: int = 5) -> Dataset:
    """Numeric, boolean and text columns with gaps (one text column with many levels), and a target for ``task``."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, n)
    member = (rng.random(n) < 0.4).astype(np.float64)
    color = rng.integers(0, 3, n).astype(np.float64)
    city = rng.integers(0, 12, n).astype(np.float64)  # pooled with max_categories 5
    score = 0.05 * (age - 40) + member - np.array([0.8, 0.0, -0.8])[color.astype(int)] + 0.1 * city
    age[rng.random(n) < 0.1] = np.nan
    member[rng.random(n) < 0.1] = np.nan
    color[rng.random(n) < 0.1] = np.nan
    if task == "regression":
        y = score + rng.normal(0, 0.1, n)
    elif task == "binary":
        y = np.where(score > 0, "yes", "no").astype(np.str_)
    else:
        y = np.array(["low", "mid", "high"])[np.digitize(score, [-0.5, 0.5])].astype(np.str_)
    return Dataset(
        "table",
        np.column_stack([age, member, color, city]),
        y,
        ("age", "member", "color", "city"),
        "target",
        None,
        "hand-made",
        ("numeric", "boolean", "categorical", "categorical"),
        (None, None, ("blue", "green", "red"), tuple(f"c{k:02d}" for k in range(12))),
    )


PREPROCESSING = {
    "missing level, indicators": {"impute_categorical": "missing_level", "missing_indicators": True},
    "most frequent, median": {"impute_categorical": "most_frequent", "impute_numeric": "median"},
    "zero fill, pooled": {"impute_numeric": "zero", "impute_categorical": "most_frequent", "max_categories": 5},
}


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("options", list(PREPROCESSING), ids=list(PREPROCESSING))
def test_a_table_model_takes_one_input_per_column_and_answers_like_predict(task, options):
    spec = TrainSpec.from_dict(
        {
            "model": {"type": "mlp", "hidden_layers": [6], "activation": "tanh"},
            "preprocessing": PREPROCESSING[options],
            "training": {"epochs": 3, "batch_size": 32, "seed": 3},
        }
    )
    trained = export.to_model(train(spec, _table(task)))
    model = export.loads(export.dumps(trained, "npz"), "npz")
    proto = onnx.load_from_string(onnx_export.dumps(model))
    onnx.checker.check_model(proto, full_check=True)
    session = _session(proto.SerializeToString())
    assert [(i.name, i.type) for i in session.get_inputs()] == [
        ("age", "tensor(double)"),
        ("member", "tensor(double)"),
        ("color", "tensor(string)"),
        ("city", "tensor(string)"),
    ]
    rows = [
        [41.0, True, "red", "c01"],
        [None, False, "green", "c11"],  # a gap; c11 is pooled under "zero fill, pooled"
        [None, None, None, "c05"],  # gaps everywhere they can be
        [99.0, True, "purple", "nowhere"],  # unseen levels: all zeros
        [12.5, False, "blue", "c00"],
    ]
    feed = {
        "age": np.array([np.nan if r[0] is None else r[0] for r in rows]),
        "member": np.array([np.nan if r[1] is None else float(r[1]) for r in rows]),
        "color": np.array(["" if r[2] is None else r[2] for r in rows], dtype=object),
        "city": np.array([r[3] for r in rows], dtype=object),
    }
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed), strict=True))
    if task == "regression":
        np.testing.assert_allclose(outputs["prediction"], model.predict(rows), rtol=0, atol=1e-9)
    else:
        assert outputs["label"].tolist() == model.predict(rows)
        np.testing.assert_allclose(outputs["probabilities"], model.predict_proba(rows), rtol=0, atol=1e-6)


def test_a_column_named_like_an_output_is_refused():
    data = _table("binary")
    renamed = Dataset(
        "table", data.X, data.y, ("label", *data.feature_names[1:]), "target", None, "", data.column_types, data.levels
    )
    spec = TrainSpec.from_dict({"model": {"type": "logistic"}, "training": {"epochs": 1}})
    model = export.to_model(train(spec, renamed))
    with pytest.raises(onnx_export.NameClash, match="'label'"):
        onnx_export.dumps(model)


def test_a_table_model_without_text_columns_keeps_the_one_input_with_nan_for_a_gap():
    data = _table("binary")  # age (numeric) and member (boolean) have gaps
    names, types = data.feature_names[:2], data.column_types[:2]
    numeric = Dataset("numbers", data.X[:, :2], data.y, names, "target", None, "", types, (None, None))
    preprocessing = {"missing_indicators": True}
    spec = TrainSpec.from_dict({"model": {"type": "mlp", "hidden_layers": [5]}, "preprocessing": preprocessing})
    model = export.loads(export.dumps(export.to_model(train(spec, numeric)), "npz"), "npz")
    assert model.encoder is not None  # gaps: fills and indicators to apply
    session = _session(onnx_export.dumps(model))
    [graph_input] = session.get_inputs()
    assert (graph_input.name, graph_input.type, graph_input.shape) == ("input", "tensor(float)", ["N", 2])
    rows = [[41.0, True], [None, False], [None, None], [12.5, None]]
    X = np.array([[np.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float32)
    label, probabilities = session.run(None, {"input": X})
    assert label.tolist() == model.predict(rows)
    np.testing.assert_allclose(probabilities, model.predict_proba(rows), rtol=0, atol=1e-5)
