"""API keys: ``Authorization: Bearer <key>`` resolves to a tenant.

Keys are stored hashed, one ``tenant:sha256hex`` per line, in the operator's
keys file; the file is re-read when it changes, so ``trainapi keys add``
takes effect without a restart. With no keys configured the service runs open
as the single tenant :data:`LOCAL_TENANT`.

:func:`authenticate` is the one check of a request's key: the FastAPI
dependency and the raw status route (:mod:`api.job_status`) both call it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from fastapi.security.utils import get_authorization_scheme_param

from api.errors import ApiError

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


def _tenant_in(hashes: dict[str, str], key: str) -> str | None:
    digest = hash_key(key)
    for known, tenant in hashes.items():
        if hmac.compare_digest(known, digest):
            return tenant
    return None


def bearer_credentials(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header value; None for anything else.

    What ``fastapi.security.HTTPBearer(auto_error=False)`` accepts, for the routes that read the header themselves.
    """
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


def authenticate(keys: KeyRing, credentials: str | None) -> str:
    """The tenant of a request's bearer key; a 401 ApiError for a missing or unknown key (unless open mode)."""
    hashes = keys.current()
    if not hashes:
        return LOCAL_TENANT
    challenge = {"WWW-Authenticate": 'Bearer realm="trainapi"'}
    if credentials is None:
        raise ApiError(401, "Unauthorized", "send an API key as `Authorization: Bearer <key>`", headers=challenge)
    tenant = _tenant_in(hashes, credentials)
    if tenant is None:
        raise ApiError(401, "Unauthorized", "unknown API key", headers=challenge)
    return tenant
