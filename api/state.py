"""What the app holds for its lifetime: settings, Redis-backed stores, the task producer."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery

from api.auth import KeyRing
from api.catalog import Catalog
from engine.inference import Model
from store.artifacts import Artifacts
from store.datasets import DatasetStore
from store.jobs import JobStore
from store.queue import RUN_JOB, celery_app
from store.redis import connect
from store.sweeps import SweepStore
from trainapi.settings import Settings

MODEL_CACHE_SIZE = 32


@dataclass
class AppState:
    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    sweeps: SweepStore
    datasets: DatasetStore
    artifacts: Artifacts
    catalog: Catalog
    keys: KeyRing
    producer: Celery
    models: OrderedDict[str, Model] = field(default_factory=OrderedDict)

    @classmethod
    def build(cls, settings: Settings) -> AppState:
        if not settings.redis_url:
            raise RuntimeError("TRAINAPI_REDIS_URL is not set; `trainapi serve` sets it for the API it starts")
        client = connect(settings.redis_url)
        artifacts = Artifacts(settings.data_dir)
        datasets = DatasetStore(client, artifacts)
        jobs = JobStore(client)
        return cls(
            settings=settings,
            redis=client,
            jobs=jobs,
            sweeps=SweepStore(client, jobs),
            datasets=datasets,
            artifacts=artifacts,
            catalog=Catalog(datasets),
            keys=KeyRing(settings.api_keys_file),
            producer=celery_app(settings.redis_url, max_runtime_seconds=settings.max_runtime_seconds),
        )

    def enqueue(self, job_id: str, max_runtime_seconds: float) -> None:
        """Send the job to the workers by task name (the API never imports worker code)."""
        self.producer.send_task(RUN_JOB, args=[job_id], time_limit=max_runtime_seconds + 600)

    def cached_model(self, job_id: str, load: Any) -> Model:
        """A job's exported model, loaded once (weights never change after success)."""
        model = self.models.get(job_id)
        if model is None:
            model = load()
            self.models[job_id] = model
            while len(self.models) > MODEL_CACHE_SIZE:
                self.models.popitem(last=False)
        else:
            self.models.move_to_end(job_id)
        return model
