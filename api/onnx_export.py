"""ONNX export of a trained model (``GET /v1/jobs/{id}/weights?format=onnx``).

The graph is built with the ``onnx`` package from the same :class:`engine.inference.Model`
that serves ``/predict``, so both compute the same function:

- one input ``input``: float32 of shape [N, n_features], raw features (standardization
  and target scaling are folded into the weights, as in every other format);
- regression: ``prediction``, float64 of shape [N];
- classification (the skl2onnx conventions): ``label`` of shape [N], the class labels as the
  dataset named them (int64 when they are all integers, else strings), and
  ``probabilities``, float32 of shape [N, n_classes] in ``metadata["classes"]`` order.

The network runs in float64 as ``/predict`` does (the input is cast once), so onnxruntime's
outputs equal ``/predict``'s to rounding. The metadata of every weights file is in
``metadata_props``: one entry per top-level key, each value JSON.

A model with a column transformer (``metadata["preprocessing"]``, trained on a table)
keeps the one ``input`` when its columns are numeric and boolean (float32 [N, n_columns], the
dataset's columns, NaN for a gap, booleans as 1.0/0.0). With a text column it takes one input
per column instead, named by the column, each of shape [N]: numeric columns float64 with NaN
for a gap, boolean columns float64 1.0/0.0 (NaN for a gap), categorical columns strings with
"" for a gap. The graph applies the fitted transformer as
``engine.columns.ColumnEncoder`` does (fill, missing indicator, one-hot with the pooled
``<other>`` and the ``<missing>`` level, unseen levels as all zeros) before the network.
Where ``/predict`` refuses a gap the model cannot fill (trained with ``impute_*: none``),
the graph gives NaN (numeric) or all zeros (categorical). Levels are matched as given
(``/predict`` strips surrounding spaces first). The graph's own tensors are named under
``trainapi/`` so no column name can collide with them; a column named like an output
(``label``, ``probabilities``, ``prediction``) cannot be exported (:class:`NameClash`).

This module lives outside ``engine/``, which stays NumPy-only.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engine.inference import Model

#: ONNX operator set the graphs use (Softmax over one axis, Squeeze/Unsqueeze axes as inputs need >= 13).
OPSET = 17
#: The ai.onnx.ml operator set of a table model's graph (LabelEncoder with string keys and int64 values).
ML_OPSET = 2
MEDIA_TYPE = "application/octet-stream"
OUTPUT_NAMES = ("label", "probabilities", "prediction")
_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}


class NameClash(ValueError):
    """A column of a table model is named like one of the graph's outputs."""


def _t(name: str) -> str:
    """The name of one of the graph's own tensors: under ``trainapi/``, apart from any column name."""
    return f"trainapi/{name}"


def to_onnx(model: Model, *, name: str = "trainapi") -> onnx.ModelProto:
    """The ONNX model computing ``model.predict`` / ``model.predict_proba`` from raw features.

    Raises
    ------
    NameClash
        A table model with a column named ``label``, ``probabilities`` or ``prediction``.
    """
    meta = model.metadata
    n_layers = len(meta["layer_sizes"]) - 1
    if model.encoder is None:
        inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", model.n_features])]
        nodes: list[onnx.NodeProto] = [helper.make_node("Cast", ["input"], [_t("x64")], to=TensorProto.DOUBLE)]
        initializers: list[onnx.TensorProto] = []
        doc = "A trainapi model: raw float32 features in; see metadata_props for the model's description."
    else:
        inputs, nodes, initializers = _columns(model.encoder.columns)
        doc = "A trainapi table model: one input per column; see metadata_props for the model's description."
    a = _t("x64")
    for i in range(n_layers):
        weight = np.asarray(model.tensors[f"layers.{i}.weight"], dtype=np.float64)
        bias = np.asarray(model.tensors[f"layers.{i}.bias"], dtype=np.float64)
        initializers += [
            numpy_helper.from_array(weight, f"layers.{i}.weight"),
            numpy_helper.from_array(bias, f"layers.{i}.bias"),
        ]
        z = _t(f"z{i}")
        nodes.append(helper.make_node("Gemm", [a, f"layers.{i}.weight", f"layers.{i}.bias"], [z], transB=1))
        a = z
        if i < n_layers - 1:
            a = _t(f"a{i}")
            nodes.append(helper.make_node(_ACTIVATIONS[meta["activation"]], [z], [a]))
    outputs, more_nodes, more_initializers = _head(model.head, a, meta.get("classes"))
    graph = helper.make_graph(nodes + more_nodes, name, inputs, outputs, initializers + more_initializers)
    opsets = [helper.make_opsetid("", OPSET)]
    if model.encoder is not None:
        opsets.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    onnx_model = helper.make_model(graph, opset_imports=opsets, producer_name="trainapi", doc_string=doc)
    # The oldest IR version that carries this opset, so older runtimes load the file too.
    onnx_model.ir_version = 8
    helper.set_model_props(onnx_model, {key: json.dumps(value) for key, value in meta.items()})
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def dumps(model: Model) -> bytes:
    """The serialized ONNX model of :func:`to_onnx`."""
    return bytes(to_onnx(model).SerializeToString())


