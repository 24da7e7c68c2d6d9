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
3. Take the deliveries that are due (each leased for :data:`LEASE_SECONDS`,
   so a consumer that dies mid-attempt leaves it due again) and hand them to
   a thread pool. An attempt checks the URL again (scheme, and the addresses
   its host resolves to now), connects to the address it checked, signs the
   body with the endpoint's secret(s) and a fresh timestamp under the same
   ``webhook-id``, follows no redirect, reads at most 64 KiB of the answer,
   and records the outcome: delivered (2xx), a retry after the next delay of
   the schedule (jittered), or failed once the schedule is used up.

Nothing is held only in this process: events wait in the outbox stream and
deliveries in Redis until they are done, so a killed consumer or a Redis
restart (AOF) loses none; at-least-once means a receiver may see an event
twice and de-duplicates by ``webhook-id``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
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

ATTEMPT_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
#: A taken delivery is due again after this if its attempt never records an outcome (the consumer died).
LEASE_SECONDS = 3 * ATTEMPT_TIMEOUT_SECONDS
#: An outbox event read and not acknowledged for this long belongs to a dead consumer: take it over.
ORPHAN_IDLE_MS = 30_000
UPKEEP_SECONDS = 2.0
JITTER = 0.2
USER_AGENT = "trainapi-webhooks/1"


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
        self.pool = ThreadPoolExecutor(self.slots, thread_name_prefix="webhook")
        self.http = httpx.Client(
            follow_redirects=False,
            timeout=httpx.Timeout(ATTEMPT_TIMEOUT_SECONDS),
            headers={"user-agent": USER_AGENT},
        )
        self._busy = 0
        self._lock = threading.Lock()
        self.recorder = metrics.Recorder()  # delivery outcomes for GET /metrics

    # -- the loop ----------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set; attempts in flight then finish (at most one timeout)."""
        next_upkeep = 0.0
        ready = False
        try:
            while not stop.is_set():
                try:
                    if not ready:
                        self.outbox.ensure_group()
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

        With every thread busy a due attempt cannot start anyway: wait 0.1 s rather than spin.
        """
        with self._lock:
            if self._busy >= self.slots:
                return 100
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
        """Hand the due deliveries to free threads."""
        with self._lock:
            free = self.slots - self._busy
        if free <= 0:
            return
        for endpoint_id, webhook_id in self.webhooks.take_due(free, LEASE_SECONDS):
            with self._lock:
                self._busy += 1
            self.pool.submit(self._attempt_logged, endpoint_id, webhook_id)

    def _attempt_logged(self, endpoint_id: str, webhook_id: str) -> None:
        try:
            self.attempt(endpoint_id, webhook_id)
        except redis.RedisError as exc:  # the lease runs out and the delivery is due again
            log.warning("delivery %s to %s not recorded: %s", webhook_id, endpoint_id, exc)
        except Exception:  # a bug: log it, keep the consumer alive; the lease makes it due again
            log.exception("delivery %s to %s failed unexpectedly", webhook_id, endpoint_id)
        finally:
            with self._lock:
                self._busy -= 1

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
        try:
            target = targets.check(endpoint["url"], allow_private=self.allow_private)
            now = time.time()
            headers = signing.headers(self.webhooks.signing_secrets(endpoint, now), webhook_id, int(now), body)
            status = self.post(target, headers, body)
            if not 200 <= status < 300:
                error = f"the receiver answered {status}"
        except targets.TargetRefused as exc:
            error = f"refused: {exc}"
        except httpx.TimeoutException:
            error = f"timed out ({ATTEMPT_TIMEOUT_SECONDS:g} s)"
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

    def post(self, target: targets.Target, headers: dict[str, str], body: bytes) -> int:
        """POST ``body`` to the checked address; returns the status after reading at most 64 KiB."""
        url = target.url
        headers = {**headers, "content-type": "application/json", "host": url.netloc.decode("ascii")}
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        deadline = time.monotonic() + ATTEMPT_TIMEOUT_SECONDS
        with self.http.stream(
            "POST", target.request_url(), content=body, headers=headers, extensions=extensions
        ) as response:
            read = 0
            for chunk in response.iter_raw():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES or time.monotonic() > deadline:
                    break
            return response.status_code
