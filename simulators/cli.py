"""``kota simulate``: the click command (loaded lazily by kota/cli.py)."""

from __future__ import annotations

import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from kota.config import ConfigError, dump_settings, load_settings
from kota.service_cli import EXIT_CODES, fail
from kota.settings_doc import settings_help

__all__ = ["parse_duration_s", "simulate"]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration_s(text: str) -> float:
    """'90' or '90s', '45m', '6h', '7d' -> seconds."""
    match = _DURATION_RE.match(text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 90s, 45m, 6h or 7d")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def _epilog() -> str:
    from simulators.settings import SimulateSettings

    return ("\b\nSettings (section 'simulate:' of kota.yaml; environment variable in brackets):\n"
            + settings_help(SimulateSettings, "simulate") + "\n\n" + EXIT_CODES)


@click.command(epilog=_epilog(), context_settings={"max_content_width": 110})
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Configuration file (default: $KOTA_CONFIG or ./kota.yaml).")
@click.option("--host", help="MQTT broker host (simulate.mqtt.host).")
@click.option("--port", type=int, help="MQTT broker port (simulate.mqtt.port).")
@click.option("--qos", type=click.IntRange(0, 2), help="QoS of every publish (default 1).")
@click.option("--registry", "registry_file", type=click.Path(dir_okay=False),
              help="Device registry (default: the city's devices.yaml).")
@click.option("--devices", type=int, help="Measuring devices: fewer = subset, more = generated.")
@click.option("--seed", type=int, help="Random seed; same seed and --start = same messages.")
@click.option("--start", help="Simulated start, RFC 3339 with zone (default: window ends now).")
@click.option("--duration", help="Simulated time to cover: 90s, 45m, 6h, 7d (default 1 day).")
@click.option("--speed", type=float,
              help="Simulated seconds per real second (default 60); 0 = as fast as possible.")
@click.option("--live", help="Then carry on in real time this long: 30m, 12h, 7d (default 0).")
@click.option("--count", "max_messages", type=int, help="Stop after this many messages.")
@click.option("--rate", "max_rate_per_s", type=float, help="At most this many messages/s.")
@click.option("--scenario", help="A shipped scenario name or a scenario YAML file.")
@click.option("--fault-share", type=float, help="Share of messages with a fault, e.g. 0.05.")
@click.option("--faults", "fault_types", help="Comma-separated fault types to inject.")
@click.option("--print", "to_stdout", is_flag=True,
              help="Print messages as JSON lines (topic, payload) instead of publishing.")
@click.option("--write-registry", type=click.Path(dir_okay=False),
              help="Write the simulated devices (with extras and heartbeat twins) as a registry "
                   "YAML for `kota ingest`, then continue.")
@click.option("--list-scenarios", is_flag=True, help="List the shipped scenarios and exit.")
@click.option("--check", is_flag=True, help="Validate settings and scenario, print them, exit.")
def simulate(config_file: str | None, host: str | None, port: int | None, qos: int | None,
             registry_file: str | None, devices: int | None, seed: int | None,
             start: str | None, duration: str | None, speed: float | None, live: str | None,
             max_messages: int | None, max_rate_per_s: float | None, scenario: str | None,
             fault_share: float | None, fault_types: str | None, to_stdout: bool,
             write_registry: str | None, list_scenarios: bool, check: bool) -> None:
    """Publish a believable city (default: Jakarta) over MQTT, for demos and tests.

    Devices from the city's registry report on kota/{city}/{kind}/{device_id}: air stations
    with rush hours and haze, rain gauges under drifting storm cells, Ciliwung gauges that
    rise Katulampa -> Depok (3-5 h) -> Manggarai (6-9 h), noise by zone and hour, safety
    events in bursts, and a heartbeat from every device's <id>-status twin.

    The simulated clock runs --speed times faster than real time, over a window placed so
    that every ts is already past when sent (ingest refuses ts > 300 s ahead). Same --seed
    and --start give byte-identical messages.

    \b
    Examples:
      kota simulate                                # a day of Jakarta in 24 min, QoS 1
      kota simulate --speed 1 --duration 8h        # live, real time
      kota simulate --speed 0 --duration 7d        # backfill the past week as fast as possible
      kota simulate --duration 1d --live 7d        # a day in 24 min, then a week in real time
      kota simulate --scenario banjir-ciliwung --speed 600      # a flood wave in 3 minutes
      kota simulate --scenario kabut-asap --speed 3600          # a haze week in 3 hours
      kota simulate --devices 2000 --write-registry run/sim-registry.yaml
      kota simulate --fault-share 0.05 --faults out_of_range,malformed,clock_skew
      kota simulate --print --count 20 --speed 0   # look at the messages, no broker
      kota simulate --seed 7 --start 2026-01-15T00:00:00+07:00 --speed 0 --print > a.jsonl

    \b
    Fault types (--faults, share from --fault-share):
      dropout       message not sent (seq still counts, so gaps show)
      stuck         repeats the previous reading           (accepted by ingest)
      spike         one value multiplied 3-10x, in range   (accepted by ingest)
      out_of_range  one value beyond the kind's range      (ingest: out_of_range)
      clock_skew    ts days ahead or near 1970             (timestamp_future / _too_old)
      malformed     truncated JSON, not an object, number as string, renamed key
    """
    from simulators.profile import DataFileError
    from simulators.publisher import PublishError
    from simulators.runner import build_stream, run
    from simulators.scenario import load_scenario, scenario_names
    from simulators.settings import SimulateSettings

    if list_scenarios:
        for name in scenario_names():
            loaded = load_scenario(name)
            click.echo(f"{name:20s} {loaded.duration_h or '-':>6} h  {loaded.description}")
        return
    overrides: dict[str, Any] = {
        "mqtt": {k: v for k, v in {"host": host, "port": port, "qos": qos}.items()
                 if v is not None},
        "registry_file": registry_file, "devices": devices, "seed": seed, "start": start,
        "duration_s": parse_duration_s(duration) if duration else None, "speed": speed,
        "live_s": parse_duration_s(live) if live else None,
        "max_messages": max_messages, "max_rate_per_s": max_rate_per_s, "scenario": scenario,
        "faults": {k: v for k, v in {
            "share": fault_share,
            "types": [t.strip() for t in fault_types.split(",") if t.strip()]
            if fault_types else None}.items() if v is not None},
    }
    try:
        settings = load_settings(SimulateSettings, "simulate", config_file, overrides)
        if scenario:
            load_scenario(scenario)
    except ConfigError as exc:
        fail(exc.problems)
    except DataFileError as exc:
        fail(str(exc))
    if check:
        click.echo(dump_settings(settings))
        click.echo("simulate settings OK")
        return
    if write_registry:
        stream, _window = build_stream(settings)
        Path(write_registry).parent.mkdir(parents=True, exist_ok=True)
        Path(write_registry).write_text(stream.city.registry().dump_yaml(), encoding="utf-8")
        click.echo(f"wrote {len(stream.city.registry())} devices to {write_registry}", err=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    def echo_message(message: Any) -> None:
        import orjson

        try:
            payload: Any = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            payload = message.payload.decode("utf-8", "replace")  # a malformed-payload fault
        line = {"topic": message.topic, "payload": payload}
        if message.fault:
            line["fault"] = message.fault
        sys.stdout.write(orjson.dumps(line).decode() + "\n")

    try:
        summary = run(settings, stop, sink=echo_message if to_stdout else None,
                      sink_verb="printed", sink_note="nothing published: --print",
                      on_progress=lambda line: click.echo(line, err=True))
    except (PublishError, DataFileError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(summary.line(), err=True)
