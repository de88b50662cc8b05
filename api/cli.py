"""``kota api``: the read API and the live page, served by uvicorn."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import click

from api.settings import ApiSettings
from kota.config import dump_settings
from kota.service_cli import EXIT_CODES, fail, load_or_exit, logging_from
from kota.settings_doc import settings_help

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["api", "worker_app"]

# How `kota api --workers N` hands its command line to the worker processes uvicorn starts
# (they import worker_app and load the same settings; secrets stay in the file/environment).
WORKER_ENV = "KOTA_API_WORKER_ARGS"


def _epilog() -> str:
    return ("\b\nSettings (section 'api:' of kota.yaml; environment variable in brackets):\n"
            + settings_help(ApiSettings, "api") + "\n\n" + EXIT_CODES)


@click.command(epilog=_epilog(), context_settings={"max_content_width": 110,
                                                   "help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Configuration file (default: $KOTA_CONFIG or ./kota.yaml).")
@click.option("--host", help="Override api.host (default 127.0.0.1: this machine only).")
@click.option("--port", type=click.IntRange(1, 65535), help="Override api.port (default 8000).")
@click.option("--influx-url", help="Override api.influx.url.")
@click.option("--database", help="Override api.influx.database.")
@click.option("--registry", "registry_file", type=click.Path(dir_okay=False),
              help="Override api.registry_file (the same file ingest uses).")
@click.option("--tile-url", help="Override api.page.tile_url, e.g. "
                                 "'https://tile.openstreetmap.org/{z}/{x}/{y}.png'.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Processes serving the API (uvicorn workers; default: one per CPU core). "
                   "Each keeps its own snapshot and live-stream limits.")
@click.option("--check", is_flag=True, help="Validate the settings and the registry, print, exit.")
def api(config_file: str | None, host: str | None, port: int | None, influx_url: str | None,
        database: str | None, registry_file: str | None, tile_url: str | None,
        workers: int | None, check: bool) -> None:
    """Serve the read API, its OpenAPI docs and the live page.

    \b
    Open, once it runs:
      http://127.0.0.1:8000/            live page: map, latest values, pushed updates
      http://127.0.0.1:8000/docs        every endpoint, with a "Try it out" button
      http://127.0.0.1:8000/readyz      ready when InfluxDB answers

    \b
    Examples:
      kota api                                     # settings from ./kota.yaml (section api:)
      kota api --influx-url http://127.0.0.1:8086 --registry run/demo/registry.yaml
      kota api --host 0.0.0.0 --port 8080          # listen on every interface
      kota api --workers 1                         # one process (default: one per core)
      KOTA_API__INFLUX__TOKEN=... kota api          # secrets from the environment
      curl -s 'http://127.0.0.1:8000/api/v1/readings/latest?kind=air'

    The API only reads; it needs InfluxDB (written by `kota ingest`) and, for places and
    gauges, the device registry. docs/api.md lists the endpoints.
    """
    overrides: dict[str, Any] = {
        "host": host, "port": port, "registry_file": registry_file,
        "influx": {k: v for k, v in {"url": influx_url, "database": database}.items() if v},
        "page": {"tile_url": tile_url} if tile_url else {},
    }
    settings = load_or_exit(ApiSettings, "api", config_file, overrides)
    from alerts.settings import AlertsSettings
    from kota.registry import Registry, RegistryError

    # The alert service's CAP sender and channels (an all-clear resolved here is queued to
    # them); the alert state is read from api.database.url.
    alerts_settings = load_or_exit(AlertsSettings, "alerts", config_file)
    workers = workers or os.cpu_count() or 1
    app: FastAPI | None = None
    try:
        if workers == 1 or check:
            from api.main import create_app

            app = create_app(settings, alerts_settings=alerts_settings)
        else:
            # The workers build the app; this supervisor only checks the registry, so it does
            # not hold a copy of the application's memory (about 100 MB) it never uses, and
            # brings the schema up to date once, before the workers would race to (two
            # migrations of one SQLite file at once: one worker died in kota bench api).
            if settings.registry_file:
                Registry.load(settings.registry_file)
            _schema_once(settings)
    except RegistryError as exc:
        fail(f"{exc}\n(fix the registry file, or unset api.registry_file)")
    if check:
        assert app is not None
        click.echo(dump_settings(settings))
        click.echo(f"api settings OK ({len(app.state.kota.registry)} devices in the registry)")
        return
    logging_from(settings)
    import uvicorn

    from kota.influx import redact_url

    click.echo(f"Kota Cerdas API on http://{settings.host}:{settings.port}/ "
               f"(docs: /docs; InfluxDB {redact_url(settings.influx.url)}, database "
               f"{settings.influx.database}; {workers} worker{'s' if workers > 1 else ''})",
               err=True)
    options: dict[str, Any] = {
        "host": settings.host, "port": settings.port, "log_level": settings.log_level,
        "proxy_headers": True, "access_log": settings.log_level == "debug",
        "server_header": False}  # no "server: uvicorn" (issue 10)
    if app is not None:
        uvicorn.run(app, **options)
        return
    os.environ[WORKER_ENV] = json.dumps({"config_file": config_file, "overrides": overrides})
    uvicorn.run("api.cli:worker_app", factory=True, workers=workers, **options)


def _schema_once(settings: ApiSettings) -> None:
    from store.db import SchemaError, ensure_schema, make_engine

    engine = make_engine(settings.database.url)
    try:
        ensure_schema(engine, settings.database.migrate_on_start)
    except SchemaError as exc:
        fail(str(exc))
    finally:
        engine.dispose()


def worker_app() -> FastAPI:
    """The app of one ``kota api --workers N`` process: the parent's settings, loaded again."""
    from alerts.settings import AlertsSettings
    from api.main import create_app

    args = json.loads(os.environ[WORKER_ENV])
    settings = load_or_exit(ApiSettings, "api", args["config_file"], args["overrides"])
    logging_from(settings)
    return create_app(settings, alerts_settings=load_or_exit(AlertsSettings, "alerts",
                                                             args["config_file"]))
