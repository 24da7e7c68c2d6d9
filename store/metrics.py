"""Operational counters in Redis, so that ``GET /metrics`` combines every API and worker process on every host.

prometheus_client's multiprocess mode shares files between the processes of
one host; the API and the workers run on several. So every number lives in
Redis (keys under ``trainapi:stats:``), and the API's collector reads them at
scrape time:

- ``stats:jobs`` hash, status → jobs in that status now. Kept by the status
  changes themselves: every Lua script of :mod:`store.jobs` that moves a job
  from one status to another runs :data:`STATUS_LUA`'s ``moved`` in the same
  script, and creation and deletion adjust it in the same transaction, so the
  counts are exact and survive restarts of everything but Redis' data.
- ``stats:finished`` hash, ``status|model`` → jobs that reached that terminal
  status (a counter: deleting a job does not lower it). Written by ``moved``.
- ``stats:counter:{name}`` hashes, label values joined by ``|`` → count, and
  ``stats:histogram:{name}`` hashes, ``labels|le`` → the count of that bucket
  alone (a scrape adds them up) plus ``labels|sum``: what processes observe (requests, epochs, job durations,
  webhook deliveries). A :class:`Recorder` adds to them in memory and
  :meth:`Recorder.flush` sends the sums in one pipeline, about once a second,
  so the hot paths never wait for Redis.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import redis

from store.redis import key
from store.statuses import TERMINAL_LUA

STATUS_COUNTS = key("stats", "jobs")
FINISHED = key("stats", "finished")
#: Queued jobs of every tenant, scored in the order they entered the queue: ``queue_position`` is a rank here.
QUEUE_ORDER = key("stats", "queue")
#: The counter that orders them (the one job creation draws its sequence number from).
SEQUENCE = key("seq")
#: The keys every status-changing script takes last, in this order (``KEYS[#KEYS - 3]`` … ``KEYS[#KEYS]``).
STATUS_KEYS = (STATUS_COUNTS, FINISHED, QUEUE_ORDER, SEQUENCE)
#: Set once the counts describe every job record (see :func:`ensure_counted`).
COUNTED_SINCE = key("stats", "counted_since")
SEPARATOR = "|"

# Prepended to every script that changes a job's status; the script passes STATUS_KEYS as its last keys.
STATUS_LUA = (
    TERMINAL_LUA
    + """
