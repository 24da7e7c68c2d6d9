"""What the app holds for its lifetime: settings, the stores, the dataset catalog, the keys, the task producer."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass
class AppState:
    settings: Settings
    stores: Stores
    keys: KeyRing
    producer: Celery
    models: OrderedDict[str, Model] = field(default_factory=OrderedDict)
    models_bytes: int = 0
    _parses: anyio.CapacityLimiter | None = None
    _predictions: anyio.CapacityLimiter | None = None

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
    def predictions(self) -> anyio.CapacityLimiter:
        """Threads for what ``/predict`` does off the event loop (loading a model, many rows): two at once,
        so large requests wait their turn instead of taking the whole thread pool. Made on first use."""
        if self._predictions is None:
            self._predictions = anyio.CapacityLimiter(2)
        return self._predictions

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

    def cached_model(self, job_id: str) -> Model | None:
        """A job's model if this process holds it (and it becomes the most recently used)."""
        model = self.models.get(job_id)
        if model is not None:
            self.models.move_to_end(job_id)
        return model

    def model(self, name: str, load: Callable[[], Model]) -> Model:
        """The model held under ``name``, else ``load()`` (in this thread), then held."""
        model = self.cached_model(name)
        if model is None:
            model = load()
            self.keep_model(name, model)
        return model

    def keep_model(self, job_id: str, model: Model) -> None:
        """Hold a job's model (weights never change after success), the least recently used ones going
        once they hold more than ``model_cache_bytes``; a model larger than that is not held at all."""
        if job_id in self.models or model.nbytes > self.settings.model_cache_bytes:
            return
        self.models[job_id] = model
        self.models_bytes += model.nbytes
        while self.models_bytes > self.settings.model_cache_bytes:
            _, dropped = self.models.popitem(last=False)
            self.models_bytes -= dropped.nbytes
