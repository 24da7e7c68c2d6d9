"""Several hosts sharing only Redis and a bucket (SPEC §15), with an S3-protocol server on loopback.

The API, worker A and worker B each get a private data directory; datasets,
checkpoints and weights travel through the bucket (moto's standalone server,
which keeps objects in memory). The tests run in order on one deployment: the
last one freezes the S3 server.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
import pytest
import redis as redis_client
from support import Service, poll, wait_for_job

from store import workers as worker_registry
from trainapi import processes

BUCKET = "trainapi-hosts"
PREFIX = "deployment-1"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
LONG_JOB = {
    "dataset": "digits",
    "model": {"type": "mlp", "hidden_layers": [128, 128]},
    "regularization": {"dropout": 0.25, "l2": 1e-4},
    "training": {"epochs": 10, "batch_size": 16, "seed": 5},
}


class Hosts:
    """The deployment: Redis, the S3 server, the API and workers ``a`` and ``b``, each with its own data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.s3_proc, self.s3_url = processes.start_s3_server(root / "s3.log")
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        self.s3.create_bucket(Bucket=BUCKET)
        self.service = Service(
            root,
            env_extra={
                **AWS,
                "TRAINAPI_STORAGE_URL": f"s3://{BUCKET}/{PREFIX}",
                "TRAINAPI_S3_ENDPOINT_URL": self.s3_url,
                # Short, so that a frozen S3 server fails requests within seconds.
                "TRAINAPI_S3_CONNECT_TIMEOUT": "1",
                "TRAINAPI_S3_READ_TIMEOUT": "2",
                "TRAINAPI_S3_MAX_ATTEMPTS": "2",
                "TRAINAPI_LEASE_SECONDS": "3",
                "TRAINAPI_MAX_ATTEMPTS": "8",
            },
        )
        self.service.start_redis()
        self.service.start_worker("a", wait=False, data_dir=root / "host-a")
        self.service.start_worker("b", data_dir=root / "host-b")
        self.service.start_api(data_dir=root / "host-api")
        client = redis_client.Redis.from_url(self.service.redis_url, decode_responses=True)
        poll(lambda: any(w.startswith("a@") for w in worker_registry.live(client)), 90, what="worker a")

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/{prefix}")
        return [item["Key"].removeprefix(f"{PREFIX}/") for page in pages for item in page.get("Contents", [])]

    def stop(self) -> None:
        self.s3_proc.send_signal(signal.SIGCONT)
        self.service.stop()
        processes.stop(self.s3_proc)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    deployment = Hosts(tmp_path_factory.mktemp("hosts"))
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture
def api(hosts: Hosts) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hosts.service.url, timeout=30) as client:
        yield client


def _csv(rows: int = 240, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 4))
    label = np.where(X[:, 0] + 0.5 * X[:, 1] > 0, "yes", "no")
    lines = ["a,b,c,d,label", *(",".join(f"{v:.5f}" for v in x) + f",{t}" for x, t in zip(X, label, strict=True))]
    return ("\n".join(lines) + "\n").encode()


def _tensors(api: httpx.Client, job_id: str) -> dict[str, np.ndarray]:
    response = api.get(f"/v1/jobs/{job_id}/weights", params={"format": "npz"})
    assert response.status_code == 200, response.text
    with np.load(io.BytesIO(response.content), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k != "metadata"}


def _files(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def _running(api: httpx.Client, hosts: Hosts, job_id: str, min_epoch: int) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        job = api.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] not in ("succeeded", "failed"), "the job ended before it could be interrupted"
        if job["status"] == "running" and job["progress"]["epoch"] >= min_epoch:
            client = redis_client.Redis.from_url(hosts.service.redis_url, decode_responses=True)
            return client.hgetall(f"trainapi:job:{job_id}")
        return None

    return poll(ready, 120, interval=0.02, what=f"job {job_id} to run epoch {min_epoch}")


