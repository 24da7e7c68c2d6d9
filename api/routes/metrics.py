"""Prometheus' scrape endpoint (``GET /metrics``); the series are described in :mod:`api.metrics`."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.errors import ApiError
from api.metrics import Metrics

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def get_metrics(request: Request, authorization: Annotated[str | None, Header()] = None) -> Response:
    """Prometheus text format; with ``TRAINAPI_METRICS_TOKEN`` set, only for ``Authorization: Bearer <token>``."""
    metrics: Metrics = request.app.state.metrics
    if metrics.token is not None:
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.encode(), metrics.token.encode()):
            raise ApiError(
                401,
                "Unauthorized",
                "send the metrics token (TRAINAPI_METRICS_TOKEN) as `Authorization: Bearer <token>`",
                headers={"WWW-Authenticate": 'Bearer realm="trainapi-metrics"'},
            )
    return Response(metrics.scrape(), media_type=CONTENT_TYPE_LATEST)
