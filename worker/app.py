"""The worker's Celery app, configured in one place.

``celery -A worker.app worker`` (or ``trainapi worker``) runs it. Settings are
read here, at the edge of the worker process, and the process's stores and
its sender of jobs (:class:`store.queue.Requeue`) are made here: the task
module and the maintenance thread both take them from this module.
"""

from __future__ import annotations

import ast
import contextlib
import logging

from celery import signals

from store.artifacts import Artifacts
from store.queue import RUN_JOB, Requeue, celery_app
from store.stores import Stores
from trainapi import logs
from trainapi.settings import Settings

settings = Settings()
if not settings.redis_url:
    raise SystemExit("TRAINAPI_REDIS_URL is not set; `trainapi serve` sets it for the workers it starts")

app = celery_app(settings.redis_url, max_runtime_seconds=settings.max_runtime_seconds)
app.conf.update(
    include=["worker.tasks"],
    # At-least-once delivery: acknowledge after the task, give a killed child's
    # job back to the queue, take one message at a time.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_concurrency=settings.worker_concurrency,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
)
# Connections are opened on first use, and redis-py opens fresh ones in each forked pool child.
# Workers keep datasets read from object storage in a bounded local cache.
stores = Stores.open(settings.redis_url, Artifacts.open(settings, cache_bytes=settings.cache_max_bytes))
requeue = Requeue(app, stores.jobs, settings.max_runtime_seconds)


def _task_job_id(record: logging.LogRecord) -> bool:
    """Give Celery's own lines about a run_job task (received, succeeded, retry) the job's id as a field."""
    data = getattr(record, "data", None)
    if isinstance(data, dict) and data.get("name") == RUN_JOB and getattr(record, "job_id", None) is None:
        with contextlib.suppress(ValueError, SyntaxError, TypeError, IndexError):
            record.job_id = str(ast.literal_eval(str(data["args"]))[0])  # the repr of the task's args
    return True


if settings.log_format == "json":
    # Now, while Celery starts (its first warnings come before it sets up logging), and again in place of
    # its own setup (a receiver of setup_logging replaces it); celeryd_init comes before the banner.

    def _json_logs(loglevel: int | str | None = None, **_: object) -> None:
        logs.configure("json", loglevel or logging.INFO)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_task_job_id)

    _json_logs()
    signals.setup_logging.connect(_json_logs, weak=False)

    @signals.celeryd_init.connect
    def _no_banner(instance: object = None, **_: object) -> None:
        if instance is not None:
            instance.quiet = True  # type: ignore[attr-defined]  # the banner is not a log line


@signals.worker_ready.connect
def _start_maintenance(sender: object = None, **_: object) -> None:
    from worker import maintenance

    maintenance.start(settings, stores, getattr(sender, "hostname", None) or "worker", requeue)


@signals.worker_shutting_down.connect
def _drain(**_: object) -> None:
    from worker import maintenance

    maintenance.drain()


@signals.worker_shutdown.connect
def _stop_maintenance(**_: object) -> None:
    from worker import maintenance

    maintenance.stop()
