"""Redis connections and key names."""

from __future__ import annotations

import redis
import redis.asyncio

PREFIX = "trainapi"


def connect(url: str) -> redis.Redis:
    """A client that returns ``str`` and fails fast when Redis is down."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2.0,
        socket_timeout=10.0,
        health_check_interval=30,
    )


def connect_async(url: str) -> redis.asyncio.Redis:
    """The asyncio twin of :func:`connect`, for the API's event-loop paths."""
    return redis.asyncio.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=10.0)


def key(*parts: str) -> str:
    """``trainapi:part:part…`` — every key the service writes starts with the prefix."""
    return ":".join((PREFIX, *parts))


def plausible_id(ident: str, prefix: str) -> bool:
    """``prefix`` followed by 32 hex digits: anything else is no record's id (and never reaches Redis)."""
    return ident.startswith(prefix) and len(ident) == len(prefix) + 32 and ident[len(prefix) :].isalnum()
