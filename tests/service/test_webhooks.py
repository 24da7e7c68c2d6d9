"""Webhooks against the real service: signed deliveries to a real receiver on loopback, retries, crashes.

One service for the module (Redis, one worker, the delivery consumer, the
API) with API keys for a few tenants, private addresses allowed (the
receivers listen on 127.0.0.1), a short retry schedule and a 3 s attempt
deadline. Each test uses its own tenant, so its endpoints see only its own
events. The crash test is the last to use it: it kills and restarts the
service's processes. The fairness tests have a service of their own (no
worker, 6 delivery slots, a 30 s deadline), with receivers that drip their
answer for minutes (``tests/dripping_receiver.py``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import redis as redis_client
import uvicorn
from dripping_receiver import DrippingReceiver
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from receiver import Received, Receiver
from standardwebhooks import Webhook
from support import Service, doc_block, poll, wait_for_job

from api.main import create_app
from api.webhooks.delivery import Deliverer
from store.artifacts import Artifacts
from store.statuses import TERMINAL
from store.storage import LocalStorage
from store.stores import Stores
from trainapi import processes
from trainapi.keys import add_key
from trainapi.settings import Settings

TENANTS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda")
RETRY = "0.2,0.4,0.8,1.6"  # five attempts in about three seconds
ATTEMPT_SECONDS = 3
FAIR_SLOTS = 6  # so a tenant's share is 3, an endpoint's 2

TINY = {"dataset": "iris", "model": {"type": "logistic"}, "training": {"epochs": 1}}
DIVERGING = {
    "dataset": "diabetes",
    "model": {"type": "linear"},
    "optimizer": {"name": "sgd", "learning_rate": 1000, "momentum": 0},
    "training": {"epochs": 1, "batch_size": 8, "standardize": False},
}
SMALL_MLP = {"dataset": "digits", "model": {"type": "mlp", "hidden_layers": [16]}, "training": {"epochs": 6}}
LONG = {
    "dataset": "digits",
    "model": {"type": "mlp", "hidden_layers": [256, 256]},
    "training": {"epochs": 200, "batch_size": 16},
}


@pytest.fixture(scope="module")
def hooked(tmp_path_factory) -> Iterator[tuple[Service, dict[str, str]]]:
    root = tmp_path_factory.mktemp("webhooks")
    keys_file = root / "api_keys"
    keys = {tenant: add_key(keys_file, tenant) for tenant in TENANTS}
    svc = Service(
        root,
        env_extra={
            "TRAINAPI_API_KEYS_FILE": str(keys_file),
            "TRAINAPI_WEBHOOK_ALLOW_PRIVATE": "true",
            "TRAINAPI_WEBHOOK_RETRY_SCHEDULE": RETRY,
            "TRAINAPI_WEBHOOK_ATTEMPT_SECONDS": str(ATTEMPT_SECONDS),
            "TRAINAPI_MAX_ACTIVE_JOBS": "200",
        },
    )
    try:
        yield svc.start(), keys
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def fair(tmp_path_factory) -> Iterator[tuple[Service, dict[str, str]]]:
    """The delivery consumer and the API (no worker: test events only) with few slots and a long deadline."""
    root = tmp_path_factory.mktemp("fair-webhooks")
    keys_file = root / "api_keys"
    keys = {tenant: add_key(keys_file, tenant) for tenant in ("north", "south", "west")}
    svc = Service(
        root,
        env_extra={
            "TRAINAPI_API_KEYS_FILE": str(keys_file),
            "TRAINAPI_WEBHOOK_ALLOW_PRIVATE": "true",
            "TRAINAPI_WEBHOOK_RETRY_SCHEDULE": RETRY,
            "TRAINAPI_WEBHOOK_CONCURRENCY": str(FAIR_SLOTS),
            "TRAINAPI_WEBHOOK_ENDPOINT_CONCURRENCY": "2",
            "TRAINAPI_WEBHOOK_ATTEMPT_SECONDS": "30",  # the deadline alone cannot free a slot during a test
        },
    )
    try:
        yield svc.start(workers=0), keys
    finally:
        svc.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver().start()
    try:
        yield rx
    finally:
        rx.stop()


def _client(service: Service, key: str) -> httpx.Client:
    return httpx.Client(base_url=service.url, timeout=30, headers={"Authorization": f"Bearer {key}"})


def _endpoint(client: httpx.Client, url: str, events: list[str]) -> dict:
    response = client.post("/v1/webhooks", json={"url": url, "events": events})
    assert response.status_code == 201, response.text
    return response.json()


def _verified(items: list[Received], secret: str) -> dict[str, dict]:
    """webhook-id -> payload, every request's signature checked by the standardwebhooks package."""
    hook = Webhook(secret)
    out: dict[str, dict] = {}
    for item in items:
        payload = hook.verify(item.body, item.headers)
        assert out.setdefault(item.headers["webhook-id"], payload) == payload  # a retry sends the same body
    return out


