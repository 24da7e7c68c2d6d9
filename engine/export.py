"""Export trained parameters as npz, safetensors or JSON, and load them back.

Every format uses one naming scheme, PyTorch's ``nn.Linear`` convention:
``layers.{i}.weight`` of shape (out_features, in_features) and
``layers.{i}.bias`` of shape (out_features,). Feature standardization is
folded into the first layer and regression target scaling into the last, so
an exported network takes raw features and returns raw predictions:

    a = x
    for each layer i:  z = a @ weight_i.T + bias_i;  a = activation(z) unless i is the last
    identity head: prediction = z[:, 0]
    sigmoid head:  p1 = 1 / (1 + exp(-z[:, 0])); label = classes[1] if z[:, 0] > 0 else classes[0]
    softmax head:  p = exp(z - max z) / sum; label = classes[argmax z]

The metadata (a JSON object: in the safetensors header under ``"trainapi"``,
the npz member ``metadata``, or the JSON document's ``"metadata"``) records
the model type, layer sizes, activation, head, task, classes, feature names,
the fitted column transformer (``preprocessing``, see :mod:`engine.columns`;
null when the columns are numeric and complete), the folded standardization
and target scaling, the spec and the final metrics.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import safetensors.numpy

from engine.errors import InputError
from engine.inference import Model
from engine.trainer import TrainResult

FORMATS = ("npz", "safetensors", "json")
MEDIA_TYPES = {
    "npz": "application/octet-stream",
    "safetensors": "application/octet-stream",
    "json": "application/json",
}
FORMAT_NAME = "trainapi.weights"
FORMAT_VERSION = 1


def to_model(result: TrainResult) -> Model:
    """The trained network of ``result`` with preprocessing folded in: raw features in, raw outputs out."""
    net, data = result.network, result.data
    weights = [w.astype(np.float64) for w in net.weights]
    biases = [b.astype(np.float64) for b in net.biases]
    if data.x_scaler is not None:
        mean, std = data.x_scaler.mean, data.x_scaler.std
        # W (x - mean) / std + b  ==  (W / std) x + (b - W (mean / std))
        biases[0] = biases[0] - weights[0] @ (mean / std)
        weights[0] = weights[0] / std
    if data.y_scaler is not None:
        y_mean, y_std = float(data.y_scaler.mean[0]), float(data.y_scaler.std[0])
        weights[-1] = weights[-1] * y_std
        biases[-1] = biases[-1] * y_std + y_mean
    dtype = net.dtype
    tensors: dict[str, np.ndarray] = {}
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        tensors[f"layers.{i}.weight"] = np.ascontiguousarray(w, dtype=dtype)
        tensors[f"layers.{i}.bias"] = np.ascontiguousarray(b, dtype=dtype)
    spec = result.spec
    metadata: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model_type": spec.model.type,
        "layer_sizes": list(net.sizes),
        "activation": net.activation if net.n_layers > 1 else None,
        "output_head": net.head,
        "task": data.task,
        "classes": None if data.classes is None else data.classes.tolist(),
        "feature_names": list(data.feature_names),
        "target_name": data.target_name,
        "dtype": dtype.name,
        "standardization": None
        if data.x_scaler is None
        else {"folded": True, "mean": data.x_scaler.mean.tolist(), "std": data.x_scaler.std.tolist()},
        "target_scaling": None
        if data.y_scaler is None
        else {"folded": True, "mean": float(data.y_scaler.mean[0]), "std": float(data.y_scaler.std[0])},
        "preprocessing": None if data.encoder is None else data.encoder.to_dict(),
        "rows_missing_target": data.n_missing_target,
        "spec": spec.to_dict(),
        "metrics": result.final_metrics,
        "best_epoch": result.best_epoch,
        "test_metrics": result.test_metrics,
    }
    return Model(tensors=tensors, metadata=metadata)


def dumps(model: Model, fmt: str) -> bytes:
    """Serialize ``model`` in ``fmt`` (``npz``, ``safetensors`` or ``json``)."""
    meta_json = json.dumps(model.metadata)
    if fmt == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, metadata=np.array(meta_json), **model.tensors)  # type: ignore[arg-type]
        return buffer.getvalue()
    if fmt == "safetensors":
        return bytes(safetensors.numpy.save(model.tensors, metadata={"format": "pt", "trainapi": meta_json}))
    if fmt == "json":
        document = {
            "metadata": model.metadata,
            "tensors": {
                name: {"dtype": str(t.dtype), "shape": list(t.shape), "data": t.tolist()}
                for name, t in model.tensors.items()
            },
        }
        return json.dumps(document).encode()
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def loads(blob: bytes, fmt: str) -> Model:
    """Load a model serialized by :func:`dumps`."""
    try:
        if fmt == "npz":
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                metadata = json.loads(str(npz["metadata"]))
                tensors = {key: npz[key] for key in npz.files if key != "metadata"}
        elif fmt == "safetensors":
            tensors = safetensors.numpy.load(blob)
            header_len = int.from_bytes(blob[:8], "little")
            header = json.loads(blob[8 : 8 + header_len])
            metadata = json.loads(header["__metadata__"]["trainapi"])
        elif fmt == "json":
            document = json.loads(blob)
            metadata = document["metadata"]
            tensors = {
                name: np.asarray(t["data"], dtype=t["dtype"]).reshape(t["shape"])
                for name, t in document["tensors"].items()
            }
        else:
            raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    except (KeyError, ValueError, OSError, TypeError) as exc:
        raise InputError(f"not a trainapi {fmt} weights file: {exc}") from exc
    return Model(tensors=tensors, metadata=metadata)
