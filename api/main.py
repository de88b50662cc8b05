"""The FastAPI application: ``create_app(settings)`` builds it; nothing happens at import time.

Routes live in ``api/routes/<resource>.py``; queries in ``api/services``; the live page in
``api/static`` (plain files, no build step), served at ``/``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from api.auth import (
    AUTH_RESPONSES,
    PUBLIC,
    ROLE_DEPENDENCIES,
    STATIC_ROLES,
    AuthMiddleware,
    Role,
    sensitive_kind_guard,
)
from api.deps import ApiState
from api.headers import SecurityHeaders
from api.problems import install_problem_handlers
from api.routes import (
    alerts,
    devices,
    health,
    indicators,
    keys,
    live,
    meta,
    readings,
    subscriptions,
)
from api.services.alerts import AlertsService
from api.services.indicators import IndicatorsService
from api.services.live import LiveCache
from api.services.readings import ReadingsService
from api.services.snapshot import FastPath, Snapshot
from api.services.subscriptions import SubscriptionsService
from api.settings import ApiSettings
from kota import __version__
from kota.influx import InfluxClient
from kota.registry import Registry, RegistryWatcher
from store.db import SchemaError, ensure_schema, make_engine
from store.devices import DeviceStore, Provisioner
from store.keys import KeyStore
from store.settings import engine_url

if TYPE_CHECKING:
    from alerts.settings import AlertsSettings
    from alerts.subscriptions.settings import SubscriptionSettings

__all__ = ["STATIC_DIR", "create_app"]

log = logging.getLogger("kota.api")
STATIC_DIR = Path(__file__).parent / "static"
API_PREFIX = "/api/v1"

DESCRIPTION = """\
Read API of **Kota Cerdas**: devices, latest readings, history and current indicators
(ISPU, Siaga) from InfluxDB, plus a server-sent-event stream for the live page at `/`.

Errors are problem details (RFC 9457, `application/problem+json`). Times are UTC.

