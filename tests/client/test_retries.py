"""Retries against the real service: the API process killed and restarted while calls are retrying."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support import Service, poll
from trainapi_client import Client

SLOW = {"dataset": "digits", "model": {"type": "mlp", "hidden_layers": [64]}, "training": {"epochs": 15}}


def test_create_and_wait_complete_across_an_api_restart(service):
    # The session's service: its API is killed here and started again on the same port before the test ends.
    svc = service
    with Client(svc.url) as client:
        running = client.jobs.create(SLOW, name="waited")
    results: dict[str, Any] = {}
    attempts: list[httpx.Request] = []

    def wait() -> None:
        with Client(svc.url, max_retries=12) as client:
            results["wait"] = client.jobs.wait(running.id, timeout=120)

    def create() -> None:
        http = httpx.Client(event_hooks={"request": [attempts.append]})
        with Client(svc.url, max_retries=12, http_client=http) as client:
            results["create"] = client.jobs.create({**SLOW, "training": {"epochs": 2}}, name="created-while-down")

    svc.stop_api(signal.SIGKILL)
    threads = [threading.Thread(target=wait), threading.Thread(target=create)]
    for thread in threads:
        thread.start()
    poll(lambda: len(attempts) >= 2, timeout=30, what="create() to retry")  # it is retrying, not failed
    svc.start_api()
    for thread in threads:
        thread.join(timeout=150)
    assert results["wait"].status == "succeeded" and results["wait"].progress.epoch == 15
    created = results["create"]
    assert len({r.headers["Idempotency-Key"] for r in attempts}) == 1  # every retry carried the same key
    with Client(svc.url) as client:
        assert [j.id for j in client.jobs.list() if j.name == "created-while-down"] == [created.id]
        assert client.jobs.wait(created.id, timeout=60).status == "succeeded"


def test_a_repeated_idempotency_key_returns_the_first_job(service):
    with Client(service.url) as client:
        first = client.jobs.create(dataset="iris", training={"epochs": 1}, idempotency_key="k-1")
        again = client.jobs.create(dataset="iris", training={"epochs": 1}, idempotency_key="k-1")
    assert again.id == first.id


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory) -> Iterator[Service]:
    """A service of this module's own with room for one active job; its Redis is stopped and started again."""
    svc = Service(tmp_path_factory.mktemp("one-slot"), env_extra={"TRAINAPI_MAX_ACTIVE_JOBS": "1"}).start()
    try:
        yield svc
    finally:
        svc.stop()


def test_a_429_from_the_quota_is_retried_after_its_retry_after(one_slot):
    # Room for one active job: the second create meets the quota.
    svc = one_slot
    creates: list[tuple[float, int, str | None]] = []

    def record(response: httpx.Response) -> None:
        if response.request.method == "POST" and response.request.url.path == "/v1/jobs":
            creates.append((time.monotonic(), response.status_code, response.headers.get("retry-after")))

    with Client(svc.url, max_retries=20, http_client=httpx.Client(event_hooks={"response": [record]})) as client:
        # Long enough that it is still running when the second create comes (several seconds), short enough
        # that its ETA stays well under the 30 s fallback.
        first = client.jobs.create(
            {
                **SLOW,
                "model": {"type": "mlp", "hidden_layers": [256, 256]},
                "training": {"epochs": 60, "batch_size": 16},
            },
            name="first",
        )
        poll(lambda: client.jobs.get(first.id).progress.epoch >= 2, 60, what="the first job's second epoch")
        second = client.jobs.create(dataset="iris", training={"epochs": 2}, name="second")
        assert client.jobs.get(first.id).status == "succeeded"  # admitted only once the first had ended
        assert client.jobs.wait(second.id, timeout=60).status == "succeeded"
    statuses = [status for _, status, _ in creates]
    assert statuses[0] == 202 and statuses[-1] == 202 and set(statuses[1:-1]) == {429}, statuses
    for (at, status, advice), (then, _, _) in itertools.pairwise(creates[1:]):
        assert status == 429 and advice is not None
        # The advice is the running job's ETA (1 to 30 s, not the 30 s fallback), and it is followed.
        assert 1 <= int(advice) < 30 and then - at >= int(advice)


def test_a_503_while_redis_is_down_is_retried_until_it_is_back(one_slot):
    # The module's service: its Redis is stopped while a GET retries, then started again.
    svc = one_slot
    answers: list[tuple[float, int, str | None]] = []

    def record(response: httpx.Response) -> None:
        answers.append((time.monotonic(), response.status_code, response.headers.get("retry-after")))

    results: dict[str, Any] = {}
    with Client(svc.url) as client:
        job = client.jobs.wait(client.jobs.create(dataset="iris", training={"epochs": 2}).id, timeout=60)
    svc.stop_redis()

    def get() -> None:
        http = httpx.Client(event_hooks={"response": [record]})
        with Client(svc.url, max_retries=10, http_client=http) as client:
            results["job"] = client.jobs.get(job.id)

    thread = threading.Thread(target=get)
    thread.start()
    poll(lambda: answers, 30, what="a first answer while Redis is down")
    svc.start_redis()
    thread.join(timeout=90)
    assert results["job"].id == job.id and results["job"].status == "succeeded"
    statuses = [status for _, status, _ in answers]
    assert statuses[0] == 503 and statuses[-1] == 200 and set(statuses[:-1]) == {503}, statuses
    for (at, _, advice), (then, _, _) in itertools.pairwise(answers):
        assert advice == "5" and then - at >= 5  # the service's Retry-After is followed
