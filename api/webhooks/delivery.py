"""The delivery consumer: outbox events -> per-endpoint deliveries -> signed POSTs, retried on a schedule.

One loop in the main thread of its own process (``python -m api.webhooks``,
started by ``trainapi serve``, ``LocalService`` and compose):

1. Read new outbox events as a member of the ``delivery`` consumer group
   (blocking up to a second, or until the next retry is due), and take over
   events another consumer read but never acknowledged (it died).
2. Fan each event out: render its body once — ``{"type", "timestamp",
   "data"}`` with ``data`` the resource as its GET endpoint renders it — and
   create one delivery per subscribed endpoint (at most once per event and
   endpoint, however often the event is fanned out); then acknowledge and
   delete the event.
3. Take the deliveries that are due (each leased for :data:`LEASE_DEADLINES`
   attempt deadlines, so a consumer that dies mid-attempt leaves it due
   again) and hand them to ``webhook_concurrency`` threads, fairly (below).
   An attempt checks the URL again (scheme, and the addresses its host
   resolves to now), connects to the address it checked, signs the body
   with the endpoint's secret(s) and a fresh timestamp under the same
   ``webhook-id``, follows no redirect, reads at most 64 KiB of the answer,
   and records the outcome: delivered (2xx), a retry after the next delay of
   the schedule (jittered), or failed once the schedule is used up.

Bounds, so slow receivers cost their own tenant and nobody else:

- Each attempt has a wall-clock deadline, connect to last byte
  (``webhook_attempt_seconds``, see :class:`Deadline`): a receiver that
  drips its answer is cut there, and the attempt is a failed one.
- At most ``webhook_endpoint_concurrency`` attempts go to one endpoint at
  once, and a tenant holds at most half (rounded up) of the slots the other
  tenants leave free (:meth:`Deliverer.room`). A tenant whose receivers all
  hang therefore holds half the slots, and one whose work comes due later
  always finds a free one. Work over those shares stays due and waits; the
  schedule is kept per endpoint (``store/webhooks.py``), so the consumer
  finds other endpoints' due deliveries however long one backlog is.

Nothing is held only in this process: events wait in the outbox stream and
deliveries in Redis until they are done, so a killed consumer or a Redis
restart (AOF) loses none; at-least-once means a receiver may see an event
twice and de-duplicates by ``webhook-id``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pydantic_core
import redis

from api.routes.sweeps import view as sweep_view
from api.schemas.webhooks import endpoint_view
from api.services.jobs import document
from api.webhooks import signing, targets
from store import metrics, workers
from store.jobs import JobStore
from store.outbox import Event, Outbox
from store.stores import Stores
from store.sweeps import SweepStore
from store.webhooks import WebhookStore
from trainapi.settings import Settings

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 64 * 1024
#: A taken delivery is due again after this many attempt deadlines if its attempt never records an
#: outcome (the consumer died).
LEASE_DEADLINES = 3
#: How often to look again while due work waits for a free slot or for its endpoint's or tenant's share.
WAITING_POLL_MS = 100
#: Endpoints with work due read from the schedule at a time.
DUE_PAGE = 100
#: An outbox event read and not acknowledged for this long belongs to a dead consumer: take it over.
ORPHAN_IDLE_MS = 30_000
UPKEEP_SECONDS = 2.0
JITTER = 0.2
USER_AGENT = "trainapi-webhooks/1"


class AttemptCut(Exception):
    """The attempt's deadline passed before the answer had arrived; ``status`` if its status line had."""

    def __init__(self, seconds: float, status: int | None) -> None:
        self.status = status
        where = "before the status line" if status is None else f"while its answer ({status}) was still arriving"
        super().__init__(f"cut at the attempt deadline ({seconds:g} s) {where}")


