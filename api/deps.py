"""Dependencies as ``Annotated`` aliases, so route signatures read like types.

They are ``async`` because none of them blocks: FastAPI then runs them on the
event loop instead of handing each to the thread pool (a hop per dependency
was most of a status request's cost). The key check is one ``stat`` of the
keys file and a hash.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import authenticate
from api.state import AppState
from store.catalog import Catalog
from store.jobs import JobStore

_bearer = HTTPBearer(auto_error=False, description="An API key from `trainapi keys add TENANT`.")


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.trainapi
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_jobs(state: StateDep) -> JobStore:
    return state.jobs


async def get_catalog(state: StateDep) -> Catalog:
    return state.catalog


async def get_tenant(
    state: StateDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The caller's tenant; 401 for a missing or unknown key (unless the service runs open)."""
    return authenticate(state.keys, credentials.credentials if credentials else None)


JobsDep = Annotated[JobStore, Depends(get_jobs)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
TenantDep = Annotated[str, Depends(get_tenant)]
