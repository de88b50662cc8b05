"""``kota ingest``: MQTT -> validated -> InfluxDB. Registered lazily by kota.cli."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from kota.config import dump_settings
from kota.service_cli import (
    EXIT_CODES,
    EXIT_FAILED,
    fail,
    load_or_exit,
    logging_from,
    run_until_signal,
)
from kota.settings_doc import settings_help


def _ingest_epilog() -> str:
    from ingest.settings import IngestSettings

    return ("\b\nSettings (section 'ingest:' of kota.yaml; environment variable in brackets):\n"
            + settings_help(IngestSettings, "ingest") + "\n\n" + EXIT_CODES)


@click.command(epilog=_ingest_epilog(), context_settings={"max_content_width": 110})
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Configuration file (default: $KOTA_CONFIG or ./kota.yaml).")
@click.option("--mqtt-host", help="Override ingest.mqtt.host.")
@click.option("--mqtt-port", type=int, help="Override ingest.mqtt.port.")
@click.option("--influx-url", help="Override ingest.influx.url.")
@click.option("--database", help="Override ingest.influx.database.")
@click.option("--registry", "registry_file", type=click.Path(dir_okay=False),
              help="Override ingest.registry_file.")
@click.option("--workers", type=click.IntRange(1, 32), default=1, show_default=True,
              help="Processes sharing the load through an MQTT 5 shared subscription.")
@click.option("--instance", help="Name of this process among several (set by --workers).")
@click.option("--check", is_flag=True, help="Validate the settings, print them and exit.")
def ingest(config_file: str | None, mqtt_host: str | None, mqtt_port: int | None,
           influx_url: str | None, database: str | None, registry_file: str | None,
           workers: int, instance: str | None, check: bool) -> None:
    """Subscribe to device messages, validate them and write them to InfluxDB.

    Messages are acknowledged to the broker only once stored: in InfluxDB, or in the disk
    buffer while InfluxDB is unreachable (replayed in order when it returns). Refused messages
    go to the dead-letter store with their reason. Counters on http://127.0.0.1:9108/metrics.

    \b
    Examples:
      kota ingest                                 # settings from ./kota.yaml
      kota ingest --mqtt-host broker.local --influx-url http://influx:8086
      kota ingest --workers 2                     # two processes, $share/kota-ingest/...
      KOTA_INGEST__INFLUX__TOKEN=... kota ingest  # secrets from the environment
    """
    from ingest.settings import IngestSettings

    overrides: dict[str, Any] = {
        "mqtt": {k: v for k, v in {"host": mqtt_host, "port": mqtt_port}.items() if v},
        "influx": {k: v for k, v in {"url": influx_url, "database": database}.items() if v},
        "registry_file": registry_file, "instance": instance,
    }
    settings = load_or_exit(IngestSettings, "ingest", config_file, overrides)
    if check:
        click.echo(dump_settings(settings))
        if settings.registry_file is not None:
            from kota.registry import Registry, RegistryError

            try:
                devices = len(Registry.load(settings.registry_file))
            except RegistryError as exc:
                fail(f"{exc}\n(fix the registry file, or unset ingest.registry_file)")
            click.echo(f"registry {settings.registry_file}: {devices} devices")
        click.echo("ingest settings OK")
        return
    if workers > 1:
        _run_workers(settings, workers, config_file, sys.argv[1:])
        return
    logging_from(settings)
    _run_ingest(settings)


def _run_ingest(settings: Any) -> None:
    from ingest.metrics import MetricsPortError
    from ingest.service import IngestService
    from kota.registry import RegistryError

    try:
        service = IngestService(settings)
    except RegistryError as exc:
        fail(f"{exc}\n(fix the registry file, or unset ingest.registry_file)")
    try:
        run_until_signal(service.run)
    except MetricsPortError as exc:
        fail(str(exc), EXIT_FAILED)


def _run_workers(settings: Any, workers: int, config_file: str | None, argv: list[str]) -> None:
    """Start ``workers`` ingest processes on one shared subscription; stop them together."""
    group = settings.mqtt.share_group or "kota-ingest"
    children: list[subprocess.Popen[bytes]] = []
    base_argv = [a for a in argv if not a.startswith("--workers")]
    if "--workers" in argv:
        index = argv.index("--workers")
        base_argv = argv[:index] + argv[index + 2:]
    for number in range(1, workers + 1):
        env = dict(os.environ)
        env["KOTA_INGEST__MQTT__SHARE_GROUP"] = group
        env["KOTA_INGEST__MQTT__CLIENT_ID"] = f"{settings.mqtt.client_id}-{number}"
        env["KOTA_INGEST__BUFFER__DIR"] = str(Path(settings.buffer.dir) / str(number))
        env["KOTA_INGEST__DEADLETTER__DIR"] = str(Path(settings.deadletter.dir) / str(number))
        if settings.metrics_port:
            env["KOTA_INGEST__METRICS_PORT"] = str(settings.metrics_port + number - 1)
        command = [sys.executable, "-m", "kota", *base_argv, "--instance", str(number)]
        children.append(subprocess.Popen(command, env=env))
    click.echo(f"started {workers} ingest workers on $share/{group}/...: pids "
               + ", ".join(str(c.pid) for c in children), err=True)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    codes = [child.wait() for child in children]
    sys.exit(max(codes))
