"""``GET /v1/jobs/{id}``: the raw status route answers exactly as the FastAPI route, and its Redis reads.

Two apps over one real redis-server, each with its lifespan running (so the
pipelined asyncio reads are in use): one as deployed, whose FastAPI route is
removed so that every answer provably comes from :class:`api.job_status.JobStatusRoute`,
and one built without that route. Every case must give the same status,
headers and body bytes from both.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from pydantic import TypeAdapter

from api.main import create_app
from api.schemas.jobs import JobPublic
from api.services.jobs import dataset_summary, job_json, view
from store.catalog import builtin
from store.jobs import JobStore
from store.jobspec import JobSpec
from store.redis import PipelinedReads, connect, connect_async
from trainapi import processes
from trainapi.keys import add_key
from trainapi.settings import Settings

SPEC = JobSpec.model_validate(
    {"name": "status", "dataset": "iris", "training": {"epochs": 4}, "tags": {"team": "search"}}
).normalized()
DATASET = dataset_summary(builtin("iris"))  # as the API stores it with a job


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = processes.start_redis(tmp_path_factory.mktemp("status-redis"))
    try:
        yield url
    finally:
        processes.stop(proc)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("status-keys") / "api_keys"
    return path, {tenant: add_key(path, tenant) for tenant in ("alpha", "beta")}


@pytest.fixture(scope="module")
def jobs(redis_url: str) -> dict[str, str]:
    """Records of every shape, all of tenant alpha: name -> job id."""
    store = JobStore(connect(redis_url))

    def create(**extra: Any) -> str:
        record, _ = store.create("alpha", {**SPEC, **extra}, DATASET, max_active=100)
        return str(record["id"])

    out = {"queued": create()}
    out["running"] = running = create()
    claim = store.claim(running, "alpha", lease_seconds=60, max_attempts=3)
    store.append_metric(running, claim.token, {"epoch": 1, "train_loss": 0.5, "epoch_seconds": 0.25}, lease_seconds=60)
    out["failed"] = failed = create()
    claim = store.claim(failed, "alpha", lease_seconds=60, max_attempts=3)
    inf = float("inf")
    metric = {"epoch": 1, "train_loss": float("nan"), "val_loss": inf, "epoch_seconds": 0.1}
    store.append_metric(failed, claim.token, metric, lease_seconds=60, best=metric)
    store.finish(failed, "alpha", claim.token, "failed", error={"type": "diverged", "message": "loss is nan"})
    out["succeeded"] = done = create(name=None)
    claim = store.claim(done, "alpha", lease_seconds=60, max_attempts=3)
    for epoch in (1, 2):
        metric = {"epoch": epoch, "val_loss": 1.0 / epoch, "learning_rate": 1e-8, "epoch_seconds": 0.01}
        store.append_metric(done, claim.token, metric, lease_seconds=60, best=metric)
    store.finish(
        done, "alpha", claim.token, "succeeded", stopped_early=True, stop_reason="early_stopping",
        test_metrics={"loss": 0.25, "accuracy": 0.9}, weights_attempt=1,
    )  # fmt: skip
    record, _ = store.create("alpha", SPEC, DATASET, max_active=100, sweep_id="swp_" + uuid.uuid4().hex, quota=False)
    out["trial"] = str(record["id"])
    return out


async def _answers(apps: list[FastAPI], requests: list[tuple[str, dict[str, str]]]) -> list[list[Any]]:
    """Each request sent to each app (lifespans running): ``[[(status, headers, body) per app] per request]``."""
    out: list[list[Any]] = [[] for _ in requests]
    for app in apps:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                for i, (path, headers) in enumerate(requests):
                    response = await client.get(path, headers=headers)
                    out[i].append((response.status_code, list(response.headers.multi_items()), response.content))
    return out


def _apps(settings: Settings) -> tuple[FastAPI, FastAPI]:
    """(deployed with its FastAPI route removed, FastAPI route only)."""
    deployed = create_app(settings)
    deployed.router.routes = [
        route
        for route in deployed.router.routes
        if not (getattr(route, "path", "") == "/v1/jobs/{job_id}" and "GET" in getattr(route, "methods", ()))
    ]
    return deployed, create_app(settings, status_route=False)


def test_both_paths_answer_alike_for_every_case(
    redis_url: str, keys: tuple[Path, dict[str, str]], jobs: dict[str, str], tmp_path: Path
) -> None:
    keys_file, key = keys
    settings = Settings(redis_url=redis_url, data_dir=tmp_path, api_keys_file=keys_file)
    alpha = {"Authorization": f"Bearer {key['alpha']}"}
    unknown = "job_" + uuid.uuid4().hex
    requests = [(f"/v1/jobs/{job_id}", alpha) for job_id in jobs.values()]
    requests += [
        (f"/v1/jobs/{unknown}", alpha),  # not found
        ("/v1/jobs/not-an-id", alpha),  # never reaches Redis
        (f"/v1/jobs/{jobs['succeeded']}", {"Authorization": f"Bearer {key['beta']}"}),  # another tenant's: 404
        (f"/v1/jobs/{jobs['succeeded']}", {"Authorization": f"bearer {key['alpha']}"}),  # the scheme in any case
        (f"/v1/jobs/{jobs['succeeded']}", {}),  # no key: 401
        (f"/v1/jobs/{jobs['succeeded']}", {"Authorization": "Bearer tk_wrong"}),  # unknown key: 401
        (f"/v1/jobs/{jobs['succeeded']}", {"Authorization": f"Basic {key['alpha']}"}),  # not a bearer key: 401
        (f"/v1/jobs/{jobs['succeeded']}", {"Authorization": "Bearer"}),  # no key after the scheme: 401
    ]
    answers = asyncio.run(_answers(list(_apps(settings)), requests))
    statuses = [fast[0] for fast, _ in answers]
    assert statuses == [200] * len(jobs) + [404, 404, 404, 200, 401, 401, 401, 401]
    for (path, headers), (fast, fastapi_route) in zip(requests, answers, strict=True):
        assert fast == fastapi_route, (path, headers)
    bodies = [json.loads(fast[2]) for fast, _ in answers]
    assert bodies[1]["progress"] == {"epoch": 1, "epochs": 4, "fraction": 0.25, "eta_seconds": 0.75}
    assert bodies[2]["error"] == {"type": "diverged", "message": "loss is nan"}
    assert bodies[2]["latest_metrics"]["train_loss"] is None  # NaN and infinity are null, as pydantic writes them
    assert bodies[3]["best_epoch"] == 2 and bodies[3]["stopped_early"] is True
    assert bodies[4]["sweep_id"].startswith("swp_")
    unauthorized = dict(answers[len(jobs) + 4][0][1])
    assert unauthorized["content-type"] == "application/problem+json"
    assert unauthorized["www-authenticate"].startswith("Bearer")


def test_both_paths_answer_503_when_redis_is_down(tmp_path: Path) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{processes.free_port()}/0", data_dir=tmp_path)
    requests = [(f"/v1/jobs/job_{uuid.uuid4().hex}", {})] * 2  # twice: also once the client has failed before
    for fast, fastapi_route in asyncio.run(_answers(list(_apps(settings)), requests)):
        assert fast == fastapi_route
        status, headers, body = fast
        assert status == 503 and dict(headers)["content-type"] == "application/problem+json"
        assert dict(headers)["retry-after"] == "5" and "Redis" in json.loads(body)["detail"]


def test_requests_the_status_route_leaves_to_fastapi(redis_url: str, jobs: dict[str, str], tmp_path: Path) -> None:
    settings = Settings(redis_url=redis_url, data_dir=tmp_path)  # open mode: jobs of tenant alpha are not found
    requests = [
        (f"/v1/jobs/{jobs['queued']}/", {}),  # trailing slash: FastAPI's redirect
        (f"/v1/jobs/{jobs['queued']}/metrics", {}),
        ("/v1/jobs/", {}),
    ]
    for fast, fastapi_route in asyncio.run(
        _answers([create_app(settings), create_app(settings, status_route=False)], requests)
    ):
        assert fast == fastapi_route


def test_job_json_is_fastapis_encoding_of_the_model(redis_url: str, jobs: dict[str, str]) -> None:
    store = JobStore(connect(redis_url))
    adapter = TypeAdapter(JobPublic)
    for job_id in jobs.values():
        record = store.get("alpha", job_id)
        # The routes that send the model do so with response_model_exclude_unset: absent metrics stay absent.
        assert job_json(record) == adapter.dump_json(adapter.validate_python(view(record)), exclude_unset=True)


def test_a_key_added_while_serving_works_at_once(redis_url: str, jobs: dict[str, str], tmp_path: Path) -> None:
    keys_file = tmp_path / "api_keys"
    alpha = add_key(keys_file, "alpha")
    app = create_app(Settings(redis_url=redis_url, data_dir=tmp_path, api_keys_file=keys_file))

    async def scenario() -> list[int]:
        statuses = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                path = f"/v1/jobs/{jobs['queued']}"
                statuses.append((await client.get(path, headers={"Authorization": f"Bearer {alpha}"})).status_code)
                second = add_key(keys_file, "alpha")  # `trainapi keys add alpha` while the API runs
                statuses.append((await client.get(path, headers={"Authorization": f"Bearer {second}"})).status_code)
        return statuses

    assert asyncio.run(scenario()) == [200, 200]


def test_pipelined_reads_answer_each_read_with_its_own_reply(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    names = [f"trainapi:test:hash:{i}" for i in range(300)]
    for i, name in enumerate(names):
        client.hset(name, mapping={"i": str(i)})
    client.set("trainapi:test:string", "not a hash")

    async def reads() -> list[Any]:
        reader = PipelinedReads(connect_async(redis_url))
        try:
            batch = [reader.hgetall(name) for name in names]
            batch.insert(150, reader.hgetall("trainapi:test:string"))
            batch.append(reader.hgetall("trainapi:test:missing"))
            first = await asyncio.gather(*batch, return_exceptions=True)
            alone = [await reader.hgetall(names[7])]  # a lone read after the batch
            alone += await asyncio.gather(reader.hgetall("trainapi:test:string"), return_exceptions=True)
            return [*first, *alone]
        finally:
            await reader.aclose()

    replies = asyncio.run(reads())
    assert isinstance(replies.pop(150), redis.ResponseError)  # WRONGTYPE fails that read alone
    assert isinstance(replies.pop(), redis.ResponseError)
    assert replies[:300] == [{"i": str(i)} for i in range(300)]
    assert replies[300:] == [{}, {"i": "7"}]


def test_pipelined_reads_fail_every_waiting_read_when_redis_is_unreachable() -> None:
    async def reads() -> list[Any]:
        reader = PipelinedReads(connect_async(f"redis://127.0.0.1:{processes.free_port()}/0"))
        try:
            return await asyncio.gather(*(reader.hgetall(f"k{i}") for i in range(20)), return_exceptions=True)
        finally:
            await reader.aclose()

    replies = asyncio.run(reads())
    assert all(isinstance(reply, redis.ConnectionError) for reply in replies)
    assert len({id(reply) for reply in replies}) == len(replies)
