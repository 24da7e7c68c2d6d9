"""The dashboard at ``/ui/`` and the offline API docs at ``/docs`` and ``/redoc``.

Everything is served from ``api/static`` in the package: the app's ES modules
(``static/ui``, one module per page, no build step) and the vendored libraries
with their licences (``static/vendor``: uPlot, Swagger UI, ReDoc). No page
asks another host for anything, and the Content-Security-Policy says so.

Caching: the assets live under ``/ui/assets/{version}/`` where ``version`` is
a hash of every static file, so they are cached for a year (``immutable``);
the HTML shell names the current version and is revalidated on every load
(``no-cache`` with an ``ETag``). A deep link (``/ui/jobs/{id}``,
``/ui/compare?jobs=…``) gets the same shell; ``ui/app.js`` picks the page.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from api.deps import StateDep
from api.routes.jobs import FORMATS
from store.jobspec import JobSpec
from store.statuses import STATUSES

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

log = logging.getLogger("trainapi.ui")

#: The app's own pages: nothing but this origin, no inline script or style.
UI_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
#: Swagger UI and ReDoc: FastAPI's pages start them with an inline script and they inject styles;
#: still nothing from another host (ReDoc runs its search in a blob: worker).
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
IMMUTABLE = "public, max-age=31536000, immutable"

#: Paths under /ui/ that are pages of the app (anything else gets the shell with a 404 status).
PAGES = re.compile(r"^(|jobs|jobs/[^/]+|new|compare|sweeps|sweeps/[^/]+|datasets)/?$")


def assets_version(root: Path = STATIC_DIR) -> str:
    """A short hash of every static file's path and bytes: it changes whenever any asset does."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


class Assets(StaticFiles):
    """The static files, with long-lived caching and the app's security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = IMMUTABLE
        response.headers["Content-Security-Policy"] = UI_CSP
        response.headers.update(SECURITY_HEADERS)
        return response


def _shell(version: str) -> tuple[bytes, str]:
    """The HTML shell with the assets' versioned prefix filled in, and its ETag."""
    text = (STATIC_DIR / "ui" / "index.html").read_text(encoding="utf-8")
    body = text.replace("%ASSETS%", f"/ui/assets/{version}").encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def choices(model: type[BaseModel], prefix: str = "") -> dict[str, list[Any]]:
    """The allowed values of every ``Literal`` field of a spec model, by dotted path (the form's select boxes)."""
    out: dict[str, list[Any]] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if get_origin(annotation) is Literal:
            out[prefix + name] = list(get_args(annotation))
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.update(choices(annotation, f"{prefix}{name}."))
    return out


def build_router(version: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    shell, etag = _shell(version)
    assets = f"/ui/assets/{version}"

    @router.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    @router.get("/ui")
    def ui_bare() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    @router.get("/ui/config.json")
    def config(state: StateDep) -> JSONResponse:
        """What the app needs before its first API call: whether to ask for a key, and the defaults of a job."""
        defaults = JobSpec(dataset="iris").model_dump(mode="json", exclude={"dataset", "name"})
        body: dict[str, Any] = {
            "auth": not state.keys.open_mode,
            "weight_formats": list(FORMATS),
            "statuses": list(STATUSES),
            "job_defaults": defaults,
            "job_choices": choices(JobSpec),
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store", **SECURITY_HEADERS})

    @router.get("/ui/{page:path}")
    def page(page: str, request: Request) -> Response:
        headers = {
            "Cache-Control": "no-cache",
            "ETag": etag,
            "Content-Security-Policy": UI_CSP,
            **SECURITY_HEADERS,
        }
        status = 200 if PAGES.match(page) else 404
        if status == 200 and request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return HTMLResponse(shell, status_code=status, headers=headers)

    @router.get("/docs")
    def swagger_ui(request: Request) -> HTMLResponse:
        html = get_swagger_ui_html(
            openapi_url=request.app.openapi_url,
            title=f"{request.app.title} - Swagger UI",
            swagger_js_url=f"{assets}/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{assets}/ui/favicon.svg",
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _docs(html)

    @router.get("/redoc")
    def redoc(request: Request) -> HTMLResponse:
        html = get_redoc_html(
            openapi_url=request.app.openapi_url,
            title=f"{request.app.title} - ReDoc",
            redoc_js_url=f"{assets}/vendor/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/ui/favicon.svg",
            with_google_fonts=False,
        )
        return _docs(html)

    return router


def _docs(html: HTMLResponse) -> HTMLResponse:
    html.headers["Content-Security-Policy"] = DOCS_CSP
    html.headers["Cache-Control"] = "no-cache"
    html.headers.update(SECURITY_HEADERS)
    return html


def startup_logger() -> logging.Logger:
    """Where the API process's startup line is read: ``trainapi.ui`` when the process's logging shows its
    INFO records (JSON logs, the CLI), else uvicorn's own log — with text logs under uvicorn
    (``python -m api.server``, ``trainapi serve``'s API) only uvicorn's loggers have a handler.
    """
    if log.isEnabledFor(logging.INFO) and logging.getLogger().handlers:
        return log
    return logging.getLogger("uvicorn.error")


def install(app: FastAPI) -> None:
    """Serve the dashboard, its assets and the offline docs (the app is made with ``docs_url=None``),
    and say once, in the API process's log, where they are."""
    version = assets_version()
    app.mount(f"/ui/assets/{version}", Assets(directory=STATIC_DIR), name="ui-assets")
    app.include_router(build_router(version))
    startup_logger().info("dashboard at /ui/, API docs at /docs and /redoc")
