"""``trainapi``: serve everything locally, or run the API or a worker on their own; manage keys;
use the service from the terminal (``datasets``, ``jobs``, ``sweeps``: ``trainapi/commands.py``)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from trainapi import commands, logs
from trainapi.keys import KeyRing, add_key
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
    """Redis (embedded unless TRAINAPI_REDIS_URL is set), ``workers`` Celery workers, the webhook consumer, the API."""
    from trainapi import processes  # here, not at the top: the client commands start faster without Redis

    settings.ensure_dirs()
    data_dir = settings.data_dir.resolve()
    host = _safe_host(settings, host)
    if _open_mode(settings):
        log.warning("no API keys configured: open single-tenant mode on %s", host)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    redis_proc = None
    url = settings.redis_url
    try:
        if not url:
            redis_proc, url = processes.start_redis(data_dir / "redis")
            log.info("embedded redis-server at %s (AOF in %s)", url, data_dir / "redis")
        threads = processes.blas_threads(workers * settings.worker_concurrency)
        env = processes.child_env(url, data_dir, threads)
        for i in range(workers):
            name = f"worker{i + 1}"
            children.append((name, processes.start_worker(env, name=name, concurrency=settings.worker_concurrency)))
        children.append(("webhooks", processes.start_webhooks(env)))
        children.append(("api", processes.start_api(env, host=host, port=port)))
        log.info("trainapi on http://%s:%d (docs at /docs); Ctrl-C stops it", host, port)
        return _supervise(children)
    finally:
        # The API first (no new work), then workers (they checkpoint), Redis last.
        for name, proc in sorted(children, key=lambda c: c[0] != "api"):
            log.info("stopping %s", name)
            processes.stop(proc, timeout=60)
        if redis_proc is not None:
            log.info("stopping redis-server")
            processes.stop(redis_proc)


def _supervise(children: list[tuple[str, subprocess.Popen[bytes]]]) -> int:
    stopping = {"signal": 0}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stopping["signal"]:
        for name, proc in children:
            if proc.poll() is not None:
                log.error("%s exited with status %s; stopping the service", name, proc.returncode)
                return 1
        time.sleep(0.2)
    return 0


def run_api(settings: Settings, host: str, port: int) -> int:
    import uvicorn

    if not settings.redis_url:
        log.error("TRAINAPI_REDIS_URL is not set (or use `trainapi serve`)")
        return 2
    settings.ensure_dirs()
    uvicorn.run("api.main:app", host=_safe_host(settings, host), port=port, access_log=False)
    return 0


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


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    logs.configure(settings.log_format)
    parser = argparse.ArgumentParser(prog="trainapi", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="Redis + workers + API on this machine")
    p_api = sub.add_parser("api", help="the HTTP API alone (needs TRAINAPI_REDIS_URL)")
    for p in (p_serve, p_api):
        p.add_argument("--host", default=settings.host)
        p.add_argument("--port", type=int, default=settings.port)
    p_serve.add_argument("--workers", type=int, default=settings.workers)
    p_worker = sub.add_parser("worker", help="a Celery worker alone (needs TRAINAPI_REDIS_URL)")
    p_worker.add_argument("--concurrency", type=int, default=settings.worker_concurrency)
    sub.add_parser("webhooks", help="the webhook delivery consumer alone (needs TRAINAPI_REDIS_URL)")
    p_keys = sub.add_parser("keys", help="API keys")
    keys_sub = p_keys.add_subparsers(dest="keys_command", required=True)
    p_add = keys_sub.add_parser("add", help="create a key for TENANT, print it, store its hash")
    p_add.add_argument("tenant")
    commands.add_parsers(sub)
    args = parser.parse_args(argv)
    if hasattr(args, "run"):
        return commands.run(args)
    if args.command == "serve":
        return serve(settings, args.host, args.port, max(1, args.workers))
    if args.command == "api":
        return run_api(settings, args.host, args.port)
    if args.command == "worker":
        return run_worker(settings, max(1, args.concurrency))
    if args.command == "webhooks":
        return run_webhooks(settings)
    return keys_add(settings, args.tenant)


if __name__ == "__main__":
    sys.exit(main())
