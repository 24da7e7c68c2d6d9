"""Webhook endpoints, their deliveries, and the schedule of delivery attempts.

Layout (under the ``trainapi:`` prefix):

- ``webhook:{id}`` hash: the endpoint — tenant, url, events (JSON), description,
  the signing secret (and the previous one for a day after a rotation), times.
- ``webhooks:{tenant}`` sorted set: the tenant's endpoints by creation sequence.
- ``webhooks:subscribed`` hash: subscriber counts the outbox scripts read
  (see ``store/outbox.py``); kept in step with every create and delete.
- ``webhook:{id}:delivery:{webhook-id}`` hash: one event for one endpoint —
  type, the body to send (the same bytes on every attempt), status
  (``pending``, ``delivered``, ``failed``), attempts and their log. A finished
  delivery is kept for :data:`DELIVERY_TTL_SECONDS`.
- ``webhook:{id}:deliveries`` sorted set: the endpoint's deliveries by creation time.
- ``webhook:{id}:due`` sorted set: the endpoint's schedule, webhook-id -> when
  its next attempt is due (Unix seconds). A consumer takes a due delivery by
  moving it a lease into the future, so a consumer that dies mid-attempt
  leaves it due again once the lease runs out.
- ``webhooks:due`` sorted set: endpoint id -> the earliest time in its
  schedule, kept in step by every script that changes one. The consumer walks
  it to pick endpoints (and so tenants) with work due, however long one
  endpoint's backlog is; a schedule of the first layout (members
  ``"{endpoint} {webhook-id}"``) is moved over by :meth:`WebhookStore.migrate_schedule`.
"""

from __future__ import annotations

import base64
import builtins
import json
import secrets
import time
import uuid
from typing import Any

import redis

from store.errors import Conflict, NotFound
from store.outbox import Event, Outbox, iso_time
from store.redis import key, now_iso, plausible_id

#: What an endpoint may subscribe to; ``"*"`` is every one of them but ``job.epoch``.
EVENT_TYPES = (
    "job.started",
    "job.succeeded",
    "job.failed",
    "job.cancelled",
    "job.pruned",
    "sweep.succeeded",
    "sweep.failed",
    "sweep.cancelled",
    "job.epoch",
)
ALL = "*"
OPT_IN = ("job.epoch",)
MAX_ENDPOINTS = 20
DELIVERY_TTL_SECONDS = 7 * 24 * 3600
#: A rotated-out secret still signs (beside the new one) this long, so receivers can switch over.
PREVIOUS_SECRET_SECONDS = 24 * 3600
HISTORY_LENGTH = 20
SECRET_PREFIX = "whsec_"

# KEYS: endpoint, tenant index, subscribed. ARGV: tenant, epoch ('1' or '0'), seq, most endpoints, then
# field/value pairs. Returns 0 (and creates nothing) when the tenant has the most already.
_CREATE = """
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], ARGV[3], redis.call('HGET', KEYS[1], 'id'))
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[3], ARGV[1] .. ':job.epoch', 1) end
return 1
"""

# Shared by the scripts that change an endpoint's schedule: the endpoint's place in ``webhooks:due``.
_SCHEDULE_LUA = """
local function reschedule(schedule, due, endpoint)
  local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
  if first[1] then redis.call('ZADD', schedule, first[2], endpoint) else redis.call('ZREM', schedule, endpoint) end
end
-- Drop an endpoint's schedule and the pending deliveries on it (finished ones expire by themselves).
local function forget(schedule, due, endpoint, delivery_prefix)
  for _, id in ipairs(redis.call('ZRANGE', due, 0, -1)) do redis.call('DEL', delivery_prefix .. id) end
  redis.call('DEL', due)
  redis.call('ZREM', schedule, endpoint)
end
"""

