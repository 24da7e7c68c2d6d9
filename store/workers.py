"""Process liveness: each worker process refreshes a heartbeat; readiness counts the fresh ones.

Webhook delivery consumers beat in their own registry (``registry="webhooks"``).
"""

from __future__ import annotations

import time

import redis

from store.redis import key

HEARTBEAT_SECONDS = 5.0
#: A worker whose last beat is older than this is presumed dead.
LIVENESS_SECONDS = 15.0


def beat(client: redis.Redis, worker: str, registry: str = "workers") -> None:
    """Record that ``worker`` is alive now."""
    client.zadd(key(registry), {worker: time.time()})


def retire(client: redis.Redis, worker: str, registry: str = "workers") -> None:
    """Forget a worker that is shutting down."""
    client.zrem(key(registry), worker)


def live(client: redis.Redis, registry: str = "workers") -> list[str]:
    """Processes of ``registry`` that beat within :data:`LIVENESS_SECONDS`."""
    now = time.time()
    client.zremrangebyscore(key(registry), "-inf", now - 10 * LIVENESS_SECONDS)
    return [str(name) for name in client.zrangebyscore(key(registry), now - LIVENESS_SECONDS, "+inf")]
