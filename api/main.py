"""The FastAPI application: ``create_app(settings)`` builds it; nothing happens at import time.

Routes live in ``api/routes/<resource>.py``; queries in ``api/services``; the live page in
``api/static`` (plain files, no build step), served at ``/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.deps import ApiState
from api.headers import SecurityHeaders
from api.problems import install_problem_handlers
from api.routes import devices, health, indicators, live, meta, readings
from api.services.indicators import IndicatorsService
from api.services.live import LiveCache
from api.services.readings import ReadingsService
from api.settings import ApiSettings
from kota import __version__
from kota.influx import InfluxClient
from kota.registry import Registry

__all__ = ["STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"
API_PREFIX = "/api/v1"

DESCRIPTION = """\
Read API of **Kota Cerdas**: devices, latest readings, history and current indicators
(ISPU, Siaga) from InfluxDB, plus a server-sent-event stream for the live page at `/`.

Errors are problem details (RFC 9457, `application/problem+json`). Times are UTC.
"""


def create_app(settings: ApiSettings, registry: Registry | None = None) -> FastAPI:
    """The application for ``settings``; ``registry`` overrides ``settings.registry_file``."""
    if registry is None:
        registry = (Registry.load(settings.registry_file) if settings.registry_file
                    else Registry())
    influx = InfluxClient(settings.influx)
    readings_service = ReadingsService(influx, registry,
                                       int(settings.limits.latest_lookback_h * 3600))
    indicators_service = IndicatorsService(influx, registry, settings.indicator_max_age_s,
                                           settings.siaga_max_age_s)
    state = ApiState(
        settings=settings, influx=influx, registry=registry, readings=readings_service,
        indicators=indicators_service,
        live=LiveCache(readings_service, indicators_service, settings.sse_interval_s * 0.8),
        districts=frozenset(d.district for d in registry))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await influx.close()

    app = FastAPI(title="Kota Cerdas API", version=__version__, description=DESCRIPTION,
                  root_path=settings.root_path, lifespan=lifespan, docs_url=None,
                  redoc_url=None,
                  openapi_tags=[
                      {"name": "devices", "description": "The device registry"},
                      {"name": "readings", "description": "Latest readings and history"},
                      {"name": "indicators", "description": "Current ISPU and Siaga"},
                      {"name": "live", "description": "Server-sent events for live views"},
                      {"name": "health", "description": "Liveness and readiness"},
                  ])
    app.state.kota = state
    install_problem_handlers(app)
    if settings.cors.origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors.origins,
                           allow_methods=["GET"], allow_headers=["*"])
    app.add_middleware(SecurityHeaders, tile_url=settings.page.tile_url)
    _add_docs(app)
    app.include_router(health.router)
    for module in (devices, readings, indicators, live, meta):
        app.include_router(module.router, prefix=API_PREFIX)
    if settings.page.enabled:
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="page")
    return app


def _add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the vendored copy: operations centres are often offline."""

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json", title="Kota Cerdas API — docs",
            swagger_js_url=f"{root}/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}/vendor/swagger-ui/favicon-32x32.png")