def _deliveries(client: httpx.Client, endpoint_id: str) -> list[dict]:
    response = client.get(f"/v1/webhooks/{endpoint_id}/deliveries", params={"limit": 500})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_endpoints_secret_shown_once_rotation_and_ownership(hooked, receiver):
    service, keys = hooked
    with _client(service, keys["alpha"]) as alpha, _client(service, keys["beta"]) as beta:
        created = alpha.post("/v1/webhooks", json={"url": receiver.url(), "events": ["*"], "description": "ci"})
        assert created.status_code == 201
        endpoint = created.json()
        assert endpoint["secret"].startswith("whsec_") and created.headers["location"].endswith(endpoint["id"])
        shown = alpha.get(f"/v1/webhooks/{endpoint['id']}").json()
        assert "secret" not in shown and shown["url"] == receiver.url() and shown["events"] == ["*"]
        assert all("secret" not in item for item in alpha.get("/v1/webhooks").json()["items"])

        rotated = alpha.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret").json()
        assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
        assert "secret" not in alpha.get(f"/v1/webhooks/{endpoint['id']}").json()
        sent = alpha.post(f"/v1/webhooks/{endpoint['id']}/test")
        assert sent.status_code == 202
        webhook_id = sent.json()["webhook_id"]
        item = poll(lambda: [r for r in receiver.items() if r.headers["webhook-id"] == webhook_id], 30)[0]
        # During the rotation both secrets sign, so receivers switch over without losing events.
        for secret in (endpoint["secret"], rotated["secret"]):
            payload = Webhook(secret).verify(item.body, item.headers)
        assert payload["type"] == "webhook.test" and payload["data"] == shown
        assert len(item.headers["webhook-signature"].split(" ")) == 2

        for method, path in (
            ("GET", ""),
            ("DELETE", ""),
            ("POST", "/test"),
            ("POST", "/rotate-secret"),
            ("GET", "/deliveries"),
        ):
            response = beta.request(method, f"/v1/webhooks/{endpoint['id']}{path}")
            assert response.status_code == 404, (method, path)
            assert response.headers["content-type"] == "application/problem+json"
        assert beta.get("/v1/webhooks").json()["items"] == []

        for body, field in (
            ({"url": receiver.url(), "events": ["job.nope"]}, "events"),
            ({"url": receiver.url(), "events": []}, "events"),
            ({"url": "ftp://example.com/x", "events": ["*"]}, "url"),
            ({"url": "not a url", "events": ["*"]}, "url"),
            ({"events": ["*"]}, "url"),
        ):
            response = alpha.post("/v1/webhooks", json=body)
            assert response.status_code == 422, body
            assert response.json()["errors"][0]["field"].startswith(field)

        assert alpha.delete(f"/v1/webhooks/{endpoint['id']}").status_code == 204
        assert alpha.get(f"/v1/webhooks/{endpoint['id']}").status_code == 404
        assert alpha.get("/v1/webhooks").json()["items"] == []

        many = [_endpoint(alpha, receiver.url(), ["job.failed"])["id"] for _ in range(20)]
        assert alpha.post("/v1/webhooks", json={"url": receiver.url(), "events": ["*"]}).status_code == 409
        for endpoint_id in many:
            assert alpha.delete(f"/v1/webhooks/{endpoint_id}").status_code == 204


