"""The webhook outbox: events recorded in the same Redis step as the change that causes them.

Layout (under the ``trainapi:`` prefix):

- ``outbox`` stream: one entry per event — ``type``, ``tenant``, ``resource``
  (the job, sweep or endpoint id), ``record`` (the resource's hash right
  after the change, as a JSON list of field, value pairs) and, for
  ``webhook.test``, ``endpoint``. The entry id (Redis time in milliseconds,
  then a sequence number) names the event: it becomes the ``webhook-id`` and
  its time the body's ``timestamp``.
- ``webhooks:subscribed`` hash: ``{tenant}`` -> the tenant's endpoints,
  ``{tenant}:job.epoch`` -> those of them that asked for ``job.epoch``. The
  scripts record an event only for a tenant with an endpoint for it, so a
  service without webhooks writes nothing.

The status-change scripts of ``store/jobs.py`` and ``store/sweeps.py``
start with :data:`EMIT_LUA` and call ``outbox_emit`` where the status
changes, with :func:`outbox_keys` appended to their ``KEYS``: a crash can
never separate the event from the change. The delivery consumer
(``api/delivery.py``) reads the stream as the consumer group ``delivery``,
fans each event out into per-endpoint deliveries (``store/webhooks.py``),
then acknowledges and deletes it. An entry read but not acknowledged (the
consumer died) stays pending and is claimed again by a live consumer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from store.redis import key

GROUP = "delivery"

#: Prepended to a script that records events. ``outbox_emit(outbox, subscribed, type, record key)``.
EMIT_LUA = """
-- Webhook outbox (store/outbox.py): record the event with the change, for tenants with a subscriber.
local function outbox_emit(outbox, subscribed, kind, record)
  local tenant = redis.call('HGET', record, 'tenant')
  if not tenant then return end
  local field = tenant
  if kind == 'job.epoch' then field = tenant .. ':job.epoch' end
  if tonumber(redis.call('HGET', subscribed, field) or '0') < 1 then return end
  redis.call('XADD', outbox, '*', 'type', kind, 'tenant', tenant, 'resource', redis.call('HGET', record, 'id'),
    'record', cjson.encode(redis.call('HGETALL', record)))
end
"""


def outbox_keys() -> list[str]:
    """The ``KEYS`` an emitting script takes last: the outbox stream, then the subscription counts."""
    return [key("outbox"), key("webhooks", "subscribed")]


@dataclass(frozen=True)
class Event:
    """One outbox entry."""

    entry: str  # the stream entry id, "<ms>-<seq>"
    type: str
    tenant: str
    resource: str
    record: dict[str, str]  # the resource's hash right after the change
    endpoint: str = ""  # webhook.test: the one endpoint it is for

    @property
    def webhook_id(self) -> str:
        """The ``webhook-id`` header: the same for every endpoint and every retry."""
        return "msg_" + self.entry.replace("-", "_")

    @property
    def timestamp(self) -> str:
        """When the change happened (Redis's clock), RFC 3339 with milliseconds."""
        return iso_time(self.millis / 1000)

    @property
    def millis(self) -> int:
        return int(self.entry.split("-")[0])


class Outbox:
    """Reading the outbox as one consumer of the ``delivery`` group."""

    def __init__(self, client: redis.Redis, consumer: str = "") -> None:
        self.r: Any = client
        self.stream = key("outbox")
        self.consumer = consumer

    def ensure_group(self) -> None:
        """Create the consumer group at the start of the stream (events recorded before it are kept)."""
        try:
            self.r.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, count: int, block_ms: int) -> list[Event]:
        """New events, waiting up to ``block_ms`` for the first one."""
        reply = self.r.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=count, block=block_ms)
        return [_event(entry, fields) for _stream, entries in reply or [] for entry, fields in entries]

    def pending(self, count: int, min_idle_ms: int, *, own: bool = False) -> list[Event]:
        """Events read and never acknowledged: this consumer's own (``own``, e.g. from before a restart
        under the same name), or anyone's idle for ``min_idle_ms``, which this consumer takes over
        (``XAUTOCLAIM``). A consumer that died between reading an event and fanning it out loses nothing.
        """
        if own:
            reply = self.r.xreadgroup(GROUP, self.consumer, {self.stream: "0"}, count=count)
            entries = [item for _stream, items in reply or [] for item in items]
        else:
            reply = self.r.xautoclaim(self.stream, GROUP, self.consumer, min_idle_ms, "0-0", count=count)
            entries = reply[1] if reply else []
        # Entries deleted meanwhile come back as (id, None).
        return [_event(entry, fields) for entry, fields in entries if fields]

    def done(self, event: Event) -> None:
        """The event is fanned out: acknowledge and delete it."""
        pipe = self.r.pipeline()
        pipe.xack(self.stream, GROUP, event.entry)
        pipe.xdel(self.stream, event.entry)
        pipe.execute()

    def add_test(self, tenant: str, endpoint: str, record: dict[str, str]) -> Event:
        """Record a ``webhook.test`` event for one endpoint."""
        fields = {
            "type": "webhook.test",
            "tenant": tenant,
            "resource": endpoint,
            "endpoint": endpoint,
            "record": json.dumps([item for pair in record.items() for item in pair]),
        }
        entry = str(self.r.xadd(self.stream, fields))
        return _event(entry, fields)


def iso_time(seconds: float) -> str:
    """Unix seconds as RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(entry: str, fields: dict[str, str]) -> Event:
    flat = json.loads(fields.get("record") or "[]")
    return Event(
        entry=entry,
        type=fields["type"],
        tenant=fields["tenant"],
        resource=fields.get("resource", ""),
        record=dict(zip(flat[::2], flat[1::2], strict=True)),
        endpoint=fields.get("endpoint", ""),
    )
