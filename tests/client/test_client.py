"""``Client`` and ``AsyncClient`` against the real service: a whole session, errors, retries, the SSE resume."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import safetensors.numpy
import trainapi_client
from support import numpy_forward
from trainapi_client import AsyncClient, Client, EpochMetrics, Job

SPEC = {
    "model": {"type": "mlp", "hidden_layers": [16]},
    "optimizer": {"learning_rate": 0.02},
    "training": {"epochs": 8, "batch_size": 32, "test_fraction": 0.2},
}


def _data(n: int = 120, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    return X, ["in" if a * a + b * b < 1.2 else "out" for a, b in X]


def _write_csv(path: Path) -> Path:
    X, y = _data()
    rows = "\n".join(f"{a:.6f},{b:.6f},{label}" for (a, b), label in zip(X, y, strict=True))
    path.write_text(f"x,y,where\n{rows}\n")
    return path


def _check_weights(path: Path, fmt: str, X: np.ndarray, predicted: list) -> None:
    blob = path.read_bytes()
    if fmt == "npz":
        with np.load(path, allow_pickle=False) as npz:
            tensors, meta = {k: npz[k] for k in npz.files if k != "metadata"}, json.loads(str(npz["metadata"]))
    elif fmt == "safetensors":
        header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
        tensors, meta = safetensors.numpy.load(blob), json.loads(header["__metadata__"]["trainapi"])
    else:
        doc = json.loads(blob)
        tensors = {k: np.asarray(t["data"], dtype=t["dtype"]) for k, t in doc["tensors"].items()}
        meta = doc["metadata"]
    assert numpy_forward(tensors, meta)(X)[0] == predicted


def test_a_session_with_the_sync_client(service, tmp_path):
    with Client(service.url) as client:
        dataset = client.datasets.upload(_write_csv(tmp_path / "rings.csv"), name="rings")
        assert (dataset.n_samples, dataset.n_features, dataset.classes) == (120, 2, ["in", "out"])
        assert client.datasets.get(dataset.id) == dataset
        assert dataset.id in {d.id for d in client.datasets.list()}

        job = client.jobs.create(SPEC, dataset=dataset.id, name="rings-client")
        assert isinstance(job, Job) and job.status in ("queued", "running")
        assert job.spec["optimizer"]["beta2"] == 0.999  # the normalized spec
        done = client.jobs.wait(job.id, timeout=120)
        assert done.status == "succeeded" and done.progress.epoch == 8 and done.finished_at is not None
        assert done.test_metrics is not None and done.test_metrics.accuracy is not None

        metrics = client.jobs.metrics(done.id)
        assert [m.epoch for m in metrics] == list(range(1, 9))
        assert all(isinstance(m, EpochMetrics) and m.val_loss is not None for m in metrics)
        assert [m.epoch for m in client.jobs.metrics(done.id, since_epoch=6)] == [7, 8]
        assert [m.epoch for m in client.jobs.stream(done.id)] == list(range(1, 9))  # a finished job replays

        X, _ = _data(10, seed=1)
        prediction = client.jobs.predict(done.id, X)  # anything with tolist()
        assert prediction.classes == ["in", "out"] and len(prediction.probabilities or []) == 10
        for fmt in ("npz", "safetensors", "json"):
            path = client.jobs.download_weights(done.id, tmp_path / f"w.{fmt}", format=fmt)
            _check_weights(path, fmt, X, prediction.predictions)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["rings.csv", "w.json", "w.npz", "w.safetensors"]

        assert done.to_dict()["id"] == done.id and done.to_dict()["created_at"].endswith("Z")
        assert Job.from_dict(json.loads(json.dumps(done.to_dict()))) == done

        listed = list(client.jobs.list(page_size=1))  # one job per page: the iterator follows the cursor
        assert listed[0].created_at >= listed[-1].created_at and done.id in {j.id for j in listed}
        client.jobs.delete(done.id)
        with pytest.raises(trainapi_client.NotFound) as err:
            client.jobs.get(done.id)
        assert err.value.status == 404 and err.value.title == "Not found"


def test_a_session_with_the_async_client(service, tmp_path):
    async def session() -> None:
        async with AsyncClient(service.url) as client:
            X, y = _data()
            dataset = await client.datasets.upload_arrays(X, y, name="rings-arrays")
            assert dataset.n_samples == 120 and dataset.source == "upload"
            job = await client.jobs.create({**SPEC, "dataset": dataset.id})
            streamed = [m.epoch async for m in client.jobs.stream(job.id)]
            done = await client.jobs.wait(job.id, timeout=60)
            assert done.status == "succeeded" and streamed == list(range(1, 9))
            assert [m.epoch for m in await client.jobs.metrics(job.id)] == streamed
            prediction = await client.jobs.predict(job.id, X[:5].tolist())
            for fmt in ("npz", "safetensors", "json"):
                path = await client.jobs.download_weights(job.id, tmp_path / f"a.{fmt}", format=fmt)
                _check_weights(path, fmt, X[:5], prediction.predictions)
            assert job.id in [j.id async for j in client.jobs.list()]
            with pytest.raises(trainapi_client.Conflict):  # a finished job cannot be cancelled
                await client.jobs.cancel(job.id)
            await client.jobs.delete(job.id)
            await client.datasets.delete(dataset.id)

    asyncio.run(session())


def test_a_422_is_raised_at_once_naming_the_field(service):
    sent: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [sent.append]})
    with Client(service.url, http_client=http) as client, pytest.raises(trainapi_client.ValidationError) as err:
        client.jobs.create(dataset="iris", training={"epochs": 0})
    assert err.value.status == 422 and err.value.field == "training.epochs"
    assert len(sent) == 1  # not retried
    assert sent[0].headers["Idempotency-Key"].startswith("trainapi-client-")


def test_a_429_is_retried_after_its_retry_after():
    # Protocol level (httpx.MockTransport), with a fractional Retry-After; test_retries.py meets the
    # service's own quota.
    answers = iter([httpx.Response(429, headers={"Retry-After": "0.4"}, json={"title": "Too many active jobs"})])
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        return next(answers, None) or httpx.Response(202, json=JOB)

    with Client("http://trainapi.test", http_client=httpx.Client(transport=httpx.MockTransport(handler))) as client:
        assert client.jobs.create(dataset="iris").id == JOB["id"]
    assert len(times) == 2 and times[1] - times[0] >= 0.4


JOB = {
    "id": "job_1",
    "name": "j",
    "status": "queued",
    "created_at": "2026-01-01T00:00:00.000Z",
    "attempt": 0,
    "progress": {"epoch": 0, "epochs": 5, "fraction": 0.0},
    "spec": {},
    "dataset": {"id": "iris", "name": "iris", "source": "builtin", "n_samples": 150, "n_features": 4,
                "task": "classification", "target_name": "species"},
}  # fmt: skip


class DroppingProxy:
    """A TCP proxy to the API that breaks the event stream at a chosen epoch.

    It forwards bytes both ways untouched until the server's response carries the SSE event
    ``id: <cut_after>``; it forwards that event to its last byte, then closes every open
    connection at once (mid-response, so the client sees a broken stream, not an end). The cut
    happens once and only there, however fast the job runs: the client has seen epochs
    1..cut_after and nothing after, and must resume with ``Last-Event-ID: <cut_after>``.
    """

    def __init__(self, target_port: int, cut_after: int) -> None:
        self.target_port = target_port
        self.marker = f"id: {cut_after}\nevent: epoch\n".encode()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.cut_done = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.connections += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        pending = b""  # downstream bytes held back while the marked event may still be arriving
        try:
            while data := source.recv(65536):
                if not downstream or self.cut_done.is_set():
                    sink.sendall(data)
                    continue
                pending += data
                at = pending.find(self.marker)
                if at < 0:
                    # Hold back only a tail that could begin the marker, so a marker split across
                    # reads is still found and no other response is ever kept waiting.
                    keep = next((k for k in range(len(self.marker) - 1, 0, -1) if pending.endswith(self.marker[:k])), 0)
                    sink.sendall(pending[: len(pending) - keep])
                    pending = pending[len(pending) - keep :]
                    continue
                end = pending.find(b"\n\n", at)
                if end < 0:
                    continue  # the marked event is not complete yet
                sink.sendall(pending[: end + 2])
                self.cut_done.set()
                self.close_all()
                return
            sink.sendall(pending)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close_all(self) -> None:
        for s in self.connections:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.connections.clear()

    def close(self) -> None:
        self.close_all()
        self.listener.close()


def _event_requests(seen: list[httpx.Request]) -> list[str | None]:
    return [r.headers.get("Last-Event-ID") for r in seen if r.url.path.endswith("/events")]


def test_stream_yields_every_epoch_once_across_a_dropped_connection(service):
    proxy = DroppingProxy(service.api_port, cut_after=3)
    spec = {
        "dataset": "digits",
        "model": {"type": "mlp", "hidden_layers": [64]},
        "training": {"epochs": 25, "batch_size": 16},
    }
    seen: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [seen.append]})
    try:
        with Client(f"http://127.0.0.1:{proxy.port}", http_client=http) as client:
            job = client.jobs.create(spec)
            epochs = [record.epoch for record in client.jobs.stream(job.id)]
    finally:
        proxy.close()
    assert proxy.cut_done.is_set()
    assert epochs == list(range(1, 26))
    assert _event_requests(seen) == [None, "3"]  # one resume, right after the last epoch received


def test_async_stream_resumes_across_a_dropped_connection_too(service):
    proxy = DroppingProxy(service.api_port, cut_after=2)
    spec = {"dataset": "digits", "model": {"type": "mlp", "hidden_layers": [32]}, "training": {"epochs": 15}}
    seen: list[httpx.Request] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request)

    async def follow() -> list[int]:
        http = httpx.AsyncClient(event_hooks={"request": [hook]})
        async with AsyncClient(f"http://127.0.0.1:{proxy.port}", http_client=http) as client:
            job = await client.jobs.create(spec)
            return [record.epoch async for record in client.jobs.stream(job.id)]

    try:
        epochs = asyncio.run(follow())
    finally:
        proxy.close()
    assert proxy.cut_done.is_set()
    assert epochs == list(range(1, 16))
    assert _event_requests(seen) == [None, "2"]
