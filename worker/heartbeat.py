"""A thread in the worker's main process that refreshes its heartbeat in Redis."""

from __future__ import annotations

import logging
import os
import threading

import redis

from store import workers
from store.redis import connect
from trainapi.settings import Settings

log = logging.getLogger(__name__)
_stop = threading.Event()
_state: dict[str, str] = {}


def start(settings: Settings, hostname: str) -> None:
    """Beat every :data:`store.workers.HEARTBEAT_SECONDS` until :func:`stop`."""
    assert settings.redis_url
    client = connect(settings.redis_url)
    name = f"{hostname}:{os.getpid()}"
    _state["name"], _state["url"] = name, settings.redis_url
    _stop.clear()

    def loop() -> None:
        while not _stop.is_set():
            try:
                workers.beat(client, name)
            except redis.RedisError as exc:  # Redis away: keep trying, readiness will say so
                log.warning("heartbeat failed: %s", exc)
            _stop.wait(workers.HEARTBEAT_SECONDS)

    threading.Thread(target=loop, name="trainapi-heartbeat", daemon=True).start()


def stop() -> None:
    _stop.set()
    if "name" in _state:
        try:
            workers.retire(connect(_state["url"]), _state["name"])
        except redis.RedisError as exc:
            log.warning("could not retire worker heartbeat: %s", exc)
