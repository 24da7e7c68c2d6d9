"""Celery tasks. Like web views: decode the message, call the runner, map the outcome."""

from __future__ import annotations

import logging

from celery import Task

from store.queue import RUN_JOB
from store.redis import connect
from worker.app import app, settings
from worker.runner import JobRunner

log = logging.getLogger(__name__)
_runner: JobRunner | None = None


def runner() -> JobRunner:
    """One runner (and Redis connection pool) per worker process."""
    global _runner
    if _runner is None:
        assert settings.redis_url
        _runner = JobRunner(settings, connect(settings.redis_url))
    return _runner


@app.task(name=RUN_JOB, bind=True, max_retries=None)
def run_job(self: Task, job_id: str) -> str:
    """Run (or resume) the job ``job_id``; safe to deliver more than once."""
    outcome = runner().run(job_id)
    if outcome.status == "leased":
        # Another attempt still holds a live lease: look again once it could have expired.
        raise self.retry(countdown=settings.lease_seconds)
    log.info("job %s: %s", job_id, outcome.status)
    return outcome.status
