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


class QuotaExceeded(StoreError):
    """The tenant has too many active jobs."""

    def __init__(self, limit: int, retry_after: int) -> None:
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(f"at most {limit} queued or running jobs per tenant")


class StaleAttempt(StoreError):
    """A write came from an attempt that no longer owns the job."""
