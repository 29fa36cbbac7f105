"""The FastAPI app of `pricemon serve`: the REST API under /api/v1, the login, the pages and
their vendored static files, over the same store and application functions as the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from monitor.settings import Settings
from monitor.store.database import Store, open_store
from monitor.web import api, login
from monitor.web.auth import SessionKeys
from monitor.web.problems import install_problem_handlers
from monitor.web.security import SecurityHeaders
from monitor.web.templating import environment

OPENAPI_URL = "/api/v1/openapi.json"
#: how `pricemon serve --workers N` tells each uvicorn worker process what to open (JSON)
WORKER_ENV = "PRICEMON_SERVE_WORKER"


def _version() -> str:
    try:
        return version("pricemon")
    except PackageNotFoundError:
        return "0"


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """The app over `store` (opened from `settings.database_url` and closed with the app when not given)."""
    owned = store is None
    the_store = store if store is not None else open_store(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            the_store.dispose()

    app = FastAPI(
        title="pricemon",
        version=_version(),
        summary="Competitive price monitoring: review and apply price suggestions.",
        openapi_url=OPENAPI_URL,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = the_store
    app.state.session_keys = SessionKeys.from_settings(settings.web)
    install_problem_handlers(app)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=str(files("monitor.web") / "static")), name="static")
    app.include_router(api.router)
    app.include_router(login.router)

    @app.get("/api/docs", include_in_schema=False, response_class=HTMLResponse)
    def api_docs(request: Request) -> HTMLResponse:
        return HTMLResponse(environment.get_template("api_docs.html").render())

    # The pages live in their own module (monitor/web/pages.py); they are not part of the API's document.
    if importlib.util.find_spec("monitor.web.pages") is not None:
        from monitor.web import pages

        app.include_router(pages.router, include_in_schema=False)
    return app


def app_for_worker() -> FastAPI:
    """The app inside one of `pricemon serve --workers N`'s processes: uvicorn imports this factory
    in each worker it spawns, which opens its own settings and store (nothing is shared across the
    fork but the listening socket) and logs through the same redaction as the CLI."""
    from monitor.logs import configure_worker_logging
    from monitor.settings import load_settings

    spec = json.loads(os.environ[WORKER_ENV])
    settings = load_settings(spec["config"], database_url=spec["database_url"], strategies_dir=spec["strategies_dir"])
    configure_worker_logging(int(spec["log_level"]), settings)
    return create_app(settings)
