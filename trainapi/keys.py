"""The API keys file: one ``tenant:sha256hex`` per line; keys themselves are never stored.

``trainapi keys add`` appends to it and the API reads it (:class:`KeyRing`
re-reads it when it changes, so a new key takes effect without a restart).
With no keys configured the service runs open as the single tenant
:data:`LOCAL_TENANT`. How a request's key is checked is the API's business
(:func:`api.auth.authenticate`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
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
    """The keys file, parsed; reloaded when it changes (one ``stat`` per look-up)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._version: tuple[int, int, int] | None = None
        self._hashes: dict[str, str] = {}

    def current(self) -> dict[str, str]:
        """Key hash -> tenant as the file holds them now (empty: open mode)."""
        if self.path is None:
            return {}
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._hashes, self._version = {}, None
            return self._hashes
        # `keys add` appends, so the size changes even within one tick of a coarse mtime clock.
        version = (st.st_ino, st.st_size, st.st_mtime_ns)
        if version != self._version:
            self._hashes, self._version = _parse(self.path.read_text()), version
        return self._hashes

    @property
    def open_mode(self) -> bool:
        """True when no key is configured: every request is the local tenant."""
        return not self.current()


def tenant_of(hashes: dict[str, str], key: str) -> str | None:
    """The tenant of ``key`` among ``hashes`` (:meth:`KeyRing.current`), or None; compared in constant time."""
    digest = hash_key(key)
    for known, tenant in hashes.items():
        if hmac.compare_digest(known, digest):
            return tenant
    return None


def _parse(text: str) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tenant, _, digest = line.partition(":")
        if TENANT_PATTERN.match(tenant) and re.fullmatch(r"[0-9a-f]{64}", digest):
            hashes[digest] = tenant
    return hashes