def test_hundred_jobs_one_verified_terminal_event_each(hooked):
    """Acceptance 1, and 5's isolation: another tenant's endpoint receives none of these events."""
    service, keys = hooked
    mine, theirs = Receiver().start(), Receiver().start()
    try:
        with _client(service, keys["beta"]) as beta, _client(service, keys["gamma"]) as gamma:
            secret = _endpoint(beta, mine.url(), ["*"])["secret"]
            other_secret = _endpoint(gamma, theirs.url(), ["*"])["secret"]
            other_job = gamma.post("/v1/jobs", json=TINY).json()["id"]
            ids = []
            for i in range(100):
                spec = DIVERGING if i % 7 == 3 else TINY
                job_id = beta.post("/v1/jobs", json=spec).json()["id"]
                ids.append(job_id)
                if i % 7 == 5:
                    assert beta.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
            jobs = {job_id: wait_for_job(beta, job_id, timeout=180) for job_id in ids}
            statuses = {job["status"] for job in jobs.values()}
            assert statuses == {"succeeded", "failed", "cancelled"}, statuses

            def terminal_events() -> dict[str, dict] | None:
                events = _verified(mine.items(), secret)
                ended = {e["data"]["id"] for e in events.values() if e["type"].split(".")[1] in TERMINAL}
                return events if ended >= set(ids) else None

            events = poll(terminal_events, 60, interval=0.2, what="a terminal event for every job")
            per_job: dict[str, list[dict]] = {}
            for event in events.values():
                assert event["data"]["id"] in ids  # nothing of the other tenant
                if event["type"] != "job.started":
                    per_job.setdefault(event["data"]["id"], []).append(event)
            assert sorted(per_job) == sorted(ids)
            for job_id, ended in per_job.items():
                assert len(ended) == 1, ended
                assert ended[0]["type"] == f"job.{jobs[job_id]['status']}"
                assert ended[0]["data"] == jobs[job_id]  # data is the job as GET returns it
            assert {e["type"] for e in events.values()} == {
                "job.started",
                "job.succeeded",
                "job.failed",
                "job.cancelled",
            }

            wait_for_job(gamma, other_job)
            theirs_events = poll(lambda: _verified(theirs.items(), other_secret) or None, 30)
            assert {e["data"]["id"] for e in theirs_events.values()} == {other_job}
    finally:
        mine.stop()
        theirs.stop()


def test_receiver_down_then_up_gets_every_event_and_the_log_shows_attempts(hooked):
    """Acceptance 2: connection refused for the first attempts, then delivered; and a final `failed`."""
    service, keys = hooked
    receiver = Receiver()  # not listening yet
    never = Receiver()  # never listening
    with _client(service, keys["delta"]) as delta:
        endpoint = _endpoint(delta, receiver.url(), ["job.succeeded"])
        dead = _endpoint(delta, never.url(), ["job.succeeded"])
        test_id = delta.post(f"/v1/webhooks/{endpoint['id']}/test").json()["webhook_id"]
        job_id = delta.post("/v1/jobs", json=TINY).json()["id"]
        wait_for_job(delta, job_id)

        def refused_twice() -> bool:
            items = _deliveries(delta, endpoint["id"])
            return len(items) == 2 and all(d["attempts"] >= 2 for d in items)

        poll(refused_twice, 30, what="two failed attempts of each delivery")
        receiver.start()
        try:
            delivered = poll(
                lambda: (
                    (items := _deliveries(delta, endpoint["id"]))
                    and all(d["status"] == "delivered" for d in items)
                    and items
                ),
                30,
                what="every delivery to arrive",
            )
            events = _verified(receiver.items(), endpoint["secret"])
            assert {e["type"] for e in events.values()} == {"webhook.test", "job.succeeded"}
            assert test_id in events
            assert all(r.headers["webhook-id"] in events for r in receiver.items())
            for delivery in delivered:
                assert delivery["attempts"] >= 3 and delivery["last_status_code"] == 200
                assert delivery["delivered_at"] and delivery["last_error"] is None
                assert len(delivery["history"]) == delivery["attempts"]
                assert all("ConnectError" in a["error"] for a in delivery["history"][:-1])
                assert delivery["history"][-1]["status_code"] == 200
        finally:
            receiver.stop()

        failed = poll(
            lambda: [d for d in _deliveries(delta, dead["id"]) if d["status"] == "failed"], 30, what="a failed delivery"
        )[0]
        assert failed["attempts"] == 1 + len(RETRY.split(",")) and failed["delivered_at"] is None
        assert "ConnectError" in failed["last_error"] and failed["next_attempt_at"] is None

    def counted() -> dict[str, float] | None:
        """Delivery outcomes in GET /metrics once this test's have reached it (other tests add more)."""
        text = httpx.get(f"{service.url}/metrics").text
        families = [f for f in text_string_to_metric_families(text) if f.name == "trainapi_webhook_deliveries"]
        got = {sample.labels["outcome"]: sample.value for f in families for sample in f.samples}
        return got if got.get("delivered", 0) >= 2 and got.get("retry", 0) >= 4 and got.get("failed", 0) >= 1 else None

    poll(counted, 30, what="the delivery outcomes in /metrics")


