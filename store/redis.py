"""Redis connections, key names and the records' timestamps."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

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


class PipelinedReads:
    """Reads on the event loop (``HGETALL``, ``LRANGE``, ``ZRANK``), those of many concurrent requests sent as
    one pipeline over one connection.

    The DataLoader pattern: a read waits for the pipeline in flight (if any) to
    return, then goes out together with every other read issued meanwhile, so
    under load one round trip and one pass of redis-py's per-call machinery
    serve a whole batch (about 15-20 µs of CPU per read instead of about 70
    for a lone ``await client.hgetall``), and a thousand event streams need one
    connection, not a thousand (redis-py's asyncio pool holds 100). A lone read
    goes out in the next tick of the loop, as a plain command. Every read gets
    the reply to its own command; an error of one command fails that read only,
    a lost connection every read of the batch. Nothing is cached: each read is
    sent to Redis after it was issued.
    """

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self._queued: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def hgetall(self, name: str) -> dict[str, str]:
        """The hash at ``name`` (empty when there is none)."""
        reply: dict[str, str] = await self._call("hgetall", name)
        return reply

    async def lrange(self, name: str, start: int, end: int) -> list[str]:
        reply: list[str] = await self._call("lrange", name, start, end)
        return reply

    async def zrank(self, name: str, member: str) -> int | None:
        reply: int | None = await self._call("zrank", name, member)
        return reply

    async def _call(self, command: str, *args: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((command, args, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send())
        return await future

    async def _send(self) -> None:
        # One pipeline at a time: the reads queued while it is out form the next batch.
        batch: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                replies: list[Any]
                try:
                    replies = await self._read([(command, args) for command, args, _ in batch])
                except (redis.RedisError, OSError) as exc:  # the connection: every read of the batch fails
                    replies = [copy.copy(exc) for _ in batch]  # one each: a raise extends its traceback
                for (_, _, future), reply in zip(batch, replies, strict=True):
                    if future.done():  # its request was cancelled
                        continue
                    if isinstance(reply, BaseException):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
                batch = []
        except BaseException as exc:  # cancelled (shutdown), or a bug: no read may wait forever
            for _, _, future in [*batch, *self._queued]:
                if not future.done():
                    future.set_exception(redis.ConnectionError(f"the read was abandoned: {exc!r}"))
            self._queued = []
            raise
        finally:
            self._sender = None

    async def _read(self, calls: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        if len(calls) == 1:  # a lone read: a plain command costs half of a pipeline of one
            command, args = calls[0]
            return [await getattr(self.client, command)(*args)]
        pipe = self.client.pipeline(transaction=False)
        for command, args in calls:
            getattr(pipe, command)(*args)
        return list(await pipe.execute(raise_on_error=False))

    async def aclose(self) -> None:
        """Close the client once the reads in flight have their replies."""
        if self._sender is not None:
            await asyncio.shield(self._sender)
        await self.client.aclose()


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds: every record's timestamps."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def key(*parts: str) -> str:
    """``trainapi:part:part…`` — every key the service writes starts with the prefix."""
    return ":".join((PREFIX, *parts))


def plausible_id(ident: str, prefix: str) -> bool:
    """``prefix`` followed by 32 hex digits: anything else is no record's id (and never reaches Redis)."""
    return ident.startswith(prefix) and len(ident) == len(prefix) + 32 and ident[len(prefix) :].isalnum()
