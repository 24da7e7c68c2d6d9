"""``/v1/datasets``: upload a CSV or NPZ file, or arrays; get, list, delete."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainapi_client.base_client import Request, url_path
from trainapi_client.models import Dataset
from trainapi_client.resources.resource import AsyncResource, SyncResource


def _rows(values: Any) -> Any:
    """Lists as they are; anything with ``tolist()`` (a NumPy array, a pandas column) converted."""
    return values.tolist() if hasattr(values, "tolist") else values


def _upload_file(
    path: str | Path,
    target: str | None,
    name: str | None,
    delimiter: str | None = None,
    decimal: str | None = None,
    na_values: Sequence[str] | None = None,
) -> Request:
    path = Path(path)
    media = "application/octet-stream" if path.suffix.lower() == ".npz" else "text/csv"
    fields = {"target": target, "name": name, "delimiter": delimiter, "decimal": decimal}
    form = {k: v for k, v in fields.items() if v is not None}
    if na_values is not None:
        form["na_values"] = ",".join(na_values)
    return Request("POST", "/v1/datasets", files={"file": (path.name, path.read_bytes(), media)}, data=form)


def _upload_arrays(X: Any, y: Any, name: str, feature_names: Any, target_name: str | None) -> Request:
    body = {"name": name, "features": _rows(X), "target": _rows(y)}
    if feature_names is not None:
        body["feature_names"] = _rows(feature_names)
    if target_name is not None:
        body["target_name"] = target_name
    return Request("POST", "/v1/datasets", json=body)


def _items(body: dict[str, Any]) -> builtins.list[Dataset]:
    return [Dataset.from_dict(item) for item in body["items"]]


class Datasets(SyncResource):
    def upload(
        self,
        path: str | Path,
        target: str | None = None,
        name: str | None = None,
        *,
        delimiter: str | None = None,
        decimal: str | None = None,
        na_values: Sequence[str] | None = None,
    ) -> Dataset:
        """Upload a CSV (header row; ``target`` column, default the last) or an NPZ file (``X``, ``y``).

        A CSV's ``delimiter`` is detected unless given; ``decimal=","`` reads
        European exports; ``na_values`` replaces the default missing-value
        markers (``NA``, ``N/A``, ``NaN``, ``null``, ``?``; an empty cell is always missing).
        """
        return self._transport.call(_upload_file(path, target, name, delimiter, decimal, na_values), Dataset)

    def upload_arrays(
        self, X: Any, y: Any, *, name: str = "arrays", feature_names: Any = None, target_name: str | None = None
    ) -> Dataset:
        """Upload rows of features and their targets: lists, or anything with ``tolist()``."""
        return self._transport.call(_upload_arrays(X, y, name, feature_names, target_name), Dataset)

    def get(self, dataset_id: str) -> Dataset:
        return self._transport.call(Request("GET", url_path("v1", "datasets", dataset_id)), Dataset)

    def list(self) -> builtins.list[Dataset]:
        """The built-in datasets and this key's uploads."""
        return _items(self._transport.send(Request("GET", "/v1/datasets")).json())

    def delete(self, dataset_id: str) -> None:
        self._transport.send(Request("DELETE", url_path("v1", "datasets", dataset_id)))


class AsyncDatasets(AsyncResource):
    async def upload(
        self,
        path: str | Path,
        target: str | None = None,
        name: str | None = None,
        *,
        delimiter: str | None = None,
        decimal: str | None = None,
        na_values: Sequence[str] | None = None,
    ) -> Dataset:
        return await self._transport.call(_upload_file(path, target, name, delimiter, decimal, na_values), Dataset)

    async def upload_arrays(
        self, X: Any, y: Any, *, name: str = "arrays", feature_names: Any = None, target_name: str | None = None
    ) -> Dataset:
        return await self._transport.call(_upload_arrays(X, y, name, feature_names, target_name), Dataset)

    async def get(self, dataset_id: str) -> Dataset:
        return await self._transport.call(Request("GET", url_path("v1", "datasets", dataset_id)), Dataset)

    async def list(self) -> builtins.list[Dataset]:
        return _items((await self._transport.send(Request("GET", "/v1/datasets"))).json())

    async def delete(self, dataset_id: str) -> None:
        await self._transport.send(Request("DELETE", url_path("v1", "datasets", dataset_id)))
