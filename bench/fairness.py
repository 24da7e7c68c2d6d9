"""Benchmark fairness under floods: can one tenant's traffic slow another tenant down?

Usage::

    python bench/fairness.py                      # streams, predict and webhooks: a few minutes
    python bench/fairness.py --only streams,predict
    python bench/fairness.py --json out.json

Each scenario starts its own service in a temporary directory, as ``trainapi
serve`` does (``trainapi.processes.LocalService``: a real redis-server, the
API under its own server, workers and the webhook consumer as needed), with
API keys for two tenants, A (the flood) and B (the victim). Targets are
printed as met or missed, never enforced.

- ``streams``: B's ``GET /v1/jobs`` latency (sequential requests) alone, then
  while A opens ``--streams`` event streams at once on its queued job and
  holds every one the API admits. Run twice: with the default caps (most of
  A's streams get 429), and with the per-tenant cap lifted to ``--streams``
  (every stream open on the event loop). Target: B's p50 at most 3 times its idle p50.
- ``predict``: single-row ``POST /v1/jobs/{id}/predict`` of a trained MLP
  for ``--seconds`` from 4, then 50 concurrent connections of ``wrk`` (Debian's
  package; a load generator in Python is slower than the API at 50 clients):
  requests/s, p50, p99. Target: 50 clients keep ≥ 80% of the throughput of 4.
- ``webhooks``: B's delivery latency alone and behind A's 16 receivers that
  drip their status line (``bench/fairness_webhooks.py``). Target: ≤ 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "bench", REPO_ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import httpx  # noqa: E402
from service import percentile  # noqa: E402

from trainapi.keys import add_key  # noqa: E402
from trainapi.processes import LocalService  # noqa: E402

STREAMS_TARGET_RATIO = 3.0
PREDICT_TARGET_SHARE = 0.8


@contextmanager
def two_tenants(workers: int, env: dict[str, str] | None = None) -> Iterator[tuple[LocalService, dict[str, str]]]:
    with tempfile.TemporaryDirectory(prefix="trainapi-bench-fairness-") as tmp:
        root = Path(tmp)
        keys = {tenant: add_key(root / "api_keys", tenant) for tenant in ("a", "b")}
        service = LocalService(root, env_extra={"TRAINAPI_API_KEYS_FILE": str(root / "api_keys"), **(env or {})})
        try:
            service.start(workers=workers)
            yield service, keys
        finally:
            service.stop()


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _list_latencies(client: httpx.Client, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get("/v1/jobs")
        out.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return out


class StreamFlood(threading.Thread):
    """Tenant A opens ``n`` event streams at once (asyncio, one connection each) and holds the admitted ones."""

    def __init__(self, url: str, key: str, job_id: str, n: int) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.job_id, self.n = url, key, job_id, n
        self.statuses: list[int | str] = []
        self.ready = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        asyncio.run(self._flood())

    async def _flood(self) -> None:
        limits = httpx.Limits(max_connections=self.n + 10, max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=self.url, headers=_headers(self.key), limits=limits, timeout=60
        ) as client:
            opened: list[Any] = []

            async def one() -> None:
                try:
                    context = client.stream("GET", f"/v1/jobs/{self.job_id}/events")
                    response = await context.__aenter__()
                    self.statuses.append(response.status_code)
                    if response.status_code == 200:
                        opened.append(context)
                    else:
                        await context.__aexit__(None, None, None)
                except httpx.HTTPError as exc:
                    self.statuses.append(type(exc).__name__)

            await asyncio.gather(*(one() for _ in range(self.n)))
            self.ready.set()
            while not self.done.is_set():
                await asyncio.sleep(0.1)
            for context in opened:
                await context.__aexit__(None, None, None)


def bench_streams(n_streams: int, samples: int, lift_cap: bool) -> dict[str, Any]:
    env = (
        {"TRAINAPI_MAX_STREAMS_PER_TENANT": str(n_streams), "TRAINAPI_MAX_STREAMS": str(n_streams)} if lift_cap else {}
    )
    with two_tenants(workers=0, env=env) as (service, keys):
        with httpx.Client(base_url=service.url, headers=_headers(keys["a"]), timeout=30) as a:
            job_id = a.post("/v1/jobs", json={"dataset": "iris"}).json()["id"]  # no worker: stays queued
        with httpx.Client(base_url=service.url, headers=_headers(keys["b"]), timeout=30) as b:
            for _ in range(5):  # B has jobs to list too
                b.post("/v1/jobs", json={"dataset": "iris"})
            _list_latencies(b, 20)  # warm-up
            idle = _list_latencies(b, samples)
            flood = StreamFlood(service.url, keys["a"], job_id, n_streams)
            flood.start()
            if not flood.ready.wait(120):
                raise TimeoutError("the streams did not open")
            try:
                busy = _list_latencies(b, samples)
            finally:
                flood.done.set()
                flood.join(60)
    admitted = sum(1 for s in flood.statuses if s == 200)
    refused = sum(1 for s in flood.statuses if s == 429)
    return {
        "streams": n_streams,
        "cap_lifted": lift_cap,
        "admitted": admitted,
        "refused_429": refused,
        "other": [s for s in flood.statuses if s not in (200, 429)][:5],
        "idle_p50_ms": statistics.median(idle) * 1000,
        "busy_p50_ms": statistics.median(busy) * 1000,
        "busy_p99_ms": percentile(busy, 0.99) * 1000,
    }


#: wrk's request: one single-row prediction.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


def _wrk(url: str, script: Path, clients: int, seconds: float) -> dict[str, Any]:
    """One wrk run (a C load generator: a Python one tops out below the API at 50 clients)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        value = next(line.split()[1] for line in out.splitlines() if line.strip().startswith(label))
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
        unit = next(u for u in ("us", "ms", "s") if value.endswith(u))
        return float(value[: -len(unit)]) * scale[unit]

    errors = sum(int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line)
    rps = float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))
    return {"clients": clients, "requests_per_s": rps, "p50_ms": ms("50%"), "p99_ms": ms("99%"), "errors": errors}


