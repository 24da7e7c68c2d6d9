"""``GET /v1/jobs/{id}`` as a raw ASGI route in front of FastAPI: the status read that clients poll.

FastAPI's per-request machinery (routing, dependency resolution, the
response model) costs several times the work of the read itself: an HGETALL
and a few ``json.loads``. :class:`JobStatusRoute` answers exactly this
request with the same code as the FastAPI route — :func:`api.auth.authenticate`,
:meth:`store.jobs.JobStore.get_async`, :func:`api.services.jobs.job_json` — and
renders its errors (401, 404, 503) with the app's own exception handlers, so
both paths send the same status, headers and body
(``tests/api/test_job_status.py`` compares them). Anything else, including a
GET that carries a body, goes on to FastAPI, where the route stays for
``/docs`` and the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import authenticate, bearer_credentials
from api.services.jobs import job_json
from api.state import AppState

PREFIX = "/v1/jobs/"
_JSON = b"application/json"


class JobStatusRoute:
    """ASGI middleware that serves ``GET /v1/jobs/{id}`` itself and passes every other request on."""

    def __init__(self, app: ASGIApp, *, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        job_id = _job_id(scope)
        if job_id is None:
            await self.app(scope, receive, send)
            return
        authorization: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is None:  # the first, as Starlette's Headers.get picks it
                    authorization = value.decode("latin-1")
            elif name == b"content-length" or name == b"transfer-encoding":
                await self.app(scope, receive, send)  # a body: FastAPI's body limit and parsing decide
                return
        try:
            tenant = authenticate(self.state.keys, bearer_credentials(authorization))
            body = job_json(await self.state.jobs.get_async(tenant, job_id))
        except Exception as exc:
            handler = _handler(scope["app"].exception_handlers, exc)
            if handler is None:
                raise  # the app's server-error handler renders the 500, as for any route
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", _JSON)],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _job_id(scope: Scope) -> str | None:
    """The ``{id}`` of a ``GET /v1/jobs/{id}`` request that this route serves, else None."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not path.startswith(PREFIX):
        return None
    job_id = path[len(PREFIX) :]
    return job_id if job_id and "/" not in job_id else None


def _handler(handlers: dict[Any, Any], exc: Exception) -> Any:
    """The exception handler Starlette's ExceptionMiddleware would pick for ``exc`` (None: a 500)."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