def test_redirects_are_not_followed(hooked, receiver):
    service, keys = hooked
    receiver.status = 307
    receiver.headers = {"location": receiver.url("/elsewhere")}
    with _client(service, keys["theta"]) as client:
        endpoint = _endpoint(client, receiver.url(), ["*"])
        client.post(f"/v1/webhooks/{endpoint['id']}/test")
        (delivery,) = poll(
            lambda: [d for d in _deliveries(client, endpoint["id"]) if d["attempts"] >= 2], 30, what="two attempts"
        )
        assert delivery["status"] == "pending" and delivery["last_status_code"] == 307
        assert "307" in delivery["last_error"]
        assert receiver.items("/elsewhere") == [] and len(receiver.items("/hook")) >= 2
        client.delete(f"/v1/webhooks/{endpoint['id']}")


def test_at_most_64_kib_of_an_answer_is_read(hooked, receiver):
    """A receiver answering 64 MiB: the consumer reads 64 KiB, closes, and records the delivery."""
    service, keys = hooked
    receiver.body = b"x" * (64 * 1024 * 1024)
    with _client(service, keys["iota"]) as client:
        endpoint = _endpoint(client, receiver.url(), ["*"])
        client.post(f"/v1/webhooks/{endpoint['id']}/test")
        (delivery,) = poll(
            lambda: [d for d in _deliveries(client, endpoint["id"]) if d["status"] == "delivered"], 30, what="delivery"
        )
        assert delivery["attempts"] == 1 and delivery["last_status_code"] == 200
        poll(lambda: receiver.cut_off == 1, 30, what="the receiver to see its answer cut off")


def test_job_epoch_only_when_subscribed_explicitly(hooked, receiver):
    """Acceptance 6."""
    service, keys = hooked
    with _client(service, keys["epsilon"]) as client:
        star = _endpoint(client, receiver.url("/star"), ["*"])
        epoch = _endpoint(client, receiver.url("/epoch"), ["job.epoch"])
        both = _endpoint(client, receiver.url("/both"), ["job.succeeded", "job.epoch"])
        job_id = client.post("/v1/jobs", json={**TINY, "training": {"epochs": 3}}).json()["id"]
        job = wait_for_job(client, job_id)
        poll(lambda: len({r.headers["webhook-id"] for r in receiver.items("/both")}) >= 4, 30)
        poll(lambda: len({r.headers["webhook-id"] for r in receiver.items("/star")}) >= 2, 30)

        got = {
            name: sorted(
                (e["type"], e["data"]["progress"]["epoch"])
                for e in _verified(receiver.items(f"/{name}"), endpoint["secret"]).values()
            )
            for name, endpoint in (("star", star), ("epoch", epoch), ("both", both))
        }
        assert got["star"] == [("job.started", 0), ("job.succeeded", 3)]
        assert got["epoch"] == [("job.epoch", 1), ("job.epoch", 2), ("job.epoch", 3)]
        assert got["both"] == [("job.epoch", 1), ("job.epoch", 2), ("job.epoch", 3), ("job.succeeded", 3)]
        epochs = _verified(receiver.items("/epoch"), epoch["secret"])
        assert all(e["data"]["id"] == job_id and e["data"]["status"] == "running" for e in epochs.values())
        assert job["status"] == "succeeded"


