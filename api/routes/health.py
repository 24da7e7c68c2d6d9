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
    description="`storage` is `ok`, or says how little room the data directory has left once it is below "
    "`TRAINAPI_STORAGE_MIN_FREE_BYTES` (uploads then get 507 and jobs fail with `storage_full`; reads still work, "
    "so the API stays ready).",
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
    return JSONResponse({"status": "ready", "redis": "ok", "workers": len(alive), "storage": _storage(state)})


def _storage(state: StateDep) -> str:
    """``ok``, or why the data directory is nearly full (object storage has no such floor)."""
    try:
        free = state.artifacts.storage.free_bytes()
    except OSError as exc:
        return f"unknown: {exc.strerror or exc}"
    floor = state.settings.storage_min_free_bytes
    if free is not None and free < floor:
        return f"low: {free:,} bytes free in the data directory, below the floor of {floor:,}"
    return "ok"
