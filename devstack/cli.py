"""``kota demo`` and the ``kota bench`` group (registered by entry points in pyproject.toml)."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from kota.cli import LazyEntryPointGroup


@click.command()
@click.option("--run-dir", type=click.Path(file_okay=False), default="run/demo", show_default=True,
              help="Where the broker, database, logs and generated config live.")
@click.option("--history", type=click.Choice(["backfill", "replay", "none"]),
              default="backfill", show_default=True,
              help="The past --days: backfill = written straight to InfluxDB in seconds, then "
                   "live; replay = published at --speed through MQTT, then live; none = live.")
@click.option("--speed", type=float, default=60.0, show_default=True,
              help="With --history replay: simulated seconds per real second (60: a day in "
                   "24 minutes).")
@click.option("--days", type=float, default=1.0, show_default=True,
              help="Simulated days of history (replay: per simulator run; it restarts).")
def demo(run_dir: str, history: str, speed: float, days: float) -> None:
    """Run broker, InfluxDB, ingest and a simulated Jakarta on loopback. Ctrl-C stops all.

    Nothing touches the system's own Mosquitto or InfluxDB: the demo starts private copies
    (preferring ports 1883 and 8086, else free ones) with their data under RUN_DIR. The last
    day is backfilled in seconds, so the live page is current from the start.
    """
    from devstack.demo import Demo

    stop = {"requested": False}

    def request_stop(_signum: int, _frame: object) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    runner = Demo(Path(run_dir), speed, days * 86400, lambda text: click.echo(text, err=True),
                  history)
    try:
        runner.start()
        click.echo(runner.banner())
        runner.supervise(lambda: stop["requested"])
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        click.echo(f"error: {exc}", err=True)
        click.echo("Run `make services` to install Mosquitto and InfluxDB.", err=True)
    finally:
        runner.stop()


@click.group(cls=LazyEntryPointGroup, entry_point_group="kota.bench")
def bench() -> None:
    """Measure the pipeline on this machine (broker and InfluxDB included).

    Each benchmark lives next to what it measures (ingest/bench/, indicators/bench.py,
    alerts/bench/) and is registered in pyproject.toml under
    [project.entry-points."kota.bench"].
    """

