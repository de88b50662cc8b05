"""The ``kota-agent`` command. ``kota-agent --help`` is the short manual; docs/agent.md the long."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import click

from agent import __version__
from agent.config import (
    DEFAULT_CONFIG,
    AgentConfig,
    ConfigError,
    load_config,
    problems,
    sensor_label,
)

__all__ = ["main"]

_config_option = click.option(
    "--config", "-c", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get("KOTA_AGENT_CONFIG", str(DEFAULT_CONFIG)),
    show_default="$KOTA_AGENT_CONFIG or /etc/kota-agent/agent.toml",
    help="The agent's TOML file.")


def _load(path: Path, *, files: bool = True, need_sensors: bool = True) -> AgentConfig:
    """The config, after :func:`agent.config.problems`: each problem is one line on stderr
    (``error: agent.toml:12: …``); any error (not a warning) exits with status 2."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        for line in exc.problems:
            click.echo(f"error: {line}", err=True)
        sys.exit(2)
    found = problems(config, files=files, need_sensors=need_sensors)
    for problem in found:
        click.echo(f"{'warning' if problem.warning else 'error'}: {problem}", err=True)
    if any(not problem.warning for problem in found):
        sys.exit(2)
    return config


def _gpio_sensors(config: AgentConfig) -> list[str]:
    from agent.drivers import GPIO_DRIVERS

    return [sensor_label(index, sensor) for index, sensor in enumerate(config.sensor)
            if sensor.driver in GPIO_DRIVERS]


def _gpio_note(config: AgentConfig) -> str | None:
    """One line if this config has GPIO sensors and this machine has no GPIO, else None."""
    from agent.drivers._gpio import GPIO_ADVICE, gpio_unavailable

    labels = _gpio_sensors(config)
    if not labels:
        return None
    reason = gpio_unavailable()
    if reason is None:
        return None
    return (f"GPIO is unavailable here: {', '.join(labels)} cannot be read on this machine "
            f"({reason}); {GPIO_ADVICE}")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kota-agent")
def main() -> None:
    """Read a Raspberry Pi's sensors and publish them to Kota Cerdas, losing nothing.

    \b
    Getting started on a Pi (details: docs/agent.md):
      1. sudo agent/install/install.sh          installs into /opt/kota-agent, adds the service
      2. kota-agent sample-config > /etc/kota-agent/agent.toml   then edit: [agent] id and city,
         [mqtt] broker and credentials, one [[sensor]] table per sensor you wired
      3. kota-agent validate                    the file is checked; each error names file,
                                                line and setting; exit status 2 if any
      4. kota-agent check                       reads each sensor once and prints the values
      5. sudo systemctl enable --now kota-agent runs `kota-agent run` at every boot

    \b
    What `run` does: every reading is written to a local SQLite queue first (with its seq and
    ts), published at QoS 1 to kota/<city>/<kind>/<agent id>-<kind>, and deleted only when the
    broker acknowledged it. Offline, readings wait (up to queue.max_readings, oldest dropped
    and counted) and go out oldest first as batches when the network returns. A status
    heartbeat reports queue depth, drops, CPU temperature, RSSI and clock sync; the Last Will
    marks the device offline.

    \b
    A minimal config (TOML; every key is checked, an unknown one is an error):
      [agent]
      id = "jkt-pi-gambir-01"     # device ids: jkt-pi-gambir-01-air, …-status
      city = "jakarta"
      [mqtt]
      host = "mqtt.example.go.id"
      username = "jkt-pi-gambir-01"
      password_file = "/etc/kota-agent/mqtt.password"
      [[sensor]]
      driver = "sds011"
      port = "/dev/ttyUSB0"

    \b
    Drivers (keys and wiring: agent/drivers/<driver>/README.md):
      sds011, pms5003 (also PMS7003), bme280, dht22, ultrasonic (JSN-SR04T, HC-SR04),
      rain_gauge, sound (SEN0232 on ADS1115), gpio_event (panic button, PIR), command
    """