def _head(
    head: str, z: str, classes: list[Any] | None
) -> tuple[list[onnx.ValueInfoProto], list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Output nodes from the last layer's logits ``z`` (shape [N, n_outputs]): outputs, nodes, initializers."""
    axis1 = numpy_helper.from_array(np.array([1], dtype=np.int64), _t("axis1"))  # Squeeze's axes
    if head == "identity":
        nodes = [helper.make_node("Squeeze", [z, _t("axis1")], ["prediction"])]
        return [helper.make_tensor_value_info("prediction", TensorProto.DOUBLE, ["N"])], nodes, [axis1]
    assert classes is not None
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        labels, label_type = np.array(classes, dtype=np.int64), TensorProto.INT64
    else:
        labels, label_type = np.array([str(c) for c in classes], dtype=object), TensorProto.STRING
    initializers = [numpy_helper.from_array(labels, _t("classes"))]
    if head == "sigmoid":
        # p1 = (1 + tanh(z / 2)) / 2, as engine.losses.predict_proba computes it; class 1 where z > 0.
        initializers += [
            axis1,
            numpy_helper.from_array(np.array(0.5), _t("half")),
            numpy_helper.from_array(np.array(1.0), _t("one")),
            numpy_helper.from_array(np.array(0.0), _t("zero")),
        ]
        nodes = [
            helper.make_node("Mul", [z, _t("half")], [_t("z_half")]),
            helper.make_node("Tanh", [_t("z_half")], [_t("t")]),
            helper.make_node("Add", [_t("t"), _t("one")], [_t("t1")]),
            helper.make_node("Mul", [_t("t1"), _t("half")], [_t("p1")]),
            helper.make_node("Sub", [_t("one"), _t("p1")], [_t("p0")]),
            helper.make_node("Concat", [_t("p0"), _t("p1")], [_t("p64")], axis=1),
            helper.make_node("Greater", [z, _t("zero")], [_t("positive")]),
            helper.make_node("Cast", [_t("positive")], [_t("index2d")], to=TensorProto.INT64),
            helper.make_node("Squeeze", [_t("index2d"), _t("axis1")], [_t("index")]),
        ]
    elif head == "softmax":
        nodes = [
            helper.make_node("Softmax", [z], [_t("p64")], axis=1),
            helper.make_node("ArgMax", [z], [_t("index")], axis=1, keepdims=0),
        ]
    else:
        raise ValueError(f"unknown output head {head!r}")
    nodes += [
        helper.make_node("Cast", [_t("p64")], ["probabilities"], to=TensorProto.FLOAT),
        helper.make_node("Gather", [_t("classes"), _t("index")], ["label"], axis=0),
    ]
    outputs = [
        helper.make_tensor_value_info("label", label_type, ["N"]),
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", len(classes)]),
    ]
    return outputs, nodes, initializers


def _columns(
    columns: tuple[dict[str, Any], ...],
) -> tuple[list[onnx.ValueInfoProto], list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The inputs and the nodes that encode them into ``trainapi/x64`` ([N, n_outputs], float64).

    The same function as ``engine.columns.ColumnEncoder._encode``, block by block in column order.
    With a text column, one input per column (a string tensor cannot share a matrix with numbers);
    with numeric and boolean columns only, the one float32 ``input`` [N, n_columns] of every other
    model, NaN for a gap.
    """
    matrix = not any(c["type"] == "categorical" for c in columns)
    inputs: list[onnx.ValueInfoProto] = []
    nodes: list[onnx.NodeProto] = []
    initializers = [] if matrix else [numpy_helper.from_array(np.array([1], dtype=np.int64), _t("axis1_in"))]
    if matrix:
        inputs.append(helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", len(columns)]))
        nodes.append(helper.make_node("Cast", ["input"], [_t("in64")], to=TensorProto.DOUBLE))
    blocks: list[str] = []
    for j, c in enumerate(columns):
        name = c["name"]
        if not matrix and name in OUTPUT_NAMES:
            raise NameClash(f"column {name!r} has the name of an output of the ONNX graph")
        col = _t(f"col{j}")
        if c["type"] == "categorical":
            inputs.append(helper.make_tensor_value_info(name, TensorProto.STRING, ["N"]))
            nodes.append(helper.make_node("Unsqueeze", [name, _t("axis1_in")], [f"{col}/text"]))
            block, more_nodes, more_initializers = _categorical(c, f"{col}/text", col)
            nodes += more_nodes
            initializers += more_initializers
            if block is not None:
                blocks.append(block)
            if c["indicator"]:  # 1 for a gap (""), else 0 (string Equal needs opset 19)
                nodes += [
                    helper.make_node(
                        "LabelEncoder",
                        [f"{col}/text"],
                        [f"{col}/missing"],
                        domain="ai.onnx.ml",
                        keys_strings=[""],
                        values_int64s=[1],
                        default_int64=0,
                    ),
                    helper.make_node("Cast", [f"{col}/missing"], [f"{col}/indicator"], to=TensorProto.DOUBLE),
                ]
                blocks.append(f"{col}/indicator")
            continue
        if matrix:  # column j of the input matrix, as [N, 1]
            initializers.append(numpy_helper.from_array(np.array([j], dtype=np.int64), f"{col}/index"))
            nodes.append(helper.make_node("Gather", [_t("in64"), f"{col}/index"], [f"{col}/x"], axis=1))
        else:
            inputs.append(helper.make_tensor_value_info(name, TensorProto.DOUBLE, ["N"]))
            nodes.append(helper.make_node("Unsqueeze", [name, _t("axis1_in")], [f"{col}/x"]))
        nodes.append(helper.make_node("IsNaN", [f"{col}/x"], [f"{col}/missing"]))
        if c["fill"] is None:
            blocks.append(f"{col}/x")  # a gap stays NaN: /predict refuses it
        else:
            initializers.append(numpy_helper.from_array(np.array(float(c["fill"])), f"{col}/fill"))
            nodes.append(helper.make_node("Where", [f"{col}/missing", f"{col}/fill", f"{col}/x"], [f"{col}/filled"]))
            blocks.append(f"{col}/filled")
        if c["indicator"]:
            nodes.append(helper.make_node("Cast", [f"{col}/missing"], [f"{col}/indicator"], to=TensorProto.DOUBLE))
            blocks.append(f"{col}/indicator")
    nodes.append(helper.make_node("Concat", blocks, [_t("x64")], axis=1))
    return inputs, nodes, initializers


def _categorical(
    c: dict[str, Any], text: str, col: str
) -> tuple[str | None, list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The one-hot block of a categorical column from its text ([N, 1]); None when it has no outputs."""
    levels, pooled = list(c["levels"]), list(c["pooled"])
    width = len(levels) + bool(pooled) + bool(c["missing_level"])
    if not width:
        return None, [], []
    position = {level: k for k, level in enumerate(levels)}
    position.update({level: len(levels) for level in pooled})
    if c["fill"] is not None:
        gap = position[c["fill"]]
    elif c["missing_level"]:
        gap = width - 1
    else:
        gap = -1  # /predict refuses the gap; here it encodes as nothing, like an unseen level
    keys, values = list(position), list(position.values())
    if "" not in position:  # "" stands for a gap (a level of its own, should a dataset have one)
        keys.append("")
        values.append(gap)
    nodes = [
        helper.make_node(
            "LabelEncoder",
            [text],
            [f"{col}/position"],
            domain="ai.onnx.ml",
            keys_strings=keys,
            values_int64s=values,
            default_int64=-1,  # an unseen level: all zeros
        ),
        helper.make_node("Equal", [f"{col}/position", f"{col}/range"], [f"{col}/hot"]),
        helper.make_node("Cast", [f"{col}/hot"], [f"{col}/onehot"], to=TensorProto.DOUBLE),
    ]
    initializers = [numpy_helper.from_array(np.arange(width, dtype=np.int64)[None, :], f"{col}/range")]
    return f"{col}/onehot", nodes, initializers