def test_two_hosts_share_only_redis_and_the_bucket(hosts: Hosts, api: httpx.Client):
    csv = _csv()
    uploads = [api.post("/v1/datasets", files={"file": ("points.csv", csv, "text/csv")}).json() for _ in range(2)]
    assert uploads[0]["id"] != uploads[1]["id"] and uploads[0]["sha256"] == uploads[1]["sha256"]
    assert hosts.keys("datasets/") == [f"datasets/{uploads[0]['sha256']}.npz"]  # stored once

    spec = {"dataset": uploads[1]["id"], "model": {"type": "mlp", "hidden_layers": [16]}, "training": {"epochs": 5}}
    job_id = api.post("/v1/jobs", json=spec).json()["id"]
    job = wait_for_job(api, job_id, timeout=90)
    assert job["status"] == "succeeded", hosts.service.logs()
    final = [f"jobs/{job_id}/attempt-1/weights.{fmt}" for fmt in ("json", "npz", "safetensors")]
    final.append(f"jobs/{job_id}/metrics.json")
    # The worker deletes the checkpoints right after recording the end.
    poll(lambda: sorted(hosts.keys(f"jobs/{job_id}/")) == final, 10, what="only the weights in the bucket")
    assert len(_tensors(api, job_id)) == 4
    # The metrics moved from Redis into the bucket, and read back from there.
    poll(lambda: f"jobs/{job_id}/metrics.json" in hosts.keys(f"jobs/{job_id}/"), 10, what="the metrics object")
    stored = json.loads(hosts.s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/jobs/{job_id}/metrics.json")["Body"].read())
    assert [m["epoch"] for m in stored] == [1, 2, 3, 4, 5]
    assert api.get(f"/v1/jobs/{job_id}/metrics").json()["items"] == stored
    prediction = api.post(f"/v1/jobs/{job_id}/predict", json={"inputs": [[2.0, 1.0, 0.0, 0.0], [-2.0, -1.0, 0, 0]]})
    assert prediction.status_code == 200 and set(prediction.json()["predictions"]) <= {"yes", "no"}

    # Nothing but the worker's dataset cache on any host's disk.
    assert _files(hosts.root / "host-api") == []
    worker_files = _files(hosts.root / "host-a") + _files(hosts.root / "host-b")
    assert worker_files == [f"cache/datasets/{uploads[0]['sha256']}.npz"]

    # Deleting one of the two datasets keeps the shared object; deleting the other removes it.
    assert api.delete(f"/v1/datasets/{uploads[0]['id']}").status_code == 204
    assert hosts.keys("datasets/") == [f"datasets/{uploads[0]['sha256']}.npz"]
    assert api.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert hosts.keys(f"jobs/{job_id}/") == []


def test_a_killed_worker_host_is_resumed_by_the_other_from_the_bucket(hosts: Hosts, api: httpx.Client):
    reference = api.post("/v1/jobs", json=LONG_JOB).json()["id"]
    job_id = api.post("/v1/jobs", json=LONG_JOB).json()["id"]
    record = _running(api, hosts, job_id, min_epoch=3)
    checkpoints = [k for k in hosts.keys(f"jobs/{job_id}/attempt-1/") if "/checkpoint-" in k]
    assert checkpoints, "the running attempt keeps its checkpoint in the bucket"
    victim = record["worker"].split("@")[0]
    os.killpg(hosts.service.workers.pop(victim).pid, signal.SIGKILL)  # the whole host's worker, children too

    assert wait_for_job(api, reference, timeout=120)["status"] == "succeeded"
    job = wait_for_job(api, job_id, timeout=120)
    assert job["status"] == "succeeded", hosts.service.logs()
    assert job["attempt"] == 2
    # Attempt 2 started from attempt 1's last checkpoint in the bucket (epoch 3 or later), not from scratch.
    logs = "\n".join(path.read_text() for path in sorted(hosts.service.root.glob("*.log")))
    resumed = re.findall(rf"job {job_id}: resuming from the checkpoint of epoch (\d+) \(attempt 1\)", logs)
    assert len(resumed) == 1 and int(resumed[0]) >= 3, hosts.service.logs()
    metrics = api.get(f"/v1/jobs/{job_id}/metrics").json()["items"]
    assert [m["epoch"] for m in metrics] == list(range(1, 11))
    expected, actual = _tensors(api, reference), _tensors(api, job_id)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert actual[name].tobytes() == expected[name].tobytes(), name
    # The first attempt's objects go when the job finishes; only the final weights remain.
    final = {f"jobs/{job_id}/attempt-2/weights.{fmt}" for fmt in ("npz", "safetensors", "json")}
    poll(
        lambda: set(hosts.keys(f"jobs/{job_id}/")) == {*final, f"jobs/{job_id}/metrics.json"},
        10,
        what="the first attempt's objects to go",
    )


def test_a_frozen_s3_server_gives_503s_and_never_partial_weights(hosts: Hosts, api: httpx.Client):
    done = api.post("/v1/jobs", json={**LONG_JOB, "training": {**LONG_JOB["training"], "epochs": 1}}).json()["id"]
    assert wait_for_job(api, done, timeout=60)["status"] == "succeeded"
    job_id = api.post("/v1/jobs", json={**LONG_JOB, "training": {**LONG_JOB["training"], "epochs": 6}}).json()["id"]
    _running(api, hosts, job_id, min_epoch=2)

    hosts.s3_proc.send_signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        answers = []
        while time.monotonic() - frozen_at < 20:
            response = api.get(f"/v1/jobs/{done}/weights")
            answers.append(response.status_code)
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert api.get(f"/v1/jobs/{job_id}").status_code == 200  # the record lives in Redis
    finally:
        hosts.s3_proc.send_signal(signal.SIGCONT)
    assert len(answers) >= 2

    job = wait_for_job(api, job_id, timeout=120)
    assert job["attempt"] >= 2, "the storage failure ended the first attempt"
    if job["status"] == "failed":
        assert job["error"]["type"] == "storage_unavailable", job
        assert api.get(f"/v1/jobs/{job_id}/weights").status_code == 409
    else:
        assert job["status"] == "succeeded", hosts.service.logs()
        assert len(_tensors(api, job_id)) == 6
        assert json.loads(api.get(f"/v1/jobs/{job_id}/weights", params={"format": "json"}).content)
    # Every weights object in the bucket is whole, whichever attempt wrote it.
    for key in hosts.keys("jobs/"):
        if key.endswith("weights.npz"):
            body = hosts.s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{key}")["Body"].read()
            with np.load(io.BytesIO(body), allow_pickle=False) as npz:
                assert npz.files
    assert api.get(f"/v1/jobs/{done}/weights").status_code == 200