# KEYS: endpoint, tenant index, subscribed, deliveries index, endpoint's schedule, webhooks:due.
# ARGV: tenant, endpoint id, delivery key prefix.
_DELETE = (
    _SCHEDULE_LUA
    + """
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return 0 end
local events = cjson.decode(redis.call('HGET', KEYS[1], 'events'))
forget(KEYS[6], KEYS[5], ARGV[2], ARGV[3])
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('HINCRBY', KEYS[3], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[3], ARGV[1]) end
for _, kind in ipairs(events) do
  if kind == 'job.epoch' and redis.call('HINCRBY', KEYS[3], ARGV[1] .. ':job.epoch', -1) <= 0 then
    redis.call('HDEL', KEYS[3], ARGV[1] .. ':job.epoch')
  end
end
return 1
"""
)

# KEYS: delivery, deliveries index, endpoint's schedule, webhooks:due. ARGV: due (now), created_at, webhook id,
# type, body, endpoint, index score, index horizon. Creates the delivery once, however often an event is fanned out.
_ADD_DELIVERY = (
    _SCHEDULE_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'webhook_id', ARGV[3], 'type', ARGV[4], 'body', ARGV[5], 'endpoint', ARGV[6],
  'status', 'pending', 'attempts', 0, 'created_at', ARGV[2], 'next_attempt_at', ARGV[1], 'history', '[]')
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[8])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[3])
reschedule(KEYS[4], KEYS[3], ARGV[6])
return 1
"""
)

# KEYS: endpoint's schedule, webhooks:due. ARGV: now, lease until, how many, endpoint. Takes up to that many
# of the endpoint's due deliveries (moves them to the lease's end); returns their webhook ids.
_TAKE_DUE = (
    _SCHEDULE_LUA
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
reschedule(KEYS[2], KEYS[1], ARGV[4])
return due
"""
)

# KEYS: endpoint's schedule, webhooks:due. ARGV: endpoint, delivery key prefix, webhook id or ''.
# Takes one delivery off the schedule, or (no webhook id: the endpoint is gone) all of them.
_UNSCHEDULE = (
    _SCHEDULE_LUA
    + """
if ARGV[3] == '' then forget(KEYS[2], KEYS[1], ARGV[1], ARGV[2]) return 1 end
redis.call('ZREM', KEYS[1], ARGV[3])
reschedule(KEYS[2], KEYS[1], ARGV[1])
return 1
"""
)

# KEYS: the first layout's schedule (webhooks:due). ARGV: key prefix of endpoints ("trainapi:webhook:").
# Moves members "{endpoint} {webhook-id}" into the endpoints' own schedules; returns how many moved.
_MIGRATE_SCHEDULE = (
    _SCHEDULE_LUA
    + """
local moved, endpoints = 0, {}
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do
  local member = members[i]
  local space = string.find(member, ' ', 1, true)
  if space then
    local endpoint, id = string.sub(member, 1, space - 1), string.sub(member, space + 1)
    redis.call('ZADD', ARGV[1] .. endpoint .. ':due', members[i + 1], id)
    redis.call('ZREM', KEYS[1], member)
    endpoints[endpoint] = true
    moved = moved + 1
  end
end
for endpoint in pairs(endpoints) do reschedule(KEYS[1], ARGV[1] .. endpoint .. ':due', endpoint) end
return moved
"""
)

# KEYS: delivery, endpoint's schedule, webhooks:due. ARGV: webhook id, outcome (delivered | retry | failed),
# now_iso, status code or '', error or '', next due (retry), attempt record JSON, history length, ttl of a
# finished delivery, endpoint.
_RECORD_ATTEMPT = (
    _SCHEDULE_LUA
    + """
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  reschedule(KEYS[3], KEYS[2], ARGV[10])
  return 0
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local history = cjson.decode(redis.call('HGET', KEYS[1], 'history') or '[]')
table.insert(history, cjson.decode(ARGV[7]))
while #history > tonumber(ARGV[8]) do table.remove(history, 1) end
redis.call('HSET', KEYS[1], 'history', cjson.encode(history), 'last_status_code', ARGV[4], 'last_error', ARGV[5],
  'last_attempt_at', ARGV[3])
if ARGV[2] == 'retry' then
  redis.call('HSET', KEYS[1], 'next_attempt_at', ARGV[6])
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
  reschedule(KEYS[3], KEYS[2], ARGV[10])
  return 1
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'next_attempt_at', '')
if ARGV[2] == 'delivered' then redis.call('HSET', KEYS[1], 'delivered_at', ARGV[3]) end
redis.call('ZREM', KEYS[2], ARGV[1])
reschedule(KEYS[3], KEYS[2], ARGV[10])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[9]))
return 1
"""
)


