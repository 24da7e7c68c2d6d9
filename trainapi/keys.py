"""The API keys file: one ``tenant:sha256hex`` per line; keys themselves are never stored.

``trainapi keys add`` appends to it and the API reads it (:class:`KeyRing`
re-reads it when it changes, so a new key takes effect without a restart).
With no keys file configured the service runs open as the single tenant
:data:`LOCAL_TENANT`; once one is configured, a missing, unreadable or
keyless file refuses every request. How a request's key is checked is the API's business
(:func:`api.auth.authenticate`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path

log = logging.getLogger("trainapi.keys")

LOCAL_TENANT = "local"
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
HASH_PATTERN = re.compile(r"[0-9a-f]{64}")


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
    """The keys file, parsed; reloaded when it changes (one ``stat`` per look-up).

    It fails closed: once a keys file is configured, a file that is missing,
    unreadable or holds no valid key yields no key at all, so every request
    is refused (and the log says why, once per change of the file). Only an
    unconfigured file (``path`` None) is open mode.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._version: tuple[int, int, int] | None = None
        self._hashes: dict[str, str] = {}
        self._problem: str | None = "not read yet"

    @property
    def open_mode(self) -> bool:
        """True when no keys file is configured: every request is the local tenant."""
        return self.path is None

    def current(self) -> dict[str, str]:
        """Key hash -> tenant as the file holds them now; empty (every key refused) when it is missing or broken."""
        if self.path is None:
            return {}
        try:
            st = os.stat(self.path)
        except OSError as exc:
            return self._broken(None, f"cannot read the keys file {self.path}: {exc.strerror or exc}")
        # `keys add` appends, so the size changes even within one tick of a coarse mtime clock.
        version = (st.st_ino, st.st_size, st.st_mtime_ns)
        if version == self._version:
            return self._hashes
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return self._broken(version, f"cannot read the keys file {self.path}: {exc}")
        hashes, refused = parse_keys(text)
        for line, reason in refused:
            log.error("keys file %s, line %d refused: %s", self.path, line, reason)
        if not hashes:
            return self._broken(version, f"the keys file {self.path} holds no valid key")
        if self._problem is not None and self._version is not None:
            log.warning("keys file %s read again: %d keys; requests are authenticated again", self.path, len(hashes))
        self._hashes, self._version, self._problem = hashes, version, None
        return hashes

    def _broken(self, version: tuple[int, int, int] | None, problem: str) -> dict[str, str]:
        if problem != self._problem:
            log.error("%s: refusing every request (401) until it is fixed", problem)
        self._hashes, self._version, self._problem = {}, version, problem
        return self._hashes


def tenant_of(hashes: dict[str, str], key: str) -> str | None:
    """The tenant of ``key`` among ``hashes`` (:meth:`KeyRing.current`), or None; compared in constant time."""
    digest = hash_key(key)
    for known, tenant in hashes.items():
        if hmac.compare_digest(known, digest):
            return tenant
    return None


def parse_keys(text: str) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """The keys of a keys file's ``text`` (hash -> tenant) and the refused lines ((1-based line, why)).

    Accepted are exactly the lines ``trainapi keys add`` writes, ``tenant:sha256hex`` (lower-case hex),
    besides blank lines and ``#`` comments; anything else is refused rather than guessed at.
    """
    hashes: dict[str, str] = {}
    refused: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tenant, colon, digest = line.partition(":")
        if not colon:
            refused.append((number, "expected `tenant:sha256hex`"))
        elif not TENANT_PATTERN.match(tenant):
            refused.append((number, "a tenant name is 1-64 letters, digits, '.', '_' or '-' (no spaces)"))
        elif not HASH_PATTERN.fullmatch(digest):
            refused.append((number, "the hash is not 64 lower-case hexadecimal digits"))
        elif digest in hashes and hashes[digest] != tenant:
            refused.append((number, f"the same key hash is listed for tenant {hashes[digest]!r} already"))
        else:
            hashes[digest] = tenant
    return hashes, refused
