"""What the app holds for its lifetime: settings, the stores, the dataset catalog, the keys, the task producer."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import anyio
import redis
from celery import Celery

from engine.inference import Model
from store.artifacts import Artifacts
from store.catalog import Catalog
from store.datasets import DatasetStore
from store.jobs import JobStore
from store.queue import celery_app
from store.storage import LocalStorage
from store.stores import Stores
from store.sweeps import SweepStore
from store.webhooks import WebhookStore
from trainapi.keys import KeyRing
from trainapi.settings import Settings

MODEL_CACHE_SIZE = 32


@dataclass
class AppState:
    settings: Settings
    stores: Stores
    keys: KeyRing
    producer: Celery
    models: OrderedDict[str, Model] = field(default_factory=OrderedDict)
    _parses: anyio.CapacityLimiter | None = None

    @classmethod
    def build(cls, settings: Settings) -> AppState:
        if not settings.redis_url:
            raise RuntimeError("TRAINAPI_REDIS_URL is not set; `trainapi serve` sets it for the API it starts")
        stores = Stores.open(settings.redis_url, Artifacts.open(settings))
        if isinstance(stores.artifacts.storage, LocalStorage):
            # What writers killed hard left in the data directory (store/storage.py says which files go).
            stores.artifacts.storage.sweep_temporary()
        return cls(
            settings=settings,
            stores=stores,
            keys=KeyRing(settings.api_keys_file),
            producer=celery_app(settings.redis_url, max_runtime_seconds=settings.max_runtime_seconds),
        )

    @property
    def parses(self) -> anyio.CapacityLimiter:
        """Uploads parsed (and stored) at once by this process: ``max_concurrent_parses``; the others wait.

        Made on first use, inside the serving event loop.
        """
        if self._parses is None:
            self._parses = anyio.CapacityLimiter(self.settings.max_concurrent_parses)
        return self._parses

    @property
    def redis(self) -> redis.Redis:
        return self.stores.redis

    @property
    def jobs(self) -> JobStore:
        return self.stores.jobs

    @property
    def sweeps(self) -> SweepStore:
        return self.stores.sweeps

    @property
    def datasets(self) -> DatasetStore:
        return self.stores.datasets

    @property
    def catalog(self) -> Catalog:
        return self.stores.catalog

    @property
    def artifacts(self) -> Artifacts:
        return self.stores.artifacts

    @property
    def webhooks(self) -> WebhookStore:
        return self.stores.webhooks

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
