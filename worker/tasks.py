"""Celery tasks. Like web views: decode the message, call the runner, map the outcome."""

from __future__ import annotations

import logging

from celery import Task

from store.queue import RUN_JOB
from trainapi import logs
from worker.app import app, requeue, settings, stores
from worker.runner import JobRunner

log = logging.getLogger(__name__)
_runners: dict[str, JobRunner] = {}


def runner(worker: str) -> JobRunner:
    """One runner per worker name in this process."""
    if worker not in _runners:
        _runners[worker] = JobRunner(settings, stores, worker=worker, requeue=requeue)
    return _runners[worker]


@app.task(name=RUN_JOB, bind=True, max_retries=None)
def run_job(self: Task, job_id: str) -> str:
    """Run (or resume) the job ``job_id``; safe to deliver more than once."""
    with logs.bind(job_id=job_id):
        outcome = runner(self.request.hostname or "worker").run(job_id)
        if outcome.status == "leased":
            # Another attempt still holds a live lease: look again once it could have run out.
            raise self.retry(countdown=outcome.retry_after + 0.5)
        log.info("job %s: %s", job_id, outcome.status)
    return outcome.status
