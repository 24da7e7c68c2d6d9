"""Storage benchmark (SPEC §15): Redis bytes per finished job, a large weights download, checkpoint cost.

1. Redis bytes per finished job: a 20-epoch job on the local backend; ``MEMORY USAGE``
   of what Redis holds once it has finished (the record, its share of the
   retention index), against what the same job held before its metrics moved to
   storage (the same record and its metrics list, rebuilt from the stored records
   in scratch keys and measured the same way).
2. An 80 MB weights download through the API from S3 (moto's server on loopback):
   a job of 20M float32 parameters, then the API process's resident memory sampled
   every 5 ms while the npz streams to a client that discards it.
3. Per-epoch checkpoint cost of an MLP 784-256-10 (Adam): serialization, and one
   ``put`` to the data directory (temp file + fsync + rename) and to S3, against
   the epoch's own time.

    .venv/bin/python bench/storage.py            # about 3 minutes
    .venv/bin/python bench/storage.py --quick    # sections 1 and 3, smaller
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import httpx
import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engine
from store.storage import open_storage
from trainapi import processes

AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
BUCKET = "trainapi-bench"


def _wait(api: httpx.Client, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} did not finish within {timeout:g} s")


def _memory(client: redis.Redis, name: str) -> int:
    return int(client.memory_usage(name, samples=0) or 0)


def redis_bytes(root: Path, epochs: int) -> dict[str, Any]:
    """Bytes Redis holds for one finished job, now and with its metrics list as before."""
    svc = processes.LocalService(root).start(workers=1)
    try:
        client = redis.Redis.from_url(svc.redis_url, decode_responses=True)
        with httpx.Client(base_url=svc.url, timeout=60) as api:
            spec = {"dataset": "iris", "model": {"type": "mlp", "hidden_layers": [16]}, "training": {"epochs": epochs}}
            job_id = api.post("/v1/jobs", json=spec).json()["id"]
            assert _wait(api, job_id, 120)["status"] == "succeeded"
            deadline = time.monotonic() + 10
            while not client.hget(f"trainapi:job:{job_id}", "metrics_archived") and time.monotonic() < deadline:
                time.sleep(0.05)
            items = api.get(f"/v1/jobs/{job_id}/metrics").json()["items"]
        record = f"trainapi:job:{job_id}"
        after = _memory(client, record)
        finished = _memory(client, "trainapi:finished")  # one member: the whole set is this job's share
        # Before: the same hash without the marker, and the list the runner appended (compact JSON per epoch).
        fields = client.hgetall(record)
        fields.pop("metrics_archived", None)
        client.hset("bench:before", mapping=fields)
        client.rpush("bench:before:metrics", *(json.dumps(m) for m in items))
        before_record, before_list = _memory(client, "bench:before"), _memory(client, "bench:before:metrics")
        return {
            "epochs": len(items),
            "before": before_record + before_list,
            "before_record": before_record,
            "before_list": before_list,
            "after": after + finished,
            "after_record": after,
            "after_index": finished,
            "list_exists": bool(client.exists(f"{record}:metrics")),
        }
    finally:
        svc.stop()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def big_download(root: Path) -> dict[str, Any]:
    """Train a 20M-parameter float32 MLP with S3 storage, then download its npz through the API and watch RSS."""
    s3_proc, s3_url = processes.start_s3_server(root / "s3.log")
    boto3.client("s3", endpoint_url=s3_url, **_boto_credentials()).create_bucket(Bucket=BUCKET)
    env = {
        **AWS,
        "TRAINAPI_STORAGE_URL": f"s3://{BUCKET}/bench",
        "TRAINAPI_S3_ENDPOINT_URL": s3_url,
        "TRAINAPI_LEASE_SECONDS": "120",
    }
    svc = processes.LocalService(root, env_extra=env, threads=2)
    try:
        svc.start_redis()
        svc.start_worker("w1", data_dir=root / "worker")
        svc.start_api(data_dir=root / "api")
        assert svc.api is not None
        with httpx.Client(base_url=svc.url, timeout=600) as api:
            spec = {
                "dataset": "digits",
                "model": {"type": "mlp", "hidden_layers": [4460, 4400]},
                # Plain SGD: the checkpoint holds the parameters alone. Batches of 64 keep the lease renewed
                # (the runner renews it from its stop poll, every 16 batches).
                "optimizer": {"name": "sgd", "learning_rate": 0.001, "momentum": 0.0},
                "training": {"epochs": 1, "batch_size": 64, "dtype": "float32"},
            }
            created = api.post("/v1/jobs", json=spec)
            assert created.status_code == 202, created.text
            small = api.post("/v1/jobs", json={"dataset": "iris", "training": {"epochs": 1}}).json()["id"]
            job_id = created.json()["id"]
            started = time.monotonic()
            job = _wait(api, job_id, 900)
            train_seconds = time.monotonic() - started
            assert job["status"] == "succeeded", job
            assert _wait(api, small, 60)["status"] == "succeeded"
            api.get(f"/v1/jobs/{small}/weights").raise_for_status()  # warm the download path

            pid = svc.api.pid
            baseline = _rss(pid)
            peak = [baseline]
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], _rss(pid))
                    time.sleep(0.005)

            sampler = threading.Thread(target=sample)
            sampler.start()
            size = 0
            t0 = time.perf_counter()
            with api.stream("GET", f"/v1/jobs/{job_id}/weights", params={"format": "npz"}) as response:
                response.raise_for_status()
                for chunk in response.iter_raw():
                    size += len(chunk)
            seconds = time.perf_counter() - t0
            done.set()
            sampler.join()
        params = sum((a + 1) * b for a, b in zip([64, 4460, 4400], [4460, 4400, 10], strict=True))
        return {
            "parameters": params,
            "bytes": size,
            "seconds": seconds,
            "rss_baseline": baseline,
            "rss_peak": peak[0],
            "growth": peak[0] - baseline,
            "train_seconds": train_seconds,
        }
    finally:
        svc.stop()
        processes.stop(s3_proc)


def _boto_credentials() -> dict[str, str]:
    return {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}


def checkpoint_cost(root: Path, epochs: int, samples: int) -> dict[str, Any]:
    """Per-epoch checkpoint serialization and put, local vs S3, for an MLP 784-256-10 with Adam."""
    s3_proc, s3_url = processes.start_s3_server(root / "s3-ckpt.log")
    os.environ.update(AWS)
    try:
        boto3.client("s3", endpoint_url=s3_url, **_boto_credentials()).create_bucket(Bucket=BUCKET)
        common = {"s3_connect_timeout": 5.0, "s3_read_timeout": 30.0, "s3_max_attempts": 4, "data_dir": root / "ckpt"}
        local = open_storage(SimpleNamespace(storage_url=None, s3_endpoint_url=None, **common))
        s3 = open_storage(SimpleNamespace(storage_url=f"s3://{BUCKET}/ckpt", s3_endpoint_url=s3_url, **common))
        rng = np.random.default_rng(0)
        X = rng.normal(size=(samples, 784))
        y = rng.integers(0, 10, size=samples)
        data = engine.Dataset("bench", X, y, tuple(f"x{i}" for i in range(784)), "label", "classification", "random")
        spec = engine.TrainSpec.from_dict(
            {"model": {"type": "mlp", "hidden_layers": [256]}, "training": {"epochs": epochs, "batch_size": 128}}
        )
        rows: dict[str, list[float]] = {"epoch": [], "serialize": [], "local": [], "s3": []}
        sizes: list[int] = []

        def on_epoch(record: dict[str, Any], trainer: Any) -> None:
            rows["epoch"].append(float(record["epoch_seconds"]))
            t0 = time.perf_counter()
            blob = trainer.checkpoint()
            rows["serialize"].append(time.perf_counter() - t0)
            sizes.append(len(blob))
            for name, storage in (("local", local), ("s3", s3)):
                t0 = time.perf_counter()
                storage.put(f"jobs/bench/attempt-1/checkpoint-{record['epoch']}.npz", blob)
                rows[name].append(time.perf_counter() - t0)

        engine.train(spec, data, on_epoch=on_epoch)
        return {name: statistics.median(values) for name, values in rows.items()} | {"bytes": sizes[-1]}
    finally:
        processes.stop(s3_proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="sections 1 and 3 only, smaller")
    parser.add_argument("--only", choices=["redis", "download", "checkpoint"], help="run one section")
    args = parser.parse_args()
    run = {args.only} if args.only else {"redis", "checkpoint"} if args.quick else {"redis", "download", "checkpoint"}
    with tempfile.TemporaryDirectory(prefix="trainapi-bench-storage-") as tmp:
        root = Path(tmp)
        if "redis" in run:
            _print_redis(redis_bytes(root / "redis-bytes", epochs=5 if args.quick else 20))
        if "download" in run:
            _print_download(big_download(root / "download"))
        if "checkpoint" in run:
            epochs, samples = (3, 2000) if args.quick else (8, 10000)
            _print_checkpoint(checkpoint_cost(root / "ckpt", epochs=epochs, samples=samples))


def _print_redis(r: dict[str, Any]) -> None:
    print("| Redis per finished job | before (record + metrics list) | after (record + index entry) |")
    print("|---|---|---|")
    print(
        f"| {r['epochs']}-epoch job | {r['before']:,} B ({r['before_record']:,} + {r['before_list']:,}) "
        f"| {r['after']:,} B ({r['after_record']:,} + {r['after_index']:,}) |"
    )
    print(
        f"metrics list still in Redis: {r['list_exists']}; one million such jobs: "
        f"{r['before'] * 1e6 / 1024**3:.1f} GiB before, {r['after'] * 1e6 / 1024**3:.1f} GiB after\n"
    )


def _print_download(d: dict[str, Any]) -> None:
    mib = 1024 * 1024
    print("| weights download through the API (S3 backend, npz) | value |")
    print("|---|---|")
    print(f"| parameters / file | {d['parameters']:,} float32 / {d['bytes'] / 1e6:.1f} MB |")
    print(f"| download time | {d['seconds']:.2f} s ({d['bytes'] / mib / d['seconds']:.0f} MiB/s) |")
    print(f"| API RSS before / peak | {d['rss_baseline'] / mib:.1f} / {d['rss_peak'] / mib:.1f} MiB |")
    print(f"| API RSS growth | {d['growth'] / mib:.1f} MiB (limit 32 MiB) |")
    print(f"| training the job (1 epoch, export, 3 formats to S3) | {d['train_seconds']:.0f} s |\n")


def _print_checkpoint(c: dict[str, Any]) -> None:
    print("| MLP 784-256-10, Adam, per epoch (median) | ms | share of the epoch |")
    print("|---|---|---|")
    print(f"| epoch (training + evaluation) | {c['epoch'] * 1e3:.1f} | — |")
    rows = [
        (f"checkpoint serialization ({c['bytes'] / 1e6:.2f} MB)", c["serialize"]),
        ("put: data directory (temp + fsync + rename)", c["local"]),
        ("put: S3 (moto on loopback)", c["s3"]),
    ]
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1e3:.1f} | {seconds / c['epoch']:.1%} |")


if __name__ == "__main__":
    main()