Public data needs no key; incident details, exact positions of safety devices and the key
routes need an API key (`Authorization: Bearer kota_...` or `X-API-Key`) of role operator or
admin (docs/security.md).
"""


def create_app(settings: ApiSettings, registry: Registry | None = None,
               alerts_settings: AlertsSettings | None = None) -> FastAPI:
    """The application for ``settings``; ``registry`` overrides ``settings.registry_file``.
    ``alerts_settings`` (section ``alerts:``) gives the CAP sender and the channels an
    all-clear resolved through the API is queued to; the alert state itself is read from
    ``settings.database`` (docs/api.md, Alerts)."""
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
        snapshot=Snapshot(readings_service, indicators_service, settings.snapshot_interval_s,
                          settings.page.stale_after_s,
                          lambda: settings.auth.public_position_decimals),
        districts=frozenset(d.district for d in registry),
        keys=(keys_store := KeyStore(make_engine(settings.database.url))))

    # `kota devices` and POST /api/v1/devices rewrite the registry file: reloaded in place
    # (every service holding the registry sees it), the districts recomputed.
    def _registry_changed(changed: Registry) -> None:
        state.districts = frozenset(d.district for d in changed)

    watcher = (RegistryWatcher(settings.registry_file, registry, settings.registry_reload_s,
                               _registry_changed) if settings.registry_file else None)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The key store's schema: brought up to date, or a refusal to start that says to run
        # `kota db upgrade` (database.migrate_on_start; docs/security.md).
        try:
            await asyncio.to_thread(ensure_schema, keys_store.engine,
                                    settings.database.migrate_on_start)
        except SchemaError as exc:
            log.error("%s", exc)
            raise
        stop_reloading = asyncio.Event()
        reloading = (asyncio.create_task(watcher.run(stop_reloading), name="registry")
                     if watcher is not None else None)
        app.state.subscriptions.start()
        yield
        await app.state.subscriptions.close()
        stop_reloading.set()
        if reloading is not None:
            await reloading
        await state.snapshot.close()
        await influx.close()
        keys_store.engine.dispose()

    app = FastAPI(title="Kota Cerdas API", version=__version__, description=DESCRIPTION,
                  root_path=settings.root_path, lifespan=lifespan, docs_url=None,
                  redoc_url=None,
                  openapi_tags=[
                      {"name": "devices", "description": "The device registry"},
                      {"name": "readings", "description": "Latest readings and history"},
                      {"name": "indicators", "description": "Current ISPU and Siaga"},
                      {"name": "live", "description": "Server-sent events for live views"},
                      {"name": "alerts", "description": "Alerts, their history, CAP messages, "
                                                        "silences and deliveries"},
                      {"name": "subscriptions", "description": "Residents' and agencies' "
                                                              "subscriptions to alerts"},
                      {"name": "health", "description": "Liveness and readiness"},
                  ])
    app.state.kota = state
    app.state.alerts = _alerts_service(keys_store, alerts_settings)
    # Subscribers live in the same database as the alerts (docs/subscriptions.md).
    app.state.subscriptions = SubscriptionsService(
        keys_store.engine, alerts_settings.subscriptions if alerts_settings is not None
        else _default_subscriptions(), registry)
    app.state.registry_watcher = watcher
    app.state.provisioner = (Provisioner(DeviceStore(keys_store.engine), settings.registry_file,
                                         settings.provisioning)
                             if settings.registry_file else None)
    install_problem_handlers(app)
    # Innermost of the middleware: its 401s get the CORS and security headers too.
    app.add_middleware(AuthMiddleware, keys=lambda: state.keys,
                       position_decimals=lambda: settings.auth.public_position_decimals)
    # Anonymous public reads straight from the snapshot, before authentication and routing.
    app.add_middleware(FastPath, snapshot=state.snapshot, registry=registry,
                       max_age_s=settings.snapshot_interval_s,
                       stale_while_revalidate_s=settings.stale_while_revalidate_s)
    if settings.cors.origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors.origins,
                           allow_methods=["GET"], allow_headers=["*"])
    app.add_middleware(SecurityHeaders, tile_url=settings.page.tile_url)
    _add_docs(app)
    # Every route declares its role here; app.state.route_roles lists them
    # (tests/api/test_api_auth.py fails on a route that is not there).
    roles: dict[tuple[str, str], Role] = {("GET", "/docs"): "public", **STATIC_ROLES}
    _include(app, roles, health.router, "public", "")
    # Operators' incident list first: /indicators/incidents/open is theirs.
    _include(app, roles, indicators.operator_router, "operator")
    for module in (devices, indicators, live, meta):
        _include(app, roles, module.router, "public")
    _include(app, roles, readings.router, "public", extra=[Depends(sensitive_kind_guard)])
    # Operators' and admins' alert routes first: /alerts/silences is not an alert id.
    _include(app, roles, alerts.operator_router, "operator")
    _include(app, roles, alerts.admin_router, "admin")
    _include(app, roles, alerts.router, "public")
    # The public subscription routes first: /subscriptions/me is not a subscriber id.
    _include(app, roles, subscriptions.router, "public")
    _include(app, roles, subscriptions.operator_router, "operator")
    _include(app, roles, keys.router, "admin")
    _include(app, roles, devices.admin_router, "admin")
    app.state.route_roles = roles
    if settings.page.enabled:
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="page")
    return app


def _default_subscriptions() -> SubscriptionSettings:
    from alerts.subscriptions.settings import SubscriptionSettings

    return SubscriptionSettings()


def _alerts_service(keys_store: KeyStore,
                    alerts_settings: AlertsSettings | None) -> AlertsService:
    from alerts.channels.registry import build_channels
    from alerts.settings import AlertsSettings
    from alerts.subscriptions.fanout import with_fanout

    if alerts_settings is None:   # no alerts: section: the defaults, nothing to compare
        alerts_settings = AlertsSettings()
    elif engine_url(alerts_settings.database.url) != keys_store.engine.url:
        log.warning("alerts.database.url and api.database.url differ: the API reads and acts on "
                    "the alert state in api.database.url; the alert service must use the same "
                    "database (docs/api.md, Alerts)")
    # The fan-out too: an all-clear an operator gives here reaches subscribers as well.
    channels = with_fanout(build_channels(alerts_settings.channels),
                           alerts_settings.subscriptions.enabled, keys_store.engine)
    return AlertsService(keys_store.engine, channels,
                         alerts_settings.sender)


def _include(app: FastAPI, roles: dict[tuple[str, str], Role], router: APIRouter, role: Role,
             prefix: str = API_PREFIX, extra: list[Any] | None = None) -> None:
    """``router`` under ``prefix``, every route of it requiring ``role`` (api/auth.py)."""
    app.include_router(router, prefix=prefix, responses=AUTH_RESPONSES,
                       dependencies=[Depends(ROLE_DEPENDENCIES[role]), *(extra or [])])
    for route in router.routes:
        if isinstance(route, APIRoute):
            roles.update({(method, prefix + route.path): role for method in route.methods or ()})


def _add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the vendored copy: operations centres are often offline."""

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(PUBLIC)])
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json", title="Kota Cerdas API — docs",
            swagger_js_url=f"{root}/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}/vendor/swagger-ui/favicon-32x32.png")
