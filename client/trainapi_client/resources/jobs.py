"""``/v1/jobs``: create (with an idempotency key), get, list, cancel, delete, metrics, stream, wait,
a path job's path, download the weights, predict (``lambda_index``: another point of a path)."""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
from httpx_sse import EventSource, ServerSentEvent

from trainapi_client.base_client import Request, RetryPolicy, url_path
from trainapi_client.errors import APIConnectionError
from trainapi_client.models import EpochMetrics, Job, Prediction
from trainapi_client.models import Path as RegularizationPath
from trainapi_client.resources.resource import AsyncResource, SyncResource
from trainapi_client.waiting import ProgressBar, async_wait_for, wait_for

WEIGHT_FORMATS = ("npz", "safetensors", "json", "onnx")


def _create(spec: dict[str, Any] | None, fields: dict[str, Any], idempotency_key: str | None) -> Request:
    # One key per call, reused by every retry of it: the service answers a repeat with the first job.
    key = idempotency_key or f"trainapi-client-{uuid.uuid4()}"
    body = {**(spec or {}), **fields}
    return Request("POST", "/v1/jobs", json=body, headers={"Idempotency-Key": key}, idempotent=True)


def _page(status: str | None, page_size: int, cursor: str | None) -> Request:
    return Request("GET", "/v1/jobs", params={"status": status, "limit": page_size, "cursor": cursor})


def _metrics(job_id: str, since_epoch: int) -> Request:
    return Request("GET", url_path("v1", "jobs", job_id, "metrics"), params={"since_epoch": since_epoch or None})


def _records(body: dict[str, Any]) -> builtins.list[EpochMetrics]:
    return [EpochMetrics.from_dict(item) for item in body["items"]]


def _weights(job_id: str, format: str, checkpoint: str | None, lambda_index: int | None = None) -> Request:
    if format not in WEIGHT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(WEIGHT_FORMATS)}, not {format!r}")
    params = {"format": format, "checkpoint": checkpoint, "lambda_index": lambda_index}
    return Request("GET", url_path("v1", "jobs", job_id, "weights"), params=params)


def _predict(job_id: str, inputs: Any, lambda_index: int | None = None) -> Request:
    rows = inputs.tolist() if hasattr(inputs, "tolist") else inputs
    return Request(
        "POST", url_path("v1", "jobs", job_id, "predict"), json={"inputs": rows}, params={"lambda_index": lambda_index}
    )


def _path(job_id: str) -> Request:
    return Request("GET", url_path("v1", "jobs", job_id, "path"))


class EventStream:
    """The state of one ``stream()``: the last epoch received, and the reconnections since the last event.

    A dropped connection reconnects with ``Last-Event-ID`` set to the last epoch, so the
    service resumes after it and every epoch is yielded exactly once.
    """

    def __init__(self, job_id: str, since_epoch: int, policy: RetryPolicy) -> None:
        self.job_id = job_id
        self.last_epoch = since_epoch
        self.policy = policy
        self.failures = 0
        self.ended = False

    def request(self) -> Request:
        headers = {"Accept": "text/event-stream"}
        if self.last_epoch:
            headers["Last-Event-ID"] = str(self.last_epoch)
        return Request("GET", url_path("v1", "jobs", self.job_id, "events"), headers=headers)

    def take(self, event: ServerSentEvent) -> EpochMetrics | None:
        """The epoch record an event carries, if it is a new one."""
        self.failures = 0
        if event.event == "end":
            self.ended = True
            return None
        if event.event != "epoch":
            return None
        record = EpochMetrics.from_dict(json.loads(event.data))
        if record.epoch <= self.last_epoch:
            return None
        self.last_epoch = record.epoch
        return record

    def records(self, events: Iterator[ServerSentEvent]) -> Iterator[EpochMetrics]:
        return (record for event in events if (record := self.take(event)) is not None)

    async def async_records(self, events: AsyncIterator[ServerSentEvent]) -> AsyncIterator[EpochMetrics]:
        async for event in events:
            if (record := self.take(event)) is not None:
                yield record

    def broken(self, exc: Exception | None) -> float:
        """The connection ended before the ``end`` event: seconds to wait before reconnecting (or raise)."""
        if self.failures >= self.policy.max_retries:
            raise APIConnectionError(f"event stream of {self.job_id} broke {self.failures + 1} times: {exc!r}")
        delay = self.policy.delay(self.failures)
        self.failures += 1
        return delay


