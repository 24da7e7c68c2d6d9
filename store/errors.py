"""The store's exception family."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class NotFound(StoreError):
    """No such record for this tenant (another tenant's records do not exist for you)."""

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident!r} not found")


class Conflict(StoreError):
    """The record is not in a state that allows the operation."""


class InUse(Conflict):
    """The record is still needed by others: ``users`` are their ids (jobs, sweeps)."""

    def __init__(self, kind: str, ident: str, users: list[str]) -> None:
        self.kind = kind
        self.ident = ident
        self.users = users
        super().__init__(
            f"{kind} {ident!r} is in use by queued or running jobs or sweeps: {', '.join(users)};"
            " delete it once they have finished or been cancelled"
        )


class IdempotencyKeyReused(StoreError):
    """An ``Idempotency-Key`` that created a job came again with a different (normalized) body."""

    def __init__(self, idempotency_key: str, job_id: str) -> None:
        self.idempotency_key = idempotency_key
        self.job_id = job_id
        super().__init__(
            f"Idempotency-Key {idempotency_key!r} already created job {job_id} from a different request body; "
            "send a new key for a new job (the same key with the same body returns that job)"
        )


class QuotaExceeded(StoreError):
    """The tenant has too many active jobs."""

    def __init__(self, limit: int, retry_after: int) -> None:
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(f"at most {limit} queued or running jobs per tenant")


class StaleAttempt(StoreError):
    """A write came from an attempt that no longer owns the job."""


class StorageFull(StoreError):
    """The storage has no room left (ENOSPC, or a quota of the file system): a 507 for an upload, a job's
    ``storage_full`` failure. Retrying soon will fail the same way; freeing space is the remedy."""


class TenantStorageQuota(StoreError):
    """The tenant's stored datasets would exceed its storage quota (``TRAINAPI_TENANT_STORAGE_BYTES``)."""

    def __init__(self, used: int, adding: int, limit: int) -> None:
        self.used = used
        self.adding = adding
        self.limit = limit
        super().__init__(
            f"this upload ({adding:,} bytes stored) would bring your stored datasets to {used + adding:,} bytes, "
            f"over the quota of {limit:,}; delete datasets you no longer need"
        )