local function moved(job, old, new)
  if old == new then return end
  local counts, finished, queue = KEYS[#KEYS - 3], KEYS[#KEYS - 2], KEYS[#KEYS - 1]
  if old then redis.call('HINCRBY', counts, old, -1) end
  redis.call('HINCRBY', counts, new, 1)
  if new == 'queued' then
    redis.call('ZADD', queue, redis.call('INCR', KEYS[#KEYS]), redis.call('HGET', job, 'id'))
  elseif old == 'queued' then
    redis.call('ZREM', queue, redis.call('HGET', job, 'id'))
  end
  if TERMINAL[new] then
    redis.call('HINCRBY', finished, new .. '|' .. (redis.call('HGET', job, 'model') or 'unknown'), 1)
  end
end
"""
)

#: Bucket upper bounds (seconds) of each histogram.
BUCKETS: dict[str, tuple[float, ...]] = {
    "http_request_duration_seconds": (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
    "epoch_seconds": (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0),
    "job_duration_seconds": (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0),
}


def counter_key(name: str) -> str:
    return key("stats", "counter", name)


def histogram_key(name: str) -> str:
    return key("stats", "histogram", name)


def le_label(bound: float) -> str:
    """Prometheus' text for a bucket bound: ``0.25``, ``1.0``, ``+Inf``."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class Recorder:
    """Counts and observations of one process, added up in memory until :meth:`flush` sends them to Redis.

    Thread-safe (the worker's runner and the API's request handlers share one).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: defaultdict[tuple[str, tuple[str, ...]], float] = defaultdict(float)
        # (name, labels) -> the count of each bucket (not cumulative; the last one is above every bound), then the sum
        self._histograms: dict[tuple[str, tuple[str, ...]], list[float]] = {}
        self._unsent: defaultdict[tuple[str, str], float] = defaultdict(float)  # a failed flush's, as Redis fields
        self._last_flush = time.monotonic()

    def inc(self, name: str, labels: tuple[str, ...], by: float = 1.0) -> None:
        """Add ``by`` to counter ``name`` at ``labels`` (label values in the series' label order)."""
        with self._lock:
            self._counters[(name, labels)] += by

    def observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        """Add one observation ``value`` to histogram ``name`` at ``labels``."""
        bounds = BUCKETS[name]
        slot = bisect.bisect_left(bounds, value)  # the first bound >= value: buckets are "less or equal"
        with self._lock:
            counts = self._histograms.get((name, labels))
            if counts is None:
                counts = self._histograms[(name, labels)] = [0.0] * (len(bounds) + 2)
            counts[slot] += 1
            counts[-1] += value

    def take(self) -> dict[tuple[str, str], float]:
        """Everything recorded since the last call as ``{(Redis key, field): amount}``, and forget it.

        A histogram's fields are ``labels|le`` with the count of that bucket alone (the collector adds
        them up), ``labels|+Inf`` for values above every bound, and ``labels|sum``.
        """
        with self._lock:
            counters, self._counters = self._counters, defaultdict(float)
            histograms, self._histograms = self._histograms, {}
            pending, self._unsent = self._unsent, defaultdict(float)
            self._last_flush = time.monotonic()
        for (name, labels), value in counters.items():
            pending[(counter_key(name), SEPARATOR.join(labels))] += value
        for (name, labels), counts in histograms.items():
            hkey, prefix = histogram_key(name), SEPARATOR.join(labels)
            edges = [le_label(bound) for bound in BUCKETS[name]] + ["+Inf", "sum"]
            for edge, count in zip(edges, counts, strict=True):
                if count:
                    pending[(hkey, f"{prefix}{SEPARATOR}{edge}")] += count
        return dict(pending)

    def due(self, interval: float) -> bool:
        return time.monotonic() - self._last_flush >= interval

    def flush(self, client: redis.Redis) -> None:
        """Send what was recorded to Redis in one pipeline; on a Redis error it is added back and sent later."""
        with self._sending(client) as pipe:
            if pipe is not None:
                pipe.execute()

    async def flush_async(self, client: Any) -> None:
        """:meth:`flush` with an asyncio Redis client."""
        with self._sending(client) as pipe:
            if pipe is not None:
                await pipe.execute()

    @contextlib.contextmanager
    def _sending(self, client: Any) -> Iterator[Any]:
        """A pipeline of what was recorded (None when nothing was); put back if sending it fails."""
        pending = self.take()
        if not pending:
            yield None
            return
        pipe = client.pipeline(transaction=False)
        for (hkey, field), value in pending.items():
            if value == int(value):
                pipe.hincrby(hkey, field, int(value))
            else:
                pipe.hincrbyfloat(hkey, field, value)
        try:
            yield pipe
        except redis.RedisError:
            self._restore(pending)
            raise

    def _restore(self, pending: dict[tuple[str, str], float]) -> None:
        with self._lock:
            for item, value in pending.items():
                self._unsent[item] += value


def read(client: redis.Redis, counters: Iterable[str], histograms: Iterable[str]) -> dict[str, dict[str, str]]:
    """Every stats hash in one round trip: ``{redis key: {field: value}}``."""
    names = [STATUS_COUNTS, FINISHED, *map(counter_key, counters), *map(histogram_key, histograms)]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(name)
    return dict(zip(names, pipe.execute(), strict=True))


# Counts every job record once, unless that was done before (a data set from before the counts existed).
# KEYS: counted marker, status counts, finished counts, queue order. ARGV: now. Runs in Redis, so no status
# changes meanwhile.
_COUNT_ALL = (
    TERMINAL_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local cursor = '0'
repeat
  local reply = redis.call('SCAN', cursor, 'MATCH', 'trainapi:job:*', 'COUNT', 1000)
  cursor = reply[1]
  for _, name in ipairs(reply[2]) do
    if not string.find(name, ':metrics', 1, true) then
      local fields = redis.call('HMGET', name, 'status', 'model', 'seq', 'id')
      if fields[1] then
        redis.call('HINCRBY', KEYS[2], fields[1], 1)
        if fields[1] == 'queued' then redis.call('ZADD', KEYS[4], tonumber(fields[3] or '0'), fields[4]) end
        if TERMINAL[fields[1]] then
          redis.call('HINCRBY', KEYS[3], fields[1] .. '|' .. (fields[2] or 'unknown'), 1)
        end
      end
    end
  end
until cursor == '0'
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
)


def ensure_counted(client: redis.Redis) -> bool:
    """Count the job records of a data set written before the counts existed; True if it counted now.

    Once per data set (a marker key says it was done): from then on every status
    change keeps the counts itself. The count is one script, so it sees no status change half-done.
    """
    return bool(client.eval(_COUNT_ALL, 4, COUNTED_SINCE, STATUS_COUNTS, FINISHED, QUEUE_ORDER, str(time.time())))
