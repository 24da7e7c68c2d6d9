"""``GET /metrics``: the series of the whole service, read from Redis at scrape time.

Every number comes from :mod:`store.metrics` (see its docstring for the
layout), so the figures combine every API process and every worker, on any
host, and the counts of state — jobs by status, live workers, the queue —
are what Redis holds now, whatever was restarted. The collector reads it all
in one pipelined round trip: a scrape costs the same with ten jobs or a million.

:class:`RequestMetrics` counts the API's own requests by route *template*
(``/v1/jobs/{job_id}``, never an id) in this process's :class:`store.metrics.Recorder`;
a background task (:func:`serving`) sends the sums to Redis every second, and
a scrape sends its own process's first.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import redis
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.job_status import PREFIX as JOB_STATUS_PREFIX
from store import metrics as stats
from store.queue import QUEUE
from store.redis import connect_async, key
from store.statuses import STATUSES
from store.workers import LIVENESS_SECONDS

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
#: The broker's lists of one queue: Celery's Redis transport keeps a list per priority step.
QUEUE_LISTS = (QUEUE, *(f"{QUEUE}\x06\x16{p}" for p in (3, 6, 9)))
#: ``route`` of a request that matched no route (a 404 for an unknown path), so raw paths never become labels.
UNMATCHED = "unmatched"
JOB_STATUS_ROUTE = JOB_STATUS_PREFIX + "{job_id}"

# name (without the trainapi_ prefix or _total) -> (help, label names)
COUNTERS = {
    "http_requests": (
        "HTTP requests the API answered, every API process combined, by method, route template and status code.",
        ("method", "route", "status"),
    ),
    "webhook_deliveries": (
        "Webhook delivery attempts, every consumer combined, by outcome (delivered, retry, failed).",
        ("outcome",),
    ),
}
HISTOGRAMS = {
    "http_request_duration_seconds": (
        "Seconds the API took to answer a request (to its last body byte), by route template.",
        ("route",),
    ),
    "epoch_seconds": (
        "Seconds each recorded training epoch took on a worker (evaluation included), by model type.",
        ("model",),
    ),
    "job_duration_seconds": (
        "Seconds from a job's first start to its end, for jobs that ended on a worker, by final status.",
        ("status",),
    ),
}


class StatsCollector(Collector):
    """The service's series, built from one pipelined read of Redis per scrape."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def collect(self) -> Iterator[Metric]:
        pipe = self.client.pipeline(transaction=False)
        for name in QUEUE_LISTS:
            pipe.llen(name)
        pipe.zcount(key("workers"), time.time() - LIVENESS_SECONDS, "+inf")
        *queues, alive = pipe.execute()
        hashes = stats.read(self.client, COUNTERS, HISTOGRAMS)

        jobs = GaugeMetricFamily(
            "trainapi_jobs",
            "Jobs in each status now, every tenant and sweep trial included (counted with each status change).",
            labels=["status"],
        )
        counts = hashes[stats.STATUS_COUNTS]
        for status in STATUSES:
            jobs.add_metric([status], float(counts.get(status, 0)))
        yield jobs
        yield GaugeMetricFamily(
            "trainapi_queue_depth",
            "Run-job messages waiting in the broker queue for a free worker.",
            value=float(sum(queues)),
        )
        yield GaugeMetricFamily(
            "trainapi_workers_alive",
            f"Worker processes whose heartbeat is younger than {LIVENESS_SECONDS:g} s (what /readyz counts).",
            value=float(alive),
        )
        finished = CounterMetricFamily(
            "trainapi_jobs_finished",
            "Jobs that reached a terminal status, by status and model type (deleting a job does not lower it).",
            labels=["status", "model"],
        )
        for field, value in sorted(hashes[stats.FINISHED].items()):
            finished.add_metric(field.split(stats.SEPARATOR, 1), float(value))
        yield finished
        for name, (help_text, labels) in COUNTERS.items():
            counter = CounterMetricFamily(f"trainapi_{name}", help_text, labels=list(labels))
            for field, value in sorted(hashes[stats.counter_key(name)].items()):
                counter.add_metric(field.split(stats.SEPARATOR), float(value))
            yield counter
        for name, (help_text, labels) in HISTOGRAMS.items():
            yield _histogram(name, help_text, labels, hashes[stats.histogram_key(name)])


