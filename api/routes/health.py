"""Liveness and readiness."""

from __future__ import annotations

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import StateDep
from api.errors import problem
from store import workers

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The API process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Redis is reachable and at least one worker is alive",
    responses={503: {"description": "Not ready", "content": {"application/problem+json": {}}}},
)
def readyz(state: StateDep) -> JSONResponse:
    try:
        state.redis.ping()
        alive = workers.live(state.redis)
    except redis.RedisError as exc:
        return problem(503, "Not ready", f"Redis is unreachable: {exc}")
    if not alive:
        return problem(503, "Not ready", "no live worker; start one with `trainapi worker`")
    return JSONResponse({"status": "ready", "redis": "ok", "workers": len(alive)})