class Deadline:
    """One attempt's wall-clock limit, connect to last byte: ``seconds`` from now; use it as a context.

    httpx's timeouts bound each network operation, and a receiver that drips
    its answer a byte at a time starts a new one every second. So the
    connection's socket is handed over as it connects (httpcore's ``trace``
    hook calls :meth:`trace`), and at the deadline a timer shuts it down,
    which ends whatever call is blocked on it — a read, a write, a TLS
    handshake — at once. Each operation's own timeout is the time left
    (:meth:`remaining`), and the caller checks :attr:`expired` between reads.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self._cut = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self.cut)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    @property
    def expired(self) -> bool:
        return self._cut or time.monotonic() >= self.end

    def remaining(self) -> float:
        """Seconds left."""
        return max(0.0, self.end - time.monotonic())

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: keep a handle on each socket the attempt connects."""
        if event != "connection.connect_tcp.complete":
            return
        sock = info["return_value"].get_extra_info("socket")
        if sock is None:
            return
        with self._lock:
            handle = sock.dup()  # a descriptor of its own, so never one another connection reuses
            self._sockets.append(handle)
            if self._cut:
                _shut_down(handle)

    def cut(self) -> None:
        """Shut the attempt's sockets down (the timer calls this at the deadline)."""
        with self._lock:
            self._cut = True
            for sock in self._sockets:
                _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the peer may have closed it already
        sock.shutdown(socket.SHUT_RDWR)


