"""Worker liveness: each worker process refreshes a heartbeat; readiness counts the fresh ones."""

from __future__ import annotations

import time

import redis

from store.redis import key

HEARTBEAT_SECONDS = 5.0
#: A worker whose last beat is older than this is presumed dead.
LIVENESS_SECONDS = 15.0


def beat(client: redis.Redis, worker: str) -> None:
    """Record that ``worker`` is alive now."""
    client.zadd(key("workers"), {worker: time.time()})


def retire(client: redis.Redis, worker: str) -> None:
    """Forget a worker that is shutting down."""
    client.zrem(key("workers"), worker)


def live(client: redis.Redis) -> list[str]:
    """Workers that beat within :data:`LIVENESS_SECONDS`."""
    now = time.time()
    client.zremrangebyscore(key("workers"), "-inf", now - 10 * LIVENESS_SECONDS)
    return [str(name) for name in client.zrangebyscore(key("workers"), now - LIVENESS_SECONDS, "+inf")]
