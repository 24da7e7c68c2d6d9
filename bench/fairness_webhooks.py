"""Benchmark webhook fairness: does one tenant's hanging receivers delay another tenant's event?

Usage::

    python bench/fairness_webhooks.py                # 16 dripping receivers, 5 samples, about a minute
    python bench/fairness_webhooks.py --receivers 32 --samples 10
    python bench/fairness_webhooks.py --json out.json

The script starts its own service in a temporary directory, as ``trainapi
serve`` does (``trainapi.processes.LocalService``): a real redis-server, the
webhook delivery consumer and the API with the default delivery settings
(16 slots, a 10 s attempt deadline, 2 attempts per endpoint), no worker
(test events need none), API keys for two tenants and
``TRAINAPI_WEBHOOK_ALLOW_PRIVATE=true`` so the receivers may listen on
127.0.0.1.

Tenant A registers one endpoint on each of ``--receivers`` dripping
receivers (``tests/dripping_receiver.py``: real HTTP servers that send their
status line one byte per second and never finish it) and sends two test
events to each, so its deliveries want every slot. Tenant B has one endpoint
on an ordinary receiver (``tests/receiver.py``). B's latency — from just
before ``POST /v1/webhooks/{id}/test`` to the arrival at its receiver — is
measured ``--samples`` times alone first, then while A's attempts hang. The
target, 2 s, is printed as met or missed, never enforced.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
# Run from a checkout without installing: the repository root holds the packages, tests/ the receivers.
for path in (REPO_ROOT, REPO_ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import httpx  # noqa: E402
from dripping_receiver import DrippingReceiver  # noqa: E402
from receiver import Receiver  # noqa: E402

from trainapi.keys import add_key  # noqa: E402
from trainapi.processes import LocalService  # noqa: E402
from trainapi.settings import Settings  # noqa: E402

TARGET_SECONDS = 2.0
EVENTS_PER_RECEIVER = 2
#: How long a sample waits for B's event before calling it lost.
ARRIVAL_TIMEOUT = 120.0


def arrival(receiver: Receiver, webhook_id: str, timeout: float = ARRIVAL_TIMEOUT) -> float:
    """The arrival time of the request sent as ``webhook_id``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in receiver.items():
            if item.headers.get("webhook-id") == webhook_id:
                return item.at
        time.sleep(0.002)
    raise TimeoutError(f"the event did not arrive within {timeout:g} s")


def latencies(client: httpx.Client, receiver: Receiver, endpoint_id: str, samples: int) -> list[float]:
    """Seconds from just before each test event is requested to its arrival, one event at a time."""
    out = []
    for _ in range(samples):
        sent = time.time()
        webhook_id = client.post(f"/v1/webhooks/{endpoint_id}/test").json()["webhook_id"]
        out.append(arrival(receiver, webhook_id) - sent)
        time.sleep(0.05)
    return out


def hold(client: httpx.Client, drips: list[DrippingReceiver]) -> list[str]:
    """Tenant A's endpoints, one per dripping receiver, each sent :data:`EVENTS_PER_RECEIVER` test events.

    Returns once A's attempts hold half the delivery slots (what the consumer grants one tenant; a
    consumer without that share lets them take all the slots, which passes this too).
    """
    ids = []
    for drip in drips:
        endpoint = client.post("/v1/webhooks", json={"url": drip.url(), "events": ["*"]}).json()
        ids.append(endpoint["id"])
        for _ in range(EVENTS_PER_RECEIVER):
            client.post(f"/v1/webhooks/{endpoint['id']}/test")
    wanted = min(len(drips) * EVENTS_PER_RECEIVER, math.ceil(Settings().webhook_concurrency / 2))
    deadline = time.monotonic() + 60
    while sum(d.open_now() for d in drips) < wanted:
        if time.monotonic() > deadline:
            raise TimeoutError("tenant A's attempts did not start")
        time.sleep(0.05)
    return ids


def run_webhook_fairness(receivers: int = 16, samples: int = 5) -> dict[str, Any]:
    """B's delivery latencies alone and behind A's ``receivers`` dripping receivers, and what A held."""
    with tempfile.TemporaryDirectory(prefix="trainapi-bench-fairness-") as tmp:
        root = Path(tmp)
        keys_file = root / "api_keys"
        keys = {tenant: add_key(keys_file, tenant) for tenant in ("a", "b")}
        service = LocalService(
            root, env_extra={"TRAINAPI_WEBHOOK_ALLOW_PRIVATE": "true", "TRAINAPI_API_KEYS_FILE": str(keys_file)}
        )
        receiver = Receiver().start()
        drips = [DrippingReceiver().start() for _ in range(receivers)]
        service.start(workers=0)
        try:
            with (
                httpx.Client(base_url=service.url, timeout=30, headers={"Authorization": f"Bearer {keys['a']}"}) as a,
                httpx.Client(base_url=service.url, timeout=30, headers={"Authorization": f"Bearer {keys['b']}"}) as b,
            ):
                endpoint = b.post("/v1/webhooks", json={"url": receiver.url(), "events": ["*"]}).json()
                alone = latencies(b, receiver, endpoint["id"], samples)
                hold(a, drips)
                held_before = sum(d.open_now() for d in drips)
                behind = latencies(b, receiver, endpoint["id"], samples)
                held_after = sum(d.open_now() for d in drips)
        finally:
            for drip in drips:
                drip.stop()  # hangs up first, so the consumer's attempts end now rather than at their deadline
            receiver.stop()
            service.stop()
    return {
        "receivers": receivers,
        "events_per_receiver": EVENTS_PER_RECEIVER,
        "alone": alone,
        "behind": behind,
        "held": [held_before, held_after],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--receivers", type=int, default=16, help="tenant A's dripping receivers")
    parser.add_argument("--samples", type=int, default=5, help="B's events, alone and behind A")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = run_webhook_fairness(args.receivers, args.samples)
    behind = results["behind"]
    met = "yes" if max(behind) <= TARGET_SECONDS else "**no**"
    print(f"tenant A: {results['receivers']} dripping receivers, {EVENTS_PER_RECEIVER} events each; ", end="")
    print(f"connections A held while B was measured: {results['held'][0]}, then {results['held'][1]}")
    print()
    print("| A's dripping receivers | B alone (median) | B behind A (median) | B behind A (max) | target | met |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {results['receivers']} | {statistics.median(results['alone']) * 1000:.0f} ms "
        f"| {statistics.median(behind) * 1000:.0f} ms | {max(behind) * 1000:.0f} ms | ≤ 2 s | {met} |"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