class Deliverer:
    """One consumer: fans events out and attempts deliveries on ``settings.webhook_concurrency`` threads."""

    def __init__(self, settings: Settings, stores: Stores, name: str) -> None:
        self.client = stores.redis
        self.name = name
        self.webhooks = stores.webhooks
        self.outbox = Outbox(stores.redis, consumer=name)
        self.sweeps = stores.sweeps
        self.delays = settings.webhook_retry_delays()
        self.allow_private = settings.webhook_allow_private
        self.slots = settings.webhook_concurrency
        self.endpoint_slots = settings.webhook_endpoint_concurrency
        self.attempt_seconds = settings.webhook_attempt_seconds
        self.lease_seconds = LEASE_DEADLINES * settings.webhook_attempt_seconds
        self.pool = ThreadPoolExecutor(self.slots, thread_name_prefix="webhook")
        # No keep-alive: each attempt opens its own connection, so its deadline owns the socket, and a
        # TLS connection is never reused for another host name behind the same address.
        self.http = httpx.Client(
            follow_redirects=False,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
            headers={"user-agent": USER_AGENT},
        )
        self._busy = 0
        self._by_endpoint: Counter[str] = Counter()
        self._by_tenant: Counter[str] = Counter()
        self._waiting = False  # the last dispatch left due work over its shares
        self._lock = threading.Lock()
        self.recorder = metrics.Recorder()  # delivery outcomes for GET /metrics

    # -- the loop ----------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set; attempts in flight then finish (within their deadline)."""
        next_upkeep = 0.0
        ready = False
        try:
            while not stop.is_set():
                try:
                    if not ready:
                        self.outbox.ensure_group()
                        self.webhooks.migrate_schedule()
                        for event in self.outbox.pending(100, min_idle_ms=0, own=True):
                            self._fan_out_logged(event)
                        ready = True
                    if time.monotonic() >= next_upkeep:
                        workers.beat(self.client, self.name, registry="webhooks")
                        for event in self.outbox.pending(100, min_idle_ms=ORPHAN_IDLE_MS):
                            self._fan_out_logged(event)
                        self.recorder.flush(self.client)
                        next_upkeep = time.monotonic() + UPKEEP_SECONDS
                    self.dispatch_due()
                    for event in self.outbox.read(100, self._block_ms()):
                        self._fan_out_logged(event)
                    self.dispatch_due()
                except redis.RedisError as exc:  # Redis away: nothing is lost; try again shortly
                    log.warning("webhook delivery paused: %s", exc)
                    ready = False
                    stop.wait(1.0)
        finally:
            self.pool.shutdown(wait=True)
            self.http.close()
            with contextlib.suppress(redis.RedisError):
                self.recorder.flush(self.client)
            try:
                workers.retire(self.client, self.name, registry="webhooks")
            except redis.RedisError as exc:  # its heartbeat goes stale and is forgotten
                log.warning("could not retire the consumer's heartbeat: %s", exc)

    def _block_ms(self) -> int:
        """How long to wait for new events: until the next attempt is due, at most a second.

        With every thread busy, or due work over its shares, nothing can start until an attempt ends:
        look again in 0.1 s rather than spin.
        """
        with self._lock:
            if self._busy >= self.slots or self._waiting:
                return WAITING_POLL_MS
        due = self.webhooks.next_due()
        if due is None:
            return 1000
        return int(min(1.0, max(0.001, due - time.time())) * 1000)

    # -- fan-out -----------------------------------------------------------------

    def fan_out(self, event: Event) -> None:
        """Create the event's deliveries, then drop it from the outbox."""
        endpoints = self.webhooks.subscribers(event)
        if endpoints:
            body = self.render(event)
            for endpoint in endpoints:
                self.webhooks.add_delivery(endpoint["id"], event, body)
        self.outbox.done(event)

    def _fan_out_logged(self, event: Event) -> None:
        try:
            self.fan_out(event)
        except redis.RedisError:
            raise
        except Exception:  # a bug: the event stays pending (tried again in 30 s), the consumer lives on
            log.exception("outbox event %s (%s) could not be fanned out", event.entry, event.type)

    def render(self, event: Event) -> bytes:
        """The body: ``{"type", "timestamp", "data"}``, ``data`` as the resource's GET returns it.

        Jobs render from the record as it was right after the change (the
        outbox holds it); a sweep's leaderboard reads its trials now, which
        are all finished once the sweep is.
        """
        data: Any
        if event.type.startswith("job."):
            data = document(JobStore.decode(event.record))
        elif event.type.startswith("sweep."):
            sweep = SweepStore.decode(event.record)
            data = sweep_view(sweep, self.sweeps.trial_states(sweep)).model_dump(mode="json")
        else:
            data = endpoint_view(WebhookStore.decode(event.record)).model_dump(mode="json")
        return pydantic_core.to_json(
            {"type": event.type, "timestamp": event.timestamp, "data": data}, inf_nan_mode="null"
        )

    # -- attempts ----------------------------------------------------------------

    def dispatch_due(self) -> None:
        """Hand due deliveries to free threads: endpoints earliest due first, each within :meth:`room`."""
        waiting = False
        start = 0
        while True:
            with self._lock:
                full = self._busy >= self.slots
            if full:
                waiting = True
                break
            page = self.webhooks.due_endpoints(start=start, count=DUE_PAGE)
            for endpoint_id, tenant in page:
                if tenant is None:
                    self.webhooks.forget_schedule(endpoint_id)
                    continue
                room = self.room(endpoint_id, tenant)
                taken = self.webhooks.take_due(endpoint_id, room, self.lease_seconds) if room > 0 else []
                for webhook_id in taken:
                    self._start(endpoint_id, tenant, webhook_id)
                if room <= 0 or len(taken) == room:  # it may have more due: it keeps its place in the schedule
                    waiting = True
                    start += 1
            if len(page) < DUE_PAGE:
                break
        with self._lock:
            self._waiting = waiting

    def room(self, endpoint_id: str, tenant: str) -> int:
        """How many attempts to ``endpoint_id`` may start now.

        Free slots, at most ``webhook_endpoint_concurrency`` in flight to the
        endpoint, and for its tenant at most half (rounded up) of the slots
        the other tenants leave free. With 16 slots, a first tenant may hold
        8, a second 4 more, a third 2: slow receivers make their own tenant
        wait, and a tenant that comes later always finds a slot.
        """
        with self._lock:
            mine = self._by_tenant[tenant]
            share = math.ceil((self.slots - (self._busy - mine)) / 2)
            endpoint_room = self.endpoint_slots - self._by_endpoint[endpoint_id]
            return max(0, min(self.slots - self._busy, endpoint_room, share - mine))

    def _start(self, endpoint_id: str, tenant: str, webhook_id: str) -> None:
        with self._lock:
            self._busy += 1
            self._by_endpoint[endpoint_id] += 1
            self._by_tenant[tenant] += 1
        self.pool.submit(self._attempt_logged, endpoint_id, tenant, webhook_id)

    def _attempt_logged(self, endpoint_id: str, tenant: str, webhook_id: str) -> None:
        try:
            self.attempt(endpoint_id, webhook_id)
        except redis.RedisError as exc:  # the lease runs out and the delivery is due again
            log.warning("delivery %s to %s not recorded: %s", webhook_id, endpoint_id, exc)
        except Exception:  # a bug: log it, keep the consumer alive; the lease makes it due again
            log.exception("delivery %s to %s failed unexpectedly", webhook_id, endpoint_id)
        finally:
            with self._lock:
                self._busy -= 1
                for counts, name in ((self._by_endpoint, endpoint_id), (self._by_tenant, tenant)):
                    counts[name] -= 1
                    if counts[name] <= 0:
                        del counts[name]

    def attempt(self, endpoint_id: str, webhook_id: str) -> None:
        """One attempt at one delivery, and its outcome recorded."""
        context = self.webhooks.attempt_context(endpoint_id, webhook_id)
        if context is None:
            return
        endpoint, delivery = context
        body = delivery["body"].encode()
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        with Deadline(self.attempt_seconds) as deadline:
            try:
                target = targets.check(endpoint["url"], allow_private=self.allow_private)
                now = time.time()
                headers = signing.headers(self.webhooks.signing_secrets(endpoint, now), webhook_id, int(now), body)
                status = self.post(target, headers, body, deadline)
                if not 200 <= status < 300:
                    error = f"the receiver answered {status}"
            except targets.TargetRefused as exc:
                error = f"refused: {exc}"
            except AttemptCut as exc:
                status, error = exc.status, str(exc)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        duration_ms = (time.monotonic() - started) * 1000
        number = int(delivery.get("attempts") or 0) + 1
        if error is None:
            outcome, next_due = "delivered", None
        elif number > len(self.delays):
            outcome, next_due = "failed", None
            log.warning("delivery %s to %s failed after %d attempts: %s", webhook_id, endpoint_id, number, error)
        else:
            delay = self.delays[number - 1] * random.uniform(1 - JITTER, 1 + JITTER)
            outcome, next_due = "retry", time.time() + delay
        self.webhooks.record_attempt(
            endpoint_id,
            webhook_id,
            outcome=outcome,
            status_code=status,
            error=error,
            duration_ms=duration_ms,
            next_due=next_due,
        )
        self.recorder.inc("webhook_deliveries", (outcome,))

    def post(self, target: targets.Target, headers: dict[str, str], body: bytes, deadline: Deadline) -> int:
        """POST ``body`` to the checked address; its status once the answer is in (at most 64 KiB of it read).

        AttemptCut when ``deadline`` passes first; httpx's errors otherwise.
        """
        if deadline.expired:  # resolving the host took all the time
            raise AttemptCut(deadline.seconds, None)
        url = target.url
        headers = {**headers, "content-type": "application/json", "host": url.netloc.decode("ascii")}
        extensions: dict[str, Any] = {"trace": deadline.trace}
        if url.scheme == "https":
            extensions["sni_hostname"] = url.host
        status: int | None = None
        try:
            with self.http.stream(
                "POST",
                target.request_url(),
                content=body,
                headers=headers,
                extensions=extensions,
                timeout=max(0.001, deadline.remaining()),
            ) as response:
                status = response.status_code
                read = 0
                for chunk in response.iter_raw():
                    read += len(chunk)
                    if read >= MAX_RESPONSE_BYTES:
                        break
                    if deadline.expired:
                        raise AttemptCut(deadline.seconds, status)
        except httpx.HTTPError as exc:
            if deadline.expired:
                raise AttemptCut(deadline.seconds, status) from exc
            raise
        if deadline.expired:  # a shut-down socket reads as the end of an answer without a length
            raise AttemptCut(deadline.seconds, status)
        return status
