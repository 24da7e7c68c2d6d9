"""The server's ``trainapi`` commands: serve everything locally, or run the API, a worker or the webhook
consumer on their own; manage keys.

The ``trainapi`` console script belongs to the client distribution (``trainapi_client/cli.py``, with
``datasets``, ``jobs`` and ``sweeps``); this distribution adds its commands through the
``trainapi.commands`` entry point (``pyproject.toml``). ``python -m trainapi.cli`` runs the same
``trainapi`` with these commands, installed or not.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from trainapi_client import cli as client_cli

from trainapi import logs
from trainapi.keys import KeyRing, add_key

if TYPE_CHECKING:
    from trainapi.settings import Settings

log = logging.getLogger("trainapi")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _open_mode(settings: Settings) -> bool:
    return KeyRing(settings.api_keys_file).open_mode


def _safe_host(settings: Settings, host: str) -> str:
    """``host``, or loopback while no request could authenticate from elsewhere (open mode, or no key yet)."""
    ring = KeyRing(settings.api_keys_file)
    if host not in LOOPBACK and (ring.open_mode or not ring.current()):
        log.warning("no API key configured: refusing to listen on %s; binding to 127.0.0.1", host)
        return "127.0.0.1"
    return host


def serve(settings: Settings, host: str, port: int, workers: int) -> int:
    """Redis (embedded unless TRAINAPI_REDIS_URL is set), ``workers`` Celery workers, the webhook consumer, the API;
    each restarted when it exits (``trainapi/supervisor.py``)."""
    # Here, not at the top: the client commands start faster without Redis.
    from trainapi import processes
    from trainapi.supervisor import AlreadyServing, Child, lock_data_dir, supervise

    settings.ensure_dirs()
    data_dir = settings.data_dir.resolve()
    try:
        lock = lock_data_dir(data_dir)
    except AlreadyServing as exc:
        log.error("%s", exc)
        return 1
    host = _safe_host(settings, host)
    if _open_mode(settings):
        log.warning("no API keys configured: open single-tenant mode on %s", host)
    children: list[Child] = []
    url = settings.redis_url
    try:
        with lock:
            if not url:
                redis_port = processes.free_port()
                url = f"redis://127.0.0.1:{redis_port}/0"
                redis_log = data_dir / "logs" / "redis.log"

                def start_redis() -> subprocess.Popen[bytes]:
                    return processes.start_redis(data_dir / "redis", port=redis_port, log_file=redis_log)[0]

                children.append(Child("redis-server", start_redis))
                children[-1].launch()
                log.info("embedded redis-server at %s (AOF in %s, log %s)", url, data_dir / "redis", redis_log)
            threads = processes.blas_threads(workers * settings.worker_concurrency)
            env = processes.child_env(url, data_dir, threads)
            for i in range(workers):
                name = f"worker{i + 1}"
                children.append(
                    Child(
                        name,
                        lambda name=name: processes.start_worker(  # type: ignore[misc]
                            env, name=name, concurrency=settings.worker_concurrency
                        ),
                    )
                )
            children.append(Child("webhooks", lambda: processes.start_webhooks(env)))
            children.append(Child("api", lambda: processes.start_api(env, host=host, port=port)))
            for child in children[1 if not settings.redis_url else 0 :]:
                child.launch()
            log.info("trainapi on http://%s:%d (dashboard at /ui/, docs at /docs); Ctrl-C stops it", host, port)
            return supervise(children)
    finally:
        # The API first (no new work), then workers (they checkpoint), Redis last.
        order = {"api": 0, "redis-server": 2}
        for child in sorted(children, key=lambda c: order.get(c.name, 1)):
            if child.proc is not None and child.proc.poll() is None:
                log.info("stopping %s", child.name)
                processes.stop(child.proc, timeout=60 if child.name != "redis-server" else 30)


def run_api(settings: Settings, host: str, port: int) -> int:
    """The API under uvicorn with its connection limits (``api/server.py``), in place of this process."""
    from trainapi import processes

    if not settings.redis_url:
        log.error("TRAINAPI_REDIS_URL is not set (or use `trainapi serve`)")
        return 2
    settings.ensure_dirs()
    host = _safe_host(settings, host)
    os.chdir(processes.ROOT)
    os.execv(sys.executable, [sys.executable, "-m", "api.server", "--host", host, "--port", str(port)])
    return 0  # not reached


def run_worker(settings: Settings, concurrency: int) -> int:
    from trainapi import processes

    if not settings.redis_url:
        log.error("TRAINAPI_REDIS_URL is not set (or use `trainapi serve`)")
        return 2
    settings.ensure_dirs()
    for var, threads in processes.blas_env(processes.blas_threads(concurrency)).items():
        os.environ.setdefault(var, threads)
    args = processes.worker_argv(concurrency)
    os.chdir(processes.ROOT)
    os.execv(args[0], args)
    return 0  # not reached


def run_webhooks(settings: Settings) -> int:
    """The webhook delivery consumer alone (compose runs one beside the workers)."""
    from trainapi import processes

    if not settings.redis_url:
        log.error("TRAINAPI_REDIS_URL is not set (or use `trainapi serve`)")
        return 2
    os.chdir(processes.ROOT)
    os.execv(sys.executable, [sys.executable, "-m", "api.webhooks"])
    return 0  # not reached


def keys_add(settings: Settings, tenant: str) -> int:

    path = settings.api_keys_file or (settings.data_dir / "api_keys")
    if settings.api_keys_file is None:
        log.warning("TRAINAPI_API_KEYS_FILE is not set; writing %s (set the variable to use it)", path)
    try:
        key = add_key(path, tenant)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    print(key)
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve``, ``api``, ``worker``, ``webhooks`` and ``keys`` to the ``trainapi`` parser.

    Defaults left unset here come from the settings (``TRAINAPI_HOST``, ``TRAINAPI_PORT``, ...) when the
    command runs: reading them is slow, and the client commands never need them.
    """
    p_serve = sub.add_parser("serve", help="Redis + workers + API on this machine")
    p_api = sub.add_parser("api", help="the HTTP API alone (needs TRAINAPI_REDIS_URL)")
    for p in (p_serve, p_api):
        p.add_argument("--host", help="default: $TRAINAPI_HOST, else 127.0.0.1")
        p.add_argument("--port", type=int, help="default: $TRAINAPI_PORT, else 8000")
    p_serve.add_argument("--workers", type=int, help="default: $TRAINAPI_WORKERS, else 1")
    p_worker = sub.add_parser("worker", help="a Celery worker alone (needs TRAINAPI_REDIS_URL)")
    p_worker.add_argument("--concurrency", type=int, help="default: $TRAINAPI_WORKER_CONCURRENCY, else 1")
    p_webhooks = sub.add_parser("webhooks", help="the webhook delivery consumer alone (needs TRAINAPI_REDIS_URL)")
    p_keys = sub.add_parser("keys", help="API keys")
    keys_sub = p_keys.add_subparsers(dest="keys_command", required=True)
    p_add = keys_sub.add_parser("add", help="create a key for TENANT, print it, store its hash")
    p_add.add_argument("tenant")
    for p in (p_serve, p_api, p_worker, p_webhooks, p_add):
        p.set_defaults(main=run)


def run(args: argparse.Namespace) -> int:
    """Run the server command ``args`` selected; its exit status."""
    from trainapi.settings import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    logs.configure(settings.log_format)
    if args.command == "serve":
        workers = args.workers if args.workers is not None else settings.workers
        return serve(settings, args.host or settings.host, _or(args.port, settings.port), max(1, workers))
    if args.command == "api":
        return run_api(settings, args.host or settings.host, _or(args.port, settings.port))
    if args.command == "worker":
        return run_worker(settings, max(1, _or(args.concurrency, settings.worker_concurrency)))
    if args.command == "webhooks":
        return run_webhooks(settings)
    return keys_add(settings, args.tenant)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def main(argv: Sequence[str] | None = None) -> int:
    """``trainapi`` with the server's commands, whether or not its entry point is installed."""
    return client_cli.main(argv, extra={"server": add_parsers})


if __name__ == "__main__":
    sys.exit(main())
