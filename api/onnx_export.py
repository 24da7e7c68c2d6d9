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
MEDIA_TYPE = "application/octet-stream"
_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}


def to_onnx(model: Model, *, name: str = "trainapi") -> onnx.ModelProto:
    """The ONNX model computing ``model.predict`` / ``model.predict_proba`` from raw float32 features."""
    meta = model.metadata
    n_layers = len(meta["layer_sizes"]) - 1
    nodes: list[onnx.NodeProto] = [helper.make_node("Cast", ["input"], ["x64"], to=TensorProto.DOUBLE)]
    initializers: list[onnx.TensorProto] = []
    a = "x64"
    for i in range(n_layers):
        weight = np.asarray(model.tensors[f"layers.{i}.weight"], dtype=np.float64)
        bias = np.asarray(model.tensors[f"layers.{i}.bias"], dtype=np.float64)
        initializers += [
            numpy_helper.from_array(weight, f"layers.{i}.weight"),
            numpy_helper.from_array(bias, f"layers.{i}.bias"),
        ]
        z = f"z{i}"
        nodes.append(helper.make_node("Gemm", [a, f"layers.{i}.weight", f"layers.{i}.bias"], [z], transB=1))
        a = z
        if i < n_layers - 1:
            a = f"a{i}"
            nodes.append(helper.make_node(_ACTIVATIONS[meta["activation"]], [z], [a]))
    outputs, more_nodes, more_initializers = _head(model.head, a, meta.get("classes"))
    graph = helper.make_graph(
        nodes + more_nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", model.n_features])],
        outputs,
        initializers + more_initializers,
    )
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="trainapi",
        doc_string="A trainapi model: raw float32 features in; see metadata_props for the model's description.",
    )
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
    axis1 = numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")  # Squeeze's axes
    if head == "identity":
        nodes = [helper.make_node("Squeeze", [z, "axis1"], ["prediction"])]
        return [helper.make_tensor_value_info("prediction", TensorProto.DOUBLE, ["N"])], nodes, [axis1]
    assert classes is not None
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        labels, label_type = np.array(classes, dtype=np.int64), TensorProto.INT64
    else:
        labels, label_type = np.array([str(c) for c in classes], dtype=object), TensorProto.STRING
    initializers = [numpy_helper.from_array(labels, "classes")]
    if head == "sigmoid":
        # p1 = (1 + tanh(z / 2)) / 2, as engine.losses.predict_proba computes it; class 1 where z > 0.
        initializers += [
            axis1,
            numpy_helper.from_array(np.array(0.5), "half"),
            numpy_helper.from_array(np.array(1.0), "one"),
            numpy_helper.from_array(np.array(0.0), "zero"),
        ]
        nodes = [
            helper.make_node("Mul", [z, "half"], ["z_half"]),
            helper.make_node("Tanh", ["z_half"], ["t"]),
            helper.make_node("Add", ["t", "one"], ["t1"]),
            helper.make_node("Mul", ["t1", "half"], ["p1"]),
            helper.make_node("Sub", ["one", "p1"], ["p0"]),
            helper.make_node("Concat", ["p0", "p1"], ["p64"], axis=1),
            helper.make_node("Greater", [z, "zero"], ["positive"]),
            helper.make_node("Cast", ["positive"], ["index2d"], to=TensorProto.INT64),
            helper.make_node("Squeeze", ["index2d", "axis1"], ["index"]),
        ]
    elif head == "softmax":
        nodes = [
            helper.make_node("Softmax", [z], ["p64"], axis=1),
            helper.make_node("ArgMax", [z], ["index"], axis=1, keepdims=0),
        ]
    else:
        raise ValueError(f"unknown output head {head!r}")
    nodes += [
        helper.make_node("Cast", ["p64"], ["probabilities"], to=TensorProto.FLOAT),
        helper.make_node("Gather", ["classes", "index"], ["label"], axis=0),
    ]
    outputs = [
        helper.make_tensor_value_info("label", label_type, ["N"]),
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", len(classes)]),
    ]
    return outputs, nodes, initializers