@main.command()
@_config_option
def validate(config_path: Path) -> None:
    """Check the config file and show which topic each sensor publishes to.

    Besides every key and value: the password, CA and client-certificate files must exist and
    be readable, two sensors may not publish the same field of the same device, and there must
    be at least one sensor. Each problem is one line naming file, line and setting; exit
    status 2 if there is any error (warnings, such as a password file every user can read, or
    no GPIO on this machine, leave it 0).
    """
    from agent.runner import describe

    config = _load(config_path)
    click.echo(f"{config_path}: ok — agent {config.agent.id}, broker "
               f"{config.mqtt.host}:{config.mqtt.port}{' (TLS)' if config.mqtt.tls else ''}")
    for index, sensor in enumerate(config.sensor):
        click.echo(f"  {describe(config, sensor, index)}  every {sensor.interval_s:g} s")
    click.echo(f"  heartbeat → {config.topic('status', config.status_device)}")
    note = _gpio_note(config)
    if note:
        click.echo(f"warning: {note}", err=True)


@main.command()
@_config_option
@click.option("--sensor", "only", multiple=True, metavar="NAME",
              help="Only this sensor (its name, driver name, or number from 1); repeatable.")
def check(config_path: Path, only: tuple[str, ...]) -> None:
    """Read each configured sensor once and print the values (nothing is published).

    Values outside the sensor's physical range are shown as FLAGGED: the agent would not
    publish them. Exit status 1 if any sensor could not be read.
    """
    from agent.drivers import GPIO_DRIVERS, build
    from agent.runner import screen_for_kind

    config = _load(config_path, files=False)
    failed = 0
    note = _gpio_note(config)
    if note:
        click.echo(f"warning: {note}", err=True)
    for index, sensor in enumerate(config.sensor):
        label = sensor.name or sensor_label(index, sensor)
        if only and not {sensor.name, sensor.driver, str(index + 1)} & set(only):
            continue
        device_id = config.device_id(sensor)
        if note and sensor.driver in GPIO_DRIVERS:
            failed += 1
            click.echo(f"{label} ({device_id}): SKIPPED: no GPIO on this machine")
            continue
        try:
            driver = build(sensor)
            driver.open()
            try:
                readings = driver.read()
            finally:
                driver.close()
        except Exception as exc:
            failed += 1
            click.echo(f"{label} ({device_id}): FAILED: {exc}")
            continue
        if not readings:
            click.echo(f"{label} ({device_id}): no event since start")
        for reading in readings:
            screen_for_kind(reading, driver.limits)
            values = ", ".join(f"{k}={v}" for k, v in reading.fields.items()) or "-"
            click.echo(f"{label} ({device_id}, {reading.kind}): {values}")
            for name, why in reading.flags.items():
                click.echo(f"    FLAGGED {name}={reading.raw.get(name)}: {why}")
    sys.exit(1 if failed else 0)


@main.command()
@_config_option
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def run(config_path: Path, log_level: str) -> None:
    """Run the agent until SIGTERM / Ctrl-C (what the systemd unit starts)."""
    from agent.runner import Agent

    # without sensors it still drains what its queue holds: a warning, not an error
    config = _load(config_path, need_sensors=False)
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.Formatter.converter = time.gmtime
    note = _gpio_note(config)
    if note:
        logging.getLogger("kota_agent").error("%s", note)
    try:
        agent = Agent(config)
    except (OSError, sqlite3.Error) as exc:  # state_dir not writable, disk full, bad queue
        click.echo(f"error: state_dir {config.agent.state_dir}: {exc}", err=True)
        sys.exit(2)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.stop_event.set())
    agent.run()


@main.command("sample-config")
def sample_config() -> None:
    """Print a complete config file: the common tables and every driver's sample."""
    from agent.drivers import DRIVERS, DRIVERS_DIR

    click.echo((Path(__file__).parent / "sample.conf").read_text(encoding="utf-8")
               .rstrip())
    for name in DRIVERS:
        sample = (DRIVERS_DIR / name / "sample.conf").read_text(encoding="utf-8")
        click.echo("\n" + "\n".join(line if line.startswith("#") or not line else f"# {line}"
                                    for line in sample.rstrip().splitlines()))


if __name__ == "__main__":
    main()
