"""The Celery wiring both sides share: the broker settings, the queue and the task names.

The API only needs a producer to send tasks by name; the worker builds its
full app on top of the same settings (see ``worker/app.py``).
"""

from __future__ import annotations

from celery import Celery

QUEUE = "trainapi"
RUN_JOB = "trainapi.run_job"


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
