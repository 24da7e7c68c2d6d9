"""Celery workers: thin tasks that load a job by id and hand it to the runner."""
