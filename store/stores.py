"""The store objects of one process, wired once: the API, the runner and the maintenance thread all use this."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from store.artifacts import Artifacts
from store.catalog import Catalog
from store.datasets import DatasetStore
from store.jobs import JobStore
from store.redis import connect
from store.sweeps import SweepStore
from store.webhooks import WebhookStore


@dataclass(frozen=True)
class Stores:
    """Records in one Redis and objects in one storage (the data directory or a bucket).

    ``redis`` is the client every store shares (one connection pool per process).
    """

    redis: redis.Redis
    artifacts: Artifacts
    jobs: JobStore
    sweeps: SweepStore
    datasets: DatasetStore
    catalog: Catalog
    webhooks: WebhookStore

    @classmethod
    def open(cls, redis_url: str, artifacts: Artifacts) -> Stores:
        """Connect to ``redis_url`` (lazily: nothing is sent until the first command) over ``artifacts``."""
        client = connect(redis_url)
        jobs = JobStore(client, artifacts)
        datasets = DatasetStore(client, artifacts)
        return cls(
            redis=client,
            artifacts=artifacts,
            jobs=jobs,
            sweeps=SweepStore(client, jobs),
            datasets=datasets,
            catalog=Catalog(datasets),
            webhooks=WebhookStore(client),
        )

    def expire_finished(self, cutoff: float, limit: int = 100) -> list[str]:
        """Delete jobs outside sweeps that finished, and sweeps that ended, before ``cutoff``.

        A sweep goes with its trials. Objects go first, then records, then the
        sweep's own record, so an interrupted pass leaves the sweep to the
        next. Returns the ids deleted (jobs and sweeps). Safe to run from
        several workers at once: every step is idempotent.
        """
        expired = self.jobs.finished_before(cutoff, limit)
        for job_id in expired:
            self.artifacts.delete_job(job_id)
            self.jobs.purge(job_id)
        for sweep_id in self.sweeps.finished_before(cutoff, limit):
            for trial in self.sweeps.trial_ids(sweep_id):
                self.artifacts.delete_job(trial)
                self.jobs.purge(trial)
            self.sweeps.purge(sweep_id)
            expired.append(sweep_id)
        return expired