class Download:
    """Writes a download next to ``path`` and renames it into place once complete."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.part")

    def __enter__(self) -> BinaryIO:
        self.file = self.partial.open("wb")
        return self.file

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.file.close()
        if exc_type is None:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)


class Jobs(SyncResource):
    def create(
        self, spec: dict[str, Any] | None = None, /, *, idempotency_key: str | None = None, **fields: Any
    ) -> Job:
        """Submit a job: ``spec`` (a dict as ``POST /v1/jobs`` takes it) updated with ``fields``.

        Sent with an ``Idempotency-Key`` (generated unless given), so a retry after a lost
        response returns the job the first attempt created instead of a second one.
        """
        return self._transport.call(_create(spec, fields, idempotency_key), Job)

    def get(self, job_id: str) -> Job:
        return self._transport.call(Request("GET", url_path("v1", "jobs", job_id)), Job)

    def list(self, *, status: str | None = None, page_size: int = 100) -> Iterator[Job]:
        """Every job of this key, newest first, fetching pages as the iteration goes."""
        cursor = None
        while True:
            page = self._transport.send(_page(status, page_size, cursor)).json()
            yield from (Job.from_dict(item) for item in page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def cancel(self, job_id: str) -> Job:
        return self._transport.call(Request("POST", url_path("v1", "jobs", job_id, "cancel")), Job)

    def delete(self, job_id: str) -> None:
        """Delete a finished job and its files."""
        self._transport.send(Request("DELETE", url_path("v1", "jobs", job_id)))

    def metrics(self, job_id: str, since_epoch: int = 0) -> builtins.list[EpochMetrics]:
        """One record per epoch, in order (only those after ``since_epoch``)."""
        return _records(self._transport.send(_metrics(job_id, since_epoch)).json())

    def stream(self, job_id: str, since_epoch: int = 0) -> Iterator[EpochMetrics]:
        """Epoch records as they are recorded (Server-Sent Events) until the job ends; each exactly once."""
        state = EventStream(job_id, since_epoch, self._transport.policy)
        while not state.ended:
            error: Exception | None = None
            try:
                with self._transport.open(state.request()) as response:
                    yield from state.records(EventSource(response).iter_sse())
            except httpx.TransportError as exc:
                error = exc
            if not state.ended:
                time.sleep(state.broken(error))

    def wait(
        self, job_id: str, timeout: float | None = None, progress: bool | ProgressBar = False, interval: float = 0.5
    ) -> Job:
        """Poll until the job finishes and return it; ``progress=True`` draws a bar on the terminal.

        Raises ``TimeoutError`` after ``timeout`` seconds. A finished job is returned whatever its
        status (``succeeded``, ``failed``, ``cancelled``): check ``job.status``.
        """
        return wait_for(lambda: self.get(job_id), timeout, progress, interval)

    def path(self, job_id: str) -> RegularizationPath:
        """A succeeded path job's regularization path: per λ the validation curve and the coefficients."""
        return self._transport.call(_path(job_id), RegularizationPath)

    def download_weights(
        self,
        job_id: str,
        path: str | Path,
        format: str = "safetensors",
        checkpoint: str | None = None,
        lambda_index: int | None = None,
    ) -> Path:
        """Stream the trained weights (``npz``, ``safetensors``, ``json`` or ``onnx``) to ``path``; returns it.

        ``checkpoint="best"`` or ``"last"``: a cancelled job's parameters of its best or last epoch.
        ``lambda_index``: a path job's model at that point of its path instead of the selected one.
        """
        request = _weights(job_id, format, checkpoint, lambda_index)
        with self._transport.open(request) as response, Download(path) as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
        return Path(path)

    def predict(self, job_id: str, inputs: Any, *, lambda_index: int | None = None) -> Prediction:
        """Predictions for rows of raw features (lists, or anything with ``tolist()``); ``lambda_index`` as above."""
        return self._transport.call(_predict(job_id, inputs, lambda_index), Prediction)


class AsyncJobs(AsyncResource):
    async def create(
        self, spec: dict[str, Any] | None = None, /, *, idempotency_key: str | None = None, **fields: Any
    ) -> Job:
        return await self._transport.call(_create(spec, fields, idempotency_key), Job)

    async def get(self, job_id: str) -> Job:
        return await self._transport.call(Request("GET", url_path("v1", "jobs", job_id)), Job)

    async def list(self, *, status: str | None = None, page_size: int = 100) -> AsyncIterator[Job]:
        cursor = None
        while True:
            page = (await self._transport.send(_page(status, page_size, cursor))).json()
            for item in page["items"]:
                yield Job.from_dict(item)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def cancel(self, job_id: str) -> Job:
        return await self._transport.call(Request("POST", url_path("v1", "jobs", job_id, "cancel")), Job)

    async def delete(self, job_id: str) -> None:
        await self._transport.send(Request("DELETE", url_path("v1", "jobs", job_id)))

    async def metrics(self, job_id: str, since_epoch: int = 0) -> builtins.list[EpochMetrics]:
        return _records((await self._transport.send(_metrics(job_id, since_epoch))).json())

    async def stream(self, job_id: str, since_epoch: int = 0) -> AsyncIterator[EpochMetrics]:
        state = EventStream(job_id, since_epoch, self._transport.policy)
        while not state.ended:
            error: Exception | None = None
            try:
                async with self._transport.open(state.request()) as response:
                    async for record in state.async_records(EventSource(response).aiter_sse()):
                        yield record
            except httpx.TransportError as exc:
                error = exc
            if not state.ended:
                await asyncio.sleep(state.broken(error))

    async def wait(
        self, job_id: str, timeout: float | None = None, progress: bool | ProgressBar = False, interval: float = 0.5
    ) -> Job:
        return await async_wait_for(lambda: self.get(job_id), timeout, progress, interval)

    async def path(self, job_id: str) -> RegularizationPath:
        return await self._transport.call(_path(job_id), RegularizationPath)

    async def download_weights(
        self,
        job_id: str,
        path: str | Path,
        format: str = "safetensors",
        checkpoint: str | None = None,
        lambda_index: int | None = None,
    ) -> Path:
        async with self._transport.open(_weights(job_id, format, checkpoint, lambda_index)) as response:
            with Download(path) as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
        return Path(path)

    async def predict(self, job_id: str, inputs: Any, *, lambda_index: int | None = None) -> Prediction:
        return await self._transport.call(_predict(job_id, inputs, lambda_index), Prediction)
