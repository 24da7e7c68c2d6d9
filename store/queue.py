"""The Celery wiring both sides share: the broker settings, the queue, the task names, the one sender.

The API sends new jobs and the workers send jobs again (a reaped lease, a
drained worker, a sweep's next trials) through :func:`send_run_job`, so every
message carries the same hard time limit. The worker builds its full app on
top of :func:`celery_app` (see ``worker/app.py``); the API only needs it as a
producer, and never imports worker code.
"""

from __future__ import annotations

from celery import Celery

from store.jobs import JobStore

QUEUE = "trainapi"
RUN_JOB = "trainapi.run_job"
#: Celery's hard time limit of a ``run_job`` message is the job's own limit plus this margin:
#: a backstop for an attempt that hangs past the engine's own deadline.
TIME_LIMIT_MARGIN_SECONDS = 600.0


def celery_app(broker_url: str, *, max_runtime_seconds: float) -> Celery:
    """A Celery app on Redis with JSON messages and a visibility timeout above the longest job."""
    app = Celery("trainapi", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        # Redis redelivers an unacknowledged message after this; recovery of dead
        # attempts is the job lease's business, so keep it above any job's runtime.
        broker_transport_options={"visibility_timeout": int(max_runtime_seconds) + 3600},
    )
    return app


def send_run_job(app: Celery, jobs: JobStore, job_id: str, *, max_runtime_seconds: float) -> None:
    """Send ``trainapi.run_job(job_id)`` by name, with a hard time limit above the job's own limit (seconds).

    Once the broker has the message the job leaves the store's unsent set
    (:data:`store.jobs.UNSENT`); a sender that dies before that is covered by
    the maintenance thread, which sends the job again after a lease's length.
    """
    app.send_task(RUN_JOB, args=[job_id], time_limit=max_runtime_seconds + TIME_LIMIT_MARGIN_SECONDS)
    jobs.sent(job_id)


class Requeue:
    """Sends a job that is already stored to the workers again, with the time limit of its own spec.

    Parameters
    ----------
    app : Celery
    jobs : JobStore
    default_max_runtime_seconds : float
        The service's upper bound, used when the record is gone (the task then finds nothing to run).
    """

    def __init__(self, app: Celery, jobs: JobStore, default_max_runtime_seconds: float) -> None:
        self.app = app
        self.jobs = jobs
        self.default_max_runtime_seconds = default_max_runtime_seconds

    def __call__(self, job_id: str) -> None:
        limit = self.jobs.max_runtime_seconds(job_id)
        send_run_job(self.app, self.jobs, job_id, max_runtime_seconds=limit or self.default_max_runtime_seconds)