def test_events_do_not_wait_behind_training(hooked, receiver):
    """Acceptance 4 (without timing: bench/webhooks.py measures it): the only worker is busy on a long job."""
    service, keys = hooked
    with _client(service, keys["zeta"]) as client:
        endpoint = _endpoint(client, receiver.url(), ["sweep.cancelled"])
        long_id = client.post("/v1/jobs", json=LONG).json()["id"]
        wait_for_job(client, long_id, statuses=("running",))
        sweep = client.post(
            "/v1/sweeps",
            json={"base": TINY, "parameters": {"training.seed": {"values": [1, 2, 3]}}, "max_concurrent_trials": 1},
        ).json()
        test_id = client.post(f"/v1/webhooks/{endpoint['id']}/test").json()["webhook_id"]
        assert client.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 202

        def both() -> dict[str, dict] | None:
            events = _verified(receiver.items(), endpoint["secret"])
            return events if len(events) == 2 else None

        events = poll(both, 30, what="the test event and the sweep's end")
        assert client.get(f"/v1/jobs/{long_id}").json()["status"] == "running"  # still training meanwhile
        assert test_id in events
        ended = next(e for e in events.values() if e["type"] == "sweep.cancelled")
        assert ended["data"] == client.get(f"/v1/sweeps/{sweep['id']}").json()
        client.post(f"/v1/jobs/{long_id}/cancel")
        wait_for_job(client, long_id)


def test_pruned_trials_and_ended_sweeps_send_their_events_with_the_resources_view(hooked, receiver):
    service, keys = hooked
    with _client(service, keys["kappa"]) as client:
        endpoint = _endpoint(client, receiver.url(), ["job.pruned", "sweep.succeeded", "sweep.failed"])
        pruning = client.post(
            "/v1/sweeps",
            json={
                "base": SMALL_MLP,
                "parameters": {"optimizer.learning_rate": {"values": [0.01, 0.00001]}},
                "max_concurrent_trials": 1,
                "early_stopping": {"type": "median", "grace_epochs": 1, "min_trials": 1},
            },
        ).json()
        failing = client.post(
            "/v1/sweeps",
            json={"base": DIVERGING, "parameters": {"training.seed": {"values": [1, 2]}}, "max_concurrent_trials": 1},
        ).json()
        poll(lambda: len({r.headers["webhook-id"] for r in receiver.items()}) >= 3, 90, what="three events")
        events = _verified(receiver.items(), endpoint["secret"])
        by_type = {event["type"]: event["data"] for event in events.values()}
        assert sorted(by_type) == ["job.pruned", "sweep.failed", "sweep.succeeded"], sorted(by_type)
        assert by_type["sweep.succeeded"] == client.get(f"/v1/sweeps/{pruning['id']}").json()
        assert by_type["sweep.failed"] == client.get(f"/v1/sweeps/{failing['id']}").json()
        pruned = by_type["job.pruned"]
        assert pruned["sweep_id"] == pruning["id"] and pruned == client.get(f"/v1/jobs/{pruned['id']}").json()
        assert pruned["status"] == "pruned" and by_type["sweep.failed"]["counts"] == {"failed": 2}


