"""Datasets as jobs see them: the built-ins and the tenant's uploads, by name or id."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np

import engine
from engine.preprocessing import MAX_AUTO_CLASSES, infer_task
from store.datasets import DatasetStore


def label_summary(y: np.ndarray) -> dict[str, Any]:
    """Task guess and, for classification, the sorted classes of targets ``y`` (shape (n_samples,))."""
    task = infer_task(y)
    classes = None
    if task == "classification":
        values = np.unique(y.astype(np.int64) if y.dtype.kind == "f" else y)
        classes = values.tolist() if len(values) <= MAX_AUTO_CLASSES else None
    return {"task": task, "classes": classes}


@cache
def builtin(name: str) -> dict[str, Any]:
    """Summary of a built-in dataset (loaded once per process)."""
    ds = engine.load_builtin(name, seed=0)
    return {
        "id": name,
        "name": name,
        "source": "builtin",
        "n_samples": ds.n_samples,
        "n_features": ds.n_features,
        **label_summary(ds.y),
        "feature_names": list(ds.feature_names),
        "target_name": ds.target_name,
        "target_numeric": ds.y.dtype.kind in "iuf",
        "description": ds.description,
    }


class Catalog:
    """Resolves a job's ``dataset`` for a tenant."""

    def __init__(self, datasets: DatasetStore) -> None:
        self.datasets = datasets

    def resolve(self, tenant: str, ident: str) -> dict[str, Any]:
        """The dataset's summary; NotFound for unknown names and other tenants' ids."""
        if ident in engine.BUILTIN_DATASETS:
            return builtin(ident)
        return self.datasets.get(tenant, ident)

    def list(self, tenant: str) -> list[dict[str, Any]]:
        return [builtin(name) for name in engine.BUILTIN_DATASETS] + self.datasets.list(tenant)

    def head(self, tenant: str, ident: str, limit: int) -> dict[str, Any]:
        """``columns`` (features, then the target), the first ``limit`` ``rows`` as JSON-ready values, ``n_samples``.

        A missing or non-finite number is ``None``; NotFound as :meth:`resolve`.
        """
        record = self.resolve(tenant, ident)
        if record["source"] == "builtin":
            ds = engine.load_builtin(ident, seed=0)
            X, y = ds.X[:limit], ds.y[:limit]
        else:
            X, y, _ = self.datasets.load_arrays(record["id"])
            X, y = X[:limit], y[:limit]
        columns = [*record["feature_names"], record["target_name"]]
        rows = [[*map(_cell, row), _cell(label)] for row, label in zip(X.tolist(), y.tolist(), strict=True)]
        return {"columns": columns, "rows": rows, "n_samples": record["n_samples"]}


def _cell(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value
