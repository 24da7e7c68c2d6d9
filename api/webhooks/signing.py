"""Standard Webhooks 1.0 signatures: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""

from __future__ import annotations

import base64
import hashlib
import hmac

from store.webhooks import SECRET_PREFIX


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,…`` signature of ``body`` sent as ``webhook_id`` at ``timestamp`` (Unix seconds).

    ``secret`` is ``whsec_`` and the base64 of the key bytes.
    """
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secrets: list[str], webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a delivery; several secrets (during a rotation) give space-separated signatures."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, webhook_id, timestamp, body) for s in secrets),
    }
