"""API keys: ``Authorization: Bearer <key>`` resolves to a tenant.

Keys are stored hashed, one ``tenant:sha256hex`` per line, in the operator's
keys file; the file is re-read when it changes, so ``trainapi keys add``
takes effect without a restart. With no keys configured the service runs open
as the single tenant :data:`LOCAL_TENANT`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from pathlib import Path

LOCAL_TENANT = "local"
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random API key."""
    return "tk_" + secrets.token_urlsafe(32)


def add_key(path: Path, tenant: str) -> str:
    """Append a new key for ``tenant`` to the keys file; returns the key (shown once)."""
    if not TENANT_PATTERN.match(tenant):
        raise ValueError("a tenant name is 1-64 letters, digits, '.', '_' or '-'")
    key = new_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(f"{tenant}:{hash_key(key)}\n")
    return key


class KeyRing:
    """The keys file, parsed; reloaded when its modification time changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._mtime: float | None = None
        self._hashes: dict[str, str] = {}

    @property
    def open_mode(self) -> bool:
        """True when no key is configured: every request is the local tenant."""
        self._reload()
        return not self._hashes

    def tenant_for(self, key: str) -> str | None:
        """The tenant owning ``key``, or None."""
        self._reload()
        digest = hash_key(key)
        for known, tenant in self._hashes.items():
            if hmac.compare_digest(known, digest):
                return tenant
        return None

    def _reload(self) -> None:
        if self.path is None or not self.path.exists():
            self._hashes = {}
            return
        mtime = self.path.stat().st_mtime
        if mtime == self._mtime:
            return
        hashes: dict[str, str] = {}
        for raw in self.path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            tenant, _, digest = line.partition(":")
            if TENANT_PATTERN.match(tenant) and re.fullmatch(r"[0-9a-f]{64}", digest):
                hashes[digest] = tenant
        self._hashes, self._mtime = hashes, mtime