def new_secret() -> str:
    """``whsec_`` and 32 random bytes in base64 (the Standard Webhooks secret format)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def wants(events: builtins.list[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``events`` receives ``event_type``."""
    if event_type in events:
        return True
    return ALL in events and event_type not in OPT_IN


class WebhookStore:
    """Endpoints of every tenant, their deliveries, and the attempt schedule."""

    def __init__(self, client: redis.Redis) -> None:
        # redis-py's return types are unions of every reply shape; replies here are str.
        self.r: Any = client
        self._create = client.register_script(_CREATE)
        self._delete = client.register_script(_DELETE)
        self._add_delivery = client.register_script(_ADD_DELIVERY)
        self._take_due = client.register_script(_TAKE_DUE)
        self._unschedule = client.register_script(_UNSCHEDULE)
        self._migrate_schedule = client.register_script(_MIGRATE_SCHEDULE)
        self._record_attempt = client.register_script(_RECORD_ATTEMPT)
        self.due_key = key("webhooks", "due")

    # -- endpoints (API side) --------------------------------------------------

    def create(self, tenant: str, url: str, events: builtins.list[str], description: str) -> dict[str, Any]:
        """A new endpoint; its record carries the secret (the API shows it once)."""
        endpoint_id = "wh_" + uuid.uuid4().hex
        seconds, micros = self.r.time()  # Redis's clock, the one outbox entry ids use
        record = {
            "id": endpoint_id,
            "tenant": tenant,
            "url": url,
            "events": json.dumps(events),
            "description": description,
            "secret": new_secret(),
            "created_at": now_iso(),
            "created_ms": str(int(seconds) * 1000 + int(micros) // 1000),
        }
        seq = self.r.incr(key("seq"))
        args: builtins.list[Any] = [tenant, "1" if "job.epoch" in events else "0", seq, MAX_ENDPOINTS]
        for name, value in record.items():
            args += [name, value]
        keys = [key("webhook", endpoint_id), key("webhooks", tenant), key("webhooks", "subscribed")]
        if not self._create(keys=keys, args=args):
            raise Conflict(f"at most {MAX_ENDPOINTS} webhook endpoints per tenant; delete one first")
        return self.decode(record)

    def get(self, tenant: str, endpoint_id: str) -> dict[str, Any]:
        """The endpoint, or NotFound (also when another tenant owns it)."""
        raw = self.r.hgetall(key("webhook", endpoint_id)) if plausible_id(endpoint_id, "wh_") else {}
        if not raw or raw.get("tenant") != tenant:
            raise NotFound("webhook", endpoint_id)
        return self.decode(raw)

    def list(self, tenant: str) -> builtins.list[dict[str, Any]]:
        """The tenant's endpoints, oldest first."""
        pipe = self.r.pipeline()
        for endpoint_id in self.r.zrange(key("webhooks", tenant), 0, -1):
            pipe.hgetall(key("webhook", endpoint_id))
        return [self.decode(raw) for raw in pipe.execute() if raw]

    def delete(self, tenant: str, endpoint_id: str) -> None:
        """Remove the endpoint and its deliveries log; its pending deliveries are dropped."""
        self.get(tenant, endpoint_id)
        self._delete(
            keys=[
                key("webhook", endpoint_id),
                key("webhooks", tenant),
                key("webhooks", "subscribed"),
                key("webhook", endpoint_id, "deliveries"),
                key("webhook", endpoint_id, "due"),
                self.due_key,
            ],
            args=[tenant, endpoint_id, key("webhook", endpoint_id, "delivery", "")],
        )

    def rotate_secret(self, tenant: str, endpoint_id: str) -> dict[str, Any]:
        """A new secret; the old one keeps signing beside it for :data:`PREVIOUS_SECRET_SECONDS`."""
        endpoint = self.get(tenant, endpoint_id)
        changes = {
            "secret": new_secret(),
            "previous_secret": endpoint["secret"],
            "previous_until": str(time.time() + PREVIOUS_SECRET_SECONDS),
            "secret_rotated_at": now_iso(),
        }
        self.r.hset(key("webhook", endpoint_id), mapping=changes)
        return {**endpoint, **changes}

    def send_test(self, tenant: str, endpoint_id: str) -> Event:
        """Record a ``webhook.test`` event for the endpoint (its data: the endpoint without secrets)."""
        self.get(tenant, endpoint_id)
        raw = self.r.hgetall(key("webhook", endpoint_id))
        public = {k: v for k, v in raw.items() if "secret" not in k}
        return Outbox(self.r).add_test(tenant, endpoint_id, public)

    def deliveries(
        self, tenant: str, endpoint_id: str, *, limit: int = 50, status: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        """The endpoint's deliveries, newest first (without their bodies)."""
        self.get(tenant, endpoint_id)
        index = key("webhook", endpoint_id, "deliveries")
        out: builtins.list[dict[str, Any]] = []
        gone: builtins.list[str] = []
        start = 0
        while len(out) < limit:
            ids = self.r.zrevrange(index, start, start + 2 * limit - 1)
            if not ids:
                break
            start += len(ids)
            pipe = self.r.pipeline()
            for webhook_id in ids:
                pipe.hgetall(key("webhook", endpoint_id, "delivery", webhook_id))
            for webhook_id, raw in zip(ids, pipe.execute(), strict=True):
                if not raw:
                    gone.append(webhook_id)
                elif status is None or raw.get("status") == status:
                    out.append(_delivery(raw))
                    if len(out) == limit:
                        break
        if gone:
            self.r.zrem(index, *gone)
        return out

    # -- fan-out and attempts (the delivery consumer) --------------------------

    def subscribers(self, event: Event) -> builtins.list[dict[str, Any]]:
        """The endpoints that receive ``event``: the tenant's, subscribed to its type, existing before it."""
        if event.type == "webhook.test":
            raw = self.r.hgetall(key("webhook", event.endpoint))
            return [self.decode(raw)] if raw and raw.get("tenant") == event.tenant else []
        return [
            endpoint
            for endpoint in self.list(event.tenant)
            if wants(endpoint["events"], event.type) and endpoint["created_ms"] <= event.millis
        ]

    def add_delivery(self, endpoint_id: str, event: Event, body: bytes) -> bool:
        """Schedule ``body`` for ``endpoint_id`` now, once per event; False when it already was."""
        now = time.time()
        created = self._add_delivery(
            keys=[
                key("webhook", endpoint_id, "delivery", event.webhook_id),
                key("webhook", endpoint_id, "deliveries"),
                key("webhook", endpoint_id, "due"),
                self.due_key,
            ],
            args=[
                now,
                now_iso(),
                event.webhook_id,
                event.type,
                body,
                endpoint_id,
                event.millis / 1000,
                now - DELIVERY_TTL_SECONDS,
            ],
        )
        return bool(created)

    def due_endpoints(self, *, start: int = 0, count: int = 100) -> builtins.list[tuple[str, str | None]]:
        """Endpoints with a delivery due now, earliest first, as (endpoint id, tenant); None: the endpoint is gone.

        ``start`` and ``count`` page through them (ranks in ``webhooks:due``).
        """
        ids = self.r.zrangebyscore(self.due_key, "-inf", time.time(), start=start, num=count)
        pipe = self.r.pipeline()
        for endpoint_id in ids:
            pipe.hget(key("webhook", endpoint_id), "tenant")
        return list(zip(ids, pipe.execute(), strict=True)) if ids else []

    def take_due(self, endpoint_id: str, count: int, lease_seconds: float) -> builtins.list[str]:
        """Up to ``count`` of the endpoint's deliveries whose attempt is due, as webhook ids; leased to the caller."""
        now = time.time()
        return list(
            self._take_due(
                keys=[key("webhook", endpoint_id, "due"), self.due_key],
                args=[now, now + lease_seconds, count, endpoint_id],
            )
        )

    def forget_schedule(self, endpoint_id: str) -> None:
        """An endpoint that is gone: drop its schedule and its pending deliveries."""
        self._unschedule_one(endpoint_id, "")

    def migrate_schedule(self) -> int:
        """Move a schedule of the first layout (one set of ``"{endpoint} {webhook-id}"``) over; how many moved."""
        return int(self._migrate_schedule(keys=[self.due_key], args=[key("webhook", "")]))

    def next_due(self) -> float | None:
        """When the earliest scheduled attempt is due (Unix seconds), None when nothing is scheduled."""
        first = self.r.zrange(self.due_key, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def attempt_context(self, endpoint_id: str, webhook_id: str) -> tuple[dict[str, Any], dict[str, str]] | None:
        """(endpoint, delivery hash) for an attempt; None (and off the schedule) when either is gone."""
        pipe = self.r.pipeline()
        pipe.hgetall(key("webhook", endpoint_id))
        pipe.hgetall(key("webhook", endpoint_id, "delivery", webhook_id))
        endpoint, delivery = pipe.execute()
        if not endpoint:
            self.forget_schedule(endpoint_id)
            return None
        if not delivery or delivery.get("status") != "pending":
            self._unschedule_one(endpoint_id, webhook_id)
            return None
        return self.decode(endpoint), delivery

    def _unschedule_one(self, endpoint_id: str, webhook_id: str) -> None:
        self._unschedule(
            keys=[key("webhook", endpoint_id, "due"), self.due_key],
            args=[endpoint_id, key("webhook", endpoint_id, "delivery", ""), webhook_id],
        )

    def record_attempt(
        self,
        endpoint_id: str,
        webhook_id: str,
        *,
        outcome: str,
        status_code: int | None,
        error: str | None,
        duration_ms: float,
        next_due: float | None = None,
    ) -> None:
        """Log one attempt; ``outcome`` delivered, retry (at ``next_due``) or failed (no attempts left)."""
        at = now_iso()
        entry = {"at": at, "status_code": status_code, "error": error, "duration_ms": round(duration_ms, 1)}
        self._record_attempt(
            keys=[
                key("webhook", endpoint_id, "delivery", webhook_id),
                key("webhook", endpoint_id, "due"),
                self.due_key,
            ],
            args=[
                webhook_id,
                outcome,
                at,
                "" if status_code is None else str(status_code),
                error or "",
                "" if next_due is None else repr(next_due),
                json.dumps(entry),
                HISTORY_LENGTH,
                DELIVERY_TTL_SECONDS,
                endpoint_id,
            ],
        )

    @staticmethod
    def signing_secrets(endpoint: dict[str, Any], now: float) -> builtins.list[str]:
        """The secrets that sign now: the current one, and the previous one within its grace period."""
        out = [endpoint["secret"]]
        if endpoint.get("previous_secret") and float(endpoint.get("previous_until") or 0) > now:
            out.append(endpoint["previous_secret"])
        return out

    @staticmethod
    def decode(raw: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = dict(raw)
        out["events"] = json.loads(raw.get("events") or "[]")
        out["created_ms"] = int(raw.get("created_ms") or 0)
        return out


def _delivery(raw: dict[str, str]) -> dict[str, Any]:
    """A delivery hash as the API shows it."""
    next_at = raw.get("next_attempt_at")
    return {
        "webhook_id": raw["webhook_id"],
        "type": raw["type"],
        "status": raw["status"],
        "attempts": int(raw.get("attempts") or 0),
        "last_status_code": int(raw["last_status_code"]) if raw.get("last_status_code") else None,
        "last_error": raw.get("last_error") or None,
        "created_at": raw["created_at"],
        "last_attempt_at": raw.get("last_attempt_at") or None,
        "delivered_at": raw.get("delivered_at") or None,
        "next_attempt_at": iso_time(float(next_at)) if next_at and raw["status"] == "pending" else None,
        "history": json.loads(raw.get("history") or "[]"),
    }