def test_private_urls_refused_without_the_flag(hooked):
    """Acceptance 5: without TRAINAPI_WEBHOOK_ALLOW_PRIVATE the API answers 422 for private hosts.

    The app is built in this process from the service's settings minus the flag (same Redis and keys).
    """
    service, keys = hooked
    env = service.env()
    settings = Settings(redis_url=service.redis_url, data_dir=service.root, api_keys_file=env["TRAINAPI_API_KEYS_FILE"])
    assert not settings.webhook_allow_private
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {keys['eta']}"}) as client:
        for url in (
            "http://127.0.0.1:8080/hook",
            "http://10.1.2.3/hook",
            "https://169.254.169.254/latest/meta-data",
            "http://[::1]:9000/hook",
            "http://localhost:9000/hook",
            "http://224.0.0.1/hook",
            "http://0.0.0.0/hook",
            "http://[::ffff:192.168.1.1]/hook",
            "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
            "http://192.0.0.8/hook",
            "http://100.64.0.1/hook",
        ):
            response = client.post("/v1/webhooks", json={"url": url, "events": ["*"]})
            assert response.status_code == 422, (url, response.text)
            assert response.json()["errors"][0]["field"] == "url"
        assert client.get("/v1/webhooks").json()["items"] == []


def test_the_documented_receiver_verifies_deliveries(hooked, capsys):
    """The ten-line receiver of docs/webhooks.md, run under uvicorn, gets a test event and refuses a forged one."""
    service, keys = hooked
    code = doc_block("docs/webhooks.md", "A receiver that verifies signatures")
    with _client(service, keys["eta"]) as client:
        port = processes.free_port()
        endpoint = _endpoint(client, f"http://127.0.0.1:{port}/hooks/trainapi", ["*"])
        namespace: dict = {}
        exec(compile(code.replace("whsec_…", endpoint["secret"]), "docs/webhooks.md", "exec"), namespace)
        server = uvicorn.Server(uvicorn.Config(namespace["app"], host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            poll(lambda: server.started, 30, what="the documented receiver")
            webhook_id = client.post(f"/v1/webhooks/{endpoint['id']}/test").json()["webhook_id"]
            poll(lambda: f"{webhook_id} webhook.test" in capsys.readouterr().out, 30, what="the receiver's output")
            (delivery,) = _deliveries(client, endpoint["id"])
            assert delivery["status"] == "delivered" and delivery["last_status_code"] == 204
            forged = httpx.post(
                f"http://127.0.0.1:{port}/hooks/trainapi",
                content=b'{"type": "job.succeeded"}',
                headers={
                    "webhook-id": "msg_1",
                    "webhook-timestamp": str(int(time.time())),
                    "webhook-signature": "v1,AAAA",
                },
            )
            assert forged.status_code == 400
        finally:
            server.should_exit = True
            thread.join(10)


def test_the_consumer_checks_the_address_again_at_delivery_time(tmp_path, receiver):
    """DNS rebinding: an endpoint accepted earlier whose host now resolves to a private address is refused.

    An endpoint on loopback is recorded directly in the store (as if its name
    had resolved to a public address when it was created), then one consumer
    without the allow flag, on its own Redis, fans out a test event and makes
    an attempt.
    """
    redis_proc, url = processes.start_redis(tmp_path / "redis")
    try:
        stores = Stores.open(url, Artifacts(LocalStorage(tmp_path)))
        store = stores.webhooks
        endpoint = store.create("local", receiver.url(), ["*"], "")
        event = store.send_test("local", endpoint["id"])
        deliverer = Deliverer(Settings(redis_url=url, webhook_allow_private=False), stores, "strict")
        deliverer.fan_out(event)
        assert store.due_endpoints() == [(endpoint["id"], "local")]
        (webhook_id,) = store.take_due(endpoint["id"], 10, lease_seconds=30)
        deliverer.attempt(endpoint["id"], webhook_id)
        deliverer.pool.shutdown()
        (delivery,) = store.deliveries("local", endpoint["id"])
        assert delivery["status"] == "pending" and delivery["attempts"] == 1
        assert delivery["last_error"].startswith("refused") and "loopback" in delivery["last_error"]
        assert receiver.items() == []
    finally:
        processes.stop(redis_proc)


def test_a_dripping_receiver_is_cut_at_the_attempt_deadline(hooked):
    """A receiver that sends its status line a byte a second holds no thread past the deadline (3 s here):
    the attempt is cut there, logged as failed with the reason, and tried again on the schedule."""
    service, keys = hooked
    drip = DrippingReceiver().start()
    try:
        with _client(service, keys["lambda"]) as client:
            endpoint = _endpoint(client, drip.url(), ["*"])
            client.post(f"/v1/webhooks/{endpoint['id']}/test")
            (delivery,) = poll(
                lambda: [d for d in _deliveries(client, endpoint["id"]) if d["attempts"] >= 2],
                6 * ATTEMPT_SECONDS,
                what="two attempts, each cut at the deadline",
            )
            client.delete(f"/v1/webhooks/{endpoint['id']}")
        assert delivery["status"] == "pending" and delivery["last_status_code"] is None
        for attempt in delivery["history"]:
            assert attempt["error"] == f"cut at the attempt deadline ({ATTEMPT_SECONDS} s) before the status line"
            assert ATTEMPT_SECONDS * 1000 <= attempt["duration_ms"] < ATTEMPT_SECONDS * 1000 + 1500, attempt
        first = drip.held()[0]
        assert first.closed_at is not None and first.closed_at - first.at < ATTEMPT_SECONDS + 1.5
    finally:
        drip.stop()


def test_no_event_lost_to_killed_worker_and_consumer_and_a_redis_restart(hooked, receiver):
    """Acceptance 3. Runs last: it kills the module service's processes."""
    service, keys = hooked
    receiver.status = 500
    with _client(service, keys["alpha"]) as client:
        endpoint = _endpoint(client, receiver.url(), ["*"])
        test_id = client.post(f"/v1/webhooks/{endpoint['id']}/test").json()["webhook_id"]
        poll(lambda: receiver.items(), 30, what="a first (refused) attempt")
        service.stop_webhooks(signal.SIGKILL)  # deliveries pending, and no consumer

        job_id = client.post("/v1/jobs", json=TINY).json()["id"]
        wait_for_job(client, job_id, timeout=60)
        pid = int(redis_client.Redis.from_url(service.redis_url).hget(f"trainapi:job:{job_id}", "worker_pid"))
        os.kill(pid, signal.SIGKILL)  # right after the job finished; its events wait in the outbox
        service.stop_redis()
        service.start_redis()
        receiver.status = 200
        service.start_webhooks()

        def all_arrived() -> dict[str, dict] | None:
            events = _verified(receiver.items(), endpoint["secret"])
            types = {e["type"] for e in events.values()}
            return events if {"webhook.test", "job.started", "job.succeeded"} <= types else None

        events = poll(all_arrived, 60, interval=0.1, what="every event after the crash")
        assert test_id in events
        assert events_for(events, "job.succeeded")["data"]["id"] == job_id
        delivered = {d["webhook_id"]: d for d in _deliveries(client, endpoint["id"])}
        assert delivered[test_id]["status"] == "delivered" and delivered[test_id]["attempts"] >= 2


def events_for(events: dict[str, dict], kind: str) -> dict:
    (event,) = [e for e in events.values() if e["type"] == kind]
    return event


def test_one_tenant_s_dripping_receivers_do_not_delay_another_tenant(fair):
    """Eight endpoints of one tenant whose receivers never finish their status line (each attempt would hold
    a thread for the whole 30 s deadline) hold half the 6 slots; another tenant's event arrives within 2 s."""
    service, keys = fair
    drip, fast = DrippingReceiver().start(), Receiver().start()
    with _client(service, keys["north"]) as north, _client(service, keys["south"]) as south:
        slow = [_endpoint(north, drip.url(f"/north/{i}"), ["*"])["id"] for i in range(8)]
        quick = _endpoint(south, fast.url(), ["*"])["id"]
        try:
            for endpoint_id in slow:
                north.post(f"/v1/webhooks/{endpoint_id}/test")
            poll(lambda: drip.open_now() >= FAIR_SLOTS // 2, 30, what="north's attempts to hold its share")
            sent = time.time()
            webhook_id = south.post(f"/v1/webhooks/{quick}/test").json()["webhook_id"]
            (item,) = poll(
                lambda: [r for r in fast.items() if r.headers["webhook-id"] == webhook_id], 45, what="south's event"
            )
            assert item.at - sent <= 2.0, f"south's event took {item.at - sent:.1f} s"
            assert drip.max_open() == FAIR_SLOTS // 2  # though all eight were due
            assert all(held.closed_at is None for held in drip.held())  # still held: not the deadline's doing
        finally:
            drip.stop()  # hangs up, so north's attempts end now rather than at their deadline
            fast.stop()
            for endpoint_id in [*slow, quick]:
                north.delete(f"/v1/webhooks/{endpoint_id}")
                south.delete(f"/v1/webhooks/{endpoint_id}")


def test_an_endpoint_holds_two_attempts_at_most_and_its_tenant_s_other_endpoints_proceed(fair):
    """Four deliveries due to one hanging receiver: two attempts in flight, two waiting (still due), and an
    event for the same tenant's other endpoint arrives within 2 s on the slot its share still has."""
    service, keys = fair
    drip, fast = DrippingReceiver().start(), Receiver().start()
    with _client(service, keys["west"]) as west:
        slow = _endpoint(west, drip.url(), ["*"])["id"]
        quick = _endpoint(west, fast.url(), ["*"])["id"]
        try:
            for _ in range(4):
                west.post(f"/v1/webhooks/{slow}/test")
            poll(lambda: drip.open_now() >= 2, 30, what="two attempts to the hanging receiver")
            sent = time.time()
            webhook_id = west.post(f"/v1/webhooks/{quick}/test").json()["webhook_id"]
            (item,) = poll(
                lambda: [r for r in fast.items() if r.headers["webhook-id"] == webhook_id], 45, what="the other event"
            )
            assert item.at - sent <= 2.0, f"the other endpoint's event took {item.at - sent:.1f} s"
            assert drip.max_open() == 2
            waiting = _deliveries(west, slow)
            assert len(waiting) == 4 and all(d["status"] == "pending" and d["attempts"] == 0 for d in waiting)
        finally:
            drip.stop()
            fast.stop()
            for endpoint_id in (slow, quick):
                west.delete(f"/v1/webhooks/{endpoint_id}")


def test_a_schedule_of_the_first_layout_is_moved_over(tmp_path):
    """Before the per-endpoint schedules, ``webhooks:due`` held ``"{endpoint} {webhook-id}"`` members."""
    redis_proc, url = processes.start_redis(tmp_path / "redis")
    try:
        store = Stores.open(url, Artifacts(LocalStorage(tmp_path))).webhooks
        endpoint_id = store.create("local", "http://192.0.2.1/hook", ["*"], "")["id"]
        event = store.send_test("local", endpoint_id)
        assert store.add_delivery(endpoint_id, event, b"{}")
        gone = "wh_" + "0" * 32
        r = redis_client.Redis.from_url(url, decode_responses=True)
        r.delete(f"trainapi:webhook:{endpoint_id}:due", "trainapi:webhooks:due")
        r.hset(f"trainapi:webhook:{gone}:delivery:msg_1", mapping={"status": "pending"})
        r.zadd(
            "trainapi:webhooks:due",
            {f"{endpoint_id} {event.webhook_id}": time.time() - 5, f"{gone} msg_1": time.time() - 9},
        )
        assert store.migrate_schedule() == 2 and store.migrate_schedule() == 0
        assert store.due_endpoints() == [(gone, None), (endpoint_id, "local")]
        store.forget_schedule(gone)  # what the consumer does with an endpoint that is gone
        assert not r.exists(f"trainapi:webhook:{gone}:delivery:msg_1", f"trainapi:webhook:{gone}:due")
        assert store.take_due(endpoint_id, 10, lease_seconds=30) == [event.webhook_id]
        assert store.due_endpoints() == [] and store.next_due() is not None  # leased: due again in 30 s
        store.record_attempt(
            endpoint_id, event.webhook_id, outcome="delivered", status_code=200, error=None, duration_ms=1
        )
        assert store.next_due() is None and r.zcard(f"trainapi:webhook:{endpoint_id}:due") == 0
    finally:
        processes.stop(redis_proc)
