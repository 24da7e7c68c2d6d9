"""API keys: ``Authorization: Bearer <key>`` resolves to a tenant.

The keys file and its parsing live in :mod:`trainapi.keys` (the CLI writes
it, the API reads it). :func:`authenticate` is the one check of a request's
key: the FastAPI dependency and the raw status route (:mod:`api.job_status`)
both call it.
"""

from __future__ import annotations

from fastapi.security.utils import get_authorization_scheme_param

from api.errors import ApiError
from trainapi.keys import LOCAL_TENANT, KeyRing, tenant_of


def bearer_credentials(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header value; None for anything else.

    What ``fastapi.security.HTTPBearer(auto_error=False)`` accepts, for the routes that read the header themselves.
    """
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


def authenticate(keys: KeyRing, credentials: str | None) -> str:
    """The tenant of a request's bearer key; a 401 ApiError for a missing or unknown key (unless open mode).

    Open mode is an unconfigured keys file only: a configured one that is missing or broken has no keys,
    so every key is unknown.
    """
    if keys.open_mode:
        return LOCAL_TENANT
    hashes = keys.current()  # one stat of the keys file
    challenge = {"WWW-Authenticate": 'Bearer realm="trainapi"'}
    if credentials is None:
        raise ApiError(401, "Unauthorized", "send an API key as `Authorization: Bearer <key>`", headers=challenge)
    tenant = tenant_of(hashes, credentials)
    if tenant is None:
        raise ApiError(401, "Unauthorized", "unknown API key", headers=challenge)
    return tenant
