"""A trained model for prediction: exported tensors plus metadata, nothing else.

This is exactly what a download holds, so serving ``/predict`` from a
:class:`Model` and running the NumPy forward pass of docs/weights.md over a downloaded
file compute the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import activations, losses
from engine.columns import ColumnEncoder
from engine.errors import InputError


@dataclass
class Model:
    """Exported network: ``tensors`` named ``layers.{i}.weight`` / ``layers.{i}.bias``.

    Computation runs in float64 whatever dtype the tensors were stored in.
    """

    tensors: dict[str, np.ndarray]
    metadata: dict[str, Any]

    def __post_init__(self) -> None:
        n_layers = len(self.metadata["layer_sizes"]) - 1
        self._layers = [
            (
                np.asarray(self.tensors[f"layers.{i}.weight"], dtype=np.float64),
                np.asarray(self.tensors[f"layers.{i}.bias"], dtype=np.float64),
            )
            for i in range(n_layers)
        ]
        spec = self.metadata.get("preprocessing")
        self.encoder = ColumnEncoder.from_dict(spec) if spec else None

    @property
    def nbytes(self) -> int:
        """Bytes the model holds: its tensors, and the float64 copies of those stored in another dtype."""
        held = {id(t): t.nbytes for t in self.tensors.values()}
        for w, b in self._layers:
            held.setdefault(id(w), w.nbytes)
            held.setdefault(id(b), b.nbytes)
        return sum(held.values())

    @property
    def n_parameters(self) -> int:
        """Weights and biases of every layer."""
        return sum(w.size + b.size for w, b in self._layers)

    @property
    def n_features(self) -> int:
        return int(self.metadata["layer_sizes"][0])

    @property
    def head(self) -> str:
        return str(self.metadata["output_head"])

    def decision_function(self, X: Any) -> np.ndarray:
        """Raw outputs for raw features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or a list of rows
            Rows in the order of ``metadata["feature_names"]``, or objects keyed
            by column name. With a column transformer (``metadata["preprocessing"]``)
            a cell may be text (categorical), true/false (boolean) or None (missing).

        Returns
        -------
        ndarray of shape (n_samples, n_outputs)
        """
        a = self._check(X)
        last = len(self._layers) - 1
        for i, (w, b) in enumerate(self._layers):
            a = a @ w.T + b
            if i < last:
                activations.apply(self.metadata["activation"], a)
        return a

    def predict(self, X: Any) -> list[Any]:
        """Predicted values (regression) or class labels as the dataset named them."""
        z = self.decision_function(X)
        if self.head == "identity":
            return [float(v) for v in z[:, 0]]
        classes = self.metadata["classes"]
        if self.head == "sigmoid":
            return [classes[1] if v > 0 else classes[0] for v in z[:, 0]]
        return [classes[int(i)] for i in z.argmax(axis=1)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``metadata["classes"]`` order."""
        if self.head == "identity":
            raise InputError("a regression model has no class probabilities")
        return losses.predict_proba(self.head, self.decision_function(X))

    def _check(self, X: Any) -> np.ndarray:
        if self.encoder is not None:
            if not isinstance(X, list | tuple):
                X = np.asarray(X, dtype=object).tolist()
            return self.encoder.encode_rows(X)
        if isinstance(X, list | tuple) and any(isinstance(row, dict) for row in X):
            X = self._ordered(X)
        try:
            arr = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"inputs must be a rectangular array of numbers: {exc}") from exc
        if arr.ndim != 2 or arr.shape[1] != self.n_features:
            raise InputError(f"inputs must have shape (n_samples, {self.n_features}); got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            row, col = np.argwhere(~np.isfinite(arr))[0]
            raise InputError(f"inputs contain NaN or Inf (row {row}, column {col})")
        return arr

    def _ordered(self, rows: list[Any] | tuple[Any, ...]) -> list[Any]:
        """Objects keyed by column name as lists in ``feature_names`` order."""
        names = list(self.metadata["feature_names"])
        known = set(names) | {self.metadata.get("target_name")}
        out: list[Any] = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                out.append(row)
                continue
            unknown = sorted(set(row) - known)
            if unknown:
                raise InputError(f"row {i}: unknown column {unknown[0]!r}; the model's columns: {', '.join(names)}")
            absent = [name for name in names if row.get(name) is None]
            if absent:
                raise InputError(
                    f"row {i}: no value for column {absent[0]!r}; this model has no missing-value handling"
                )
            out.append([row[name] for name in names])
        return out