def _histogram(name: str, help_text: str, labels: tuple[str, ...], fields: dict[str, str]) -> Metric:
    family = HistogramMetricFamily(f"trainapi_{name}", help_text, labels=list(labels))
    series: dict[tuple[str, ...], dict[str, float]] = {}
    for field, value in fields.items():
        *label_values, bound = field.split(stats.SEPARATOR)
        series.setdefault(tuple(label_values), {})[bound] = float(value)
    bounds = [stats.le_label(b) for b in stats.BUCKETS[name]] + ["+Inf"]
    for series_labels, buckets in sorted(series.items()):
        cumulative = list(itertools.accumulate(buckets.get(bound, 0.0) for bound in bounds))  # stored per bucket
        family.add_metric(
            list(series_labels), list(zip(bounds, cumulative, strict=True)), sum_value=buckets.get("sum", 0.0)
        )
    return family


def registry(client: redis.Redis) -> CollectorRegistry:
    """A registry of the service's series only (no per-process defaults: they would describe one process)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StatsCollector(client))
    return reg


class RequestMetrics:
    """ASGI middleware: counts every HTTP request by method, route template and status, and times it."""

    def __init__(self, app: ASGIApp, *, recorder: stats.Recorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it starts a response

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = _route(scope)
            self.recorder.inc("http_requests", (scope["method"], route, str(status)))
            self.recorder.observe("http_request_duration_seconds", (route,), time.perf_counter() - started)


def _route(scope: Scope) -> str:
    """The template of the route that answered (``/v1/jobs/{job_id}``), never the raw path."""
    route = scope.get("route")
    path: str = scope["path"]
    if route is not None:
        return _template(route, path)
    endpoint = scope.get("endpoint")
    if endpoint is not None:  # a plain Starlette route of the app itself (/docs, /openapi.json)
        for candidate in scope["app"].routes:
            if getattr(candidate, "endpoint", None) is endpoint:
                return _template(candidate, path)
    if scope["method"] == "GET" and path.startswith(JOB_STATUS_PREFIX) and "/" not in path[len(JOB_STATUS_PREFIX) :]:
        return JOB_STATUS_ROUTE  # answered by api.job_status.JobStatusRoute, in front of the router
    return UNMATCHED


def _template(route: Any, path: str) -> str:
    """``route``'s path template with the prefix it was included under (``/v1`` + ``/jobs/{job_id}``).

    FastAPI puts the route as its router declared it in the scope, without the prefix of
    ``include_router``; the prefix is the part of ``path`` in front of what the route matches.
    """
    template = getattr(route, "path", None)
    regex = getattr(route, "path_regex", None)
    if template is None:
        return UNMATCHED
    if regex is None or regex.match(path):
        return str(template)
    cut = path.find("/", 1)
    while cut != -1:
        if regex.match(path[cut:]):
            return path[:cut] + template
        cut = path.find("/", cut + 1)
    return str(template)


@contextlib.asynccontextmanager
async def serving(metrics: Metrics, redis_url: str) -> AsyncIterator[None]:
    """While the app serves: the job counts set up (once per data set), this process's sums sent every second."""
    try:
        if stats.ensure_counted(metrics.client):
            log.info("counted the existing job records for /metrics")
    except redis.RedisError as exc:  # the next start counts them
        log.warning("could not count the job records for /metrics: %s", exc)
    recorder = metrics.recorder
    client: Any = connect_async(redis_url)

    async def loop() -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await recorder.flush_async(client)
            except redis.RedisError as exc:  # kept in memory; sent with the next flush
                log.warning("could not send request metrics to Redis: %s", exc)

    task = asyncio.create_task(loop(), name="trainapi-metrics-flush")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(redis.RedisError):
            await recorder.flush_async(client)
        await client.aclose()


class Metrics:
    """What the app holds for ``/metrics``: this process's recorder and the registry a scrape renders."""

    def __init__(self, client: redis.Redis, token: str | None) -> None:
        self.recorder = stats.Recorder()
        self.registry = registry(client)
        self.client = client
        self.token = token

    def scrape(self) -> bytes:
        """The exposition text: this process's pending counts sent first, then everything read back."""
        self.recorder.flush(self.client)
        return bytes(generate_latest(self.registry))
