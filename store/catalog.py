"""Datasets as jobs see them: the built-ins and a tenant's uploads, by name or id.

The one place that tells a built-in from an upload. The API resolves a job's
``dataset`` to a summary (admission, listing) and adds uploads; the worker
loads the same name as an :class:`engine.Dataset`.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np

import engine
from engine.columns import summarize, summarize_target
from engine.preprocessing import MAX_AUTO_CLASSES, infer_task, target_present
from store.datasets import DatasetStore
from store.errors import Conflict


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
    """Summary of a built-in dataset (computed once per process: the classes and names need the data)."""
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
        "columns": [
            *summarize(ds.X, ds.types, ds.column_levels(), ds.feature_names),
            summarize_target(ds.target_name, ds.y),
        ],
    }


class Catalog:
    """Resolves, loads, adds and deletes the datasets a tenant's jobs name."""

    def __init__(self, datasets: DatasetStore) -> None:
        self.datasets = datasets

    @staticmethod
    def is_builtin(ident: str) -> bool:
        return ident in engine.BUILTIN_DATASETS

    def resolve(self, tenant: str, ident: str) -> dict[str, Any]:
        """The dataset's summary; NotFound for unknown names and other tenants' ids."""
        if self.is_builtin(ident):
            return builtin(ident)
        return self.datasets.get(tenant, ident)

    def exists(self, tenant: str, ident: str) -> bool:
        """Whether ``ident`` names a dataset of the tenant now (read from Redis for an upload)."""
        return self.is_builtin(ident) or self.datasets.exists(tenant, ident)

    def list(self, tenant: str) -> list[dict[str, Any]]:
        return [builtin(name) for name in engine.BUILTIN_DATASETS] + self.datasets.list(tenant)

    def load(self, tenant: str, ident: str, target: str | None = None) -> engine.Dataset:
        """The data, with ``target`` as the target column when given.

        Raises NotFound (the upload is gone) or DatasetError (no such column, or it cannot be the target).
        """
        # Synthetic built-ins are drawn with seed 0: one fixed dataset, whatever the training seed.
        dataset = engine.load_builtin(ident, seed=0) if self.is_builtin(ident) else self.datasets.load(tenant, ident)
        return dataset.with_target(target) if target else dataset

    def add(
        self, tenant: str, dataset: engine.Dataset, about: dict[str, Any] | None = None, *, quota: int | None = None
    ) -> dict[str, Any]:
        """Store an upload (its ``name`` is the dataset's) and return its record.

        ``about`` adds to the record what the parser found (the ``columns`` summary, ``notes``); the task
        guess and classes come from the rows whose target is present. ``quota``: the most bytes the
        tenant's stored datasets may hold, this one included (TenantStorageQuota above).
        """
        present = dataset.y[target_present(dataset.y)]
        return self.datasets.create(tenant, dataset, {**label_summary(present), **(about or {})}, quota=quota)

    def delete(self, tenant: str, ident: str) -> None:
        """Delete an upload; Conflict for a built-in, or while queued or running jobs or sweeps need it."""
        if self.is_builtin(ident):
            raise Conflict(f"{ident!r} is built in and cannot be deleted")
        self.datasets.delete(tenant, ident)

    def head(self, tenant: str, ident: str, limit: int) -> dict[str, Any]:
        """``columns`` (features, then the target), the first ``limit`` ``rows`` as JSON-ready values, ``n_samples``.

        A missing or non-finite number is ``None``; NotFound as :meth:`resolve`.
        """
        record = self.resolve(tenant, ident)
        ds = self.load(tenant, ident)
        X, y = ds.X[:limit], ds.y[:limit]
        kinds, levels = ds.types, ds.column_levels()
        columns = [*record["feature_names"], record["target_name"]]
        rows = [
            [*(_cell(v, kinds[j], levels[j]) for j, v in enumerate(row)), _cell(label, "numeric", None)]
            for row, label in zip(X.tolist(), y.tolist(), strict=True)
        ]
        return {"columns": columns, "rows": rows, "n_samples": record["n_samples"]}


def _cell(value: Any, kind: str, levels: tuple[str, ...] | None) -> Any:
    """A cell as JSON: a missing one (NaN, an empty label) is None, a level its text, a boolean true/false."""
    if (isinstance(value, float) and not math.isfinite(value)) or value == "":
        return None
    if kind == "categorical" and levels is not None:
        return levels[int(value)]
    if kind == "boolean":
        return bool(value)
    return value
