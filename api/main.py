"""The ASGI app: ``uvicorn api.main:app`` (or ``trainapi api``)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors, metrics, openapi
from api.job_status import JobStatusRoute
from api.limits import BodyLimit
from api.routes import datasets, health, jobs, sweeps, ui, webhooks
from api.routes import metrics as metrics_route
from api.state import AppState
from api.streams import StreamSlots
from store.redis import PipelinedReads, connect_async
from trainapi import logs
from trainapi.settings import Settings

log = logging.getLogger("trainapi.api")

DESCRIPTION = """
Train regularized models (linear, logistic, MLP; L1, L2, elastic net, dropout) over HTTP.

Submit a job with `POST /v1/jobs`, follow it with `GET /v1/jobs/{id}` or the
Server-Sent Events of `/v1/jobs/{id}/events`, then download the weights or
call `/predict`. Every error is an RFC 9457 `application/problem+json` document.
"""


def create_app(settings: Settings | None = None, *, status_route: bool = True) -> FastAPI:
    """Build the app; ``settings`` default to the ``TRAINAPI_`` environment.

    ``status_route=False`` leaves ``GET /v1/jobs/{id}`` to the FastAPI route alone
    (the tests compare the two).
    """
    settings = settings or Settings()
    logs.configure(settings.log_format)  # uvicorn has set up its loggers by now
    state = AppState.build(settings)
    if state.keys.open_mode:
        log.warning("no API keys configured: open single-tenant mode; bind to 127.0.0.1 only")
    else:
        state.keys.current()  # a missing or broken keys file is logged now, not at the first request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The asyncio Redis client belongs to the serving event loop, so it is made here.
        assert settings.redis_url
        state.jobs.ar = PipelinedReads(connect_async(settings.redis_url))
        # What exists now (modules, the app, its stores) lives as long as the process: freeze it, so that
        # full collections walk only younger objects. Under a polling load the objects of the requests in
        # flight reach the oldest generation and trigger a full collection 1-2 times a second, which
        # otherwise stops the event loop for ~50 ms (the p99 of GET /v1/jobs/{id}, bench/README.md).
        gc.collect()
        gc.freeze()
        try:
            async with metrics.serving(app.state.metrics, settings.redis_url):
                yield
        finally:
            gc.unfreeze()
            await state.jobs.ar.aclose()
            state.jobs.ar = None

    # /docs and /redoc are served by api.routes.ui from vendored assets, so they work offline.
    app = FastAPI(
        title="trainapi HTTP API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,
    )
    app.state.trainapi = state
    app.state.metrics = metrics.Metrics(state.redis, settings.metrics_token)
    app.state.streams = StreamSlots(settings.max_streams, settings.max_streams_per_tenant)
    errors.install(app)
    openapi.install(app, state.keys)
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    for router in (datasets.router, jobs.router, sweeps.router, webhooks.router):
        app.include_router(router, prefix="/v1")
    ui.install(app)
    app.add_middleware(BodyLimit, json_limit=settings.max_body_bytes, upload_limit=settings.max_upload_bytes)
    if status_route:
        app.add_middleware(JobStatusRoute, state=state)
    # Outermost but for the 500 handler: it sees every request, the status route's too.
    app.add_middleware(metrics.RequestMetrics, recorder=app.state.metrics.recorder)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn api.main:app` builds the app on first access, reading the environment then.
    if name == "app":
        globals()["app"] = application = create_app()
        return application
    raise AttributeError(name)