def bench_predict(seconds: float, client_counts: tuple[int, ...] = (4, 50)) -> list[dict[str, Any]]:
    if shutil.which("wrk") is None:
        raise SystemExit("the predict scenario needs wrk (apt-get install wrk)")
    with two_tenants(workers=1) as (service, keys):
        with httpx.Client(base_url=service.url, headers=_headers(keys["b"]), timeout=30) as b:
            body = {"dataset": "iris", "model": {"type": "mlp", "hidden_layers": [64, 64]}, "training": {"epochs": 20}}
            job_id = b.post("/v1/jobs", json=body).json()["id"]
            deadline = time.monotonic() + 300
            while b.get(f"/v1/jobs/{job_id}").json()["status"] != "succeeded":
                if time.monotonic() > deadline:
                    raise TimeoutError("the model did not train")
                time.sleep(0.2)
            row = [5.1, 3.5, 1.4, 0.2]
            assert b.post(f"/v1/jobs/{job_id}/predict", json={"inputs": [row]}).status_code == 200
        script = service.root / "predict.lua"
        script.write_text(WRK_SCRIPT % keys["b"])
        url = f"{service.url}/v1/jobs/{job_id}/predict"
        return [_wrk(url, script, clients, seconds) for clients in client_counts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="streams,predict,webhooks")
    parser.add_argument("--streams", type=int, default=1000, help="tenant A's event streams")
    parser.add_argument("--samples", type=int, default=300, help="B's GET /v1/jobs, idle and under the flood")
    parser.add_argument("--seconds", type=float, default=10.0, help="each predict load's duration")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    results: dict[str, Any] = {"load_average_before": os.getloadavg()}
    if "streams" in only:
        results["streams"] = [bench_streams(args.streams, args.samples, lift) for lift in (False, True)]
        print("| A's streams | per-tenant cap | admitted | 429 | B idle p50 | B under flood p50 (p99) | ratio | met |")
        print("|---|---|---|---|---|---|---|---|")
        for r in results["streams"]:
            ratio = r["busy_p50_ms"] / r["idle_p50_ms"]
            met = "yes" if ratio <= STREAMS_TARGET_RATIO else "**no**"
            cap = f"{r['streams']} (lifted)" if r["cap_lifted"] else "50 (default)"
            print(
                f"| {r['streams']} | {cap} | {r['admitted']} | {r['refused_429']} | {r['idle_p50_ms']:.1f} ms "
                f"| {r['busy_p50_ms']:.1f} ms ({r['busy_p99_ms']:.1f} ms) | {ratio:.2f}x | {met} |"
            )
        print()
    if "predict" in only:
        results["predict"] = rows = bench_predict(args.seconds)
        share = rows[-1]["requests_per_s"] / rows[0]["requests_per_s"]
        print("| clients | requests/s | p50 | p99 | errors |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['clients']} | {r['requests_per_s']:.0f} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms "
                f"| {r['errors']} |"
            )
        met = "yes" if share >= PREDICT_TARGET_SHARE else "**no**"
        print(f"\n{rows[-1]['clients']} clients keep {share:.0%} of the throughput of {rows[0]['clients']}: {met}\n")
    if "webhooks" in only:
        from fairness_webhooks import run_webhook_fairness

        results["webhooks"] = hooks = run_webhook_fairness()
        met = "yes" if max(hooks["behind"]) <= 2.0 else "**no**"
        print(
            f"webhooks: B alone {statistics.median(hooks['alone']) * 1000:.0f} ms, behind A's "
            f"{hooks['receivers']} dripping receivers {statistics.median(hooks['behind']) * 1000:.0f} ms "
            f"(max {max(hooks['behind']) * 1000:.0f} ms; target ≤ 2 s: {met})"
        )
    results["load_average_after"] = os.getloadavg()
    print(f"load average before {results['load_average_before']}, after {results['load_average_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
