"""``kota bench alerts`` (registered by the ``kota.bench`` entry point in pyproject.toml; the
group is devstack.cli); the measuring lives in alerts.bench.run."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click


@click.command("alerts")
@click.option("--rate", type=click.FloatRange(0, 100_000), default=10_000, show_default=True,
              help="Background load: ordinary readings per second.")
@click.option("--duration", "duration_s", type=click.FloatRange(5, 3600), default=60,
              show_default=True, help="Seconds of load (probes are sent during it).")
@click.option("--probe-every", "probe_every_s", type=click.FloatRange(1, 600), default=5,
              show_default=True, help="Seconds between probe rounds (a panic press, a Siaga "
                                      "crossing and a floor probe).")
@click.option("--database", type=click.Choice(["sqlite", "postgresql"]), default="sqlite",
              show_default=True, help="kota alerts' database: a SQLite file in the run's "
                                      "folder, or a private PostgreSQL.")
@click.option("--grace", "grace_s", type=click.FloatRange(1, 3600), default=60,
              show_default=True, help="After the load, wait at most this for deliveries.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep services' data and logs here (default: a temporary folder).")
@click.option("--profile", "profile_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Record kota alerts with py-spy (non-blocking, 200 Hz) during the load; raw "
                   "stacks go here. Costs CPU: compare profiled runs with profiled runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Append the result to FILE as one JSON line.")
def alerts(rate: float, duration_s: float, probe_every_s: float, database: str, grace_s: float,
           workdir: Path | None, profile_dir: Path | None, as_json: bool,
           output: Path | None) -> None:
    """Publish → alert committed → delivered to a webhook, under a load of readings.

    Starts a private Mosquitto, InfluxDB (and PostgreSQL with --database postgresql), kota
    ingest, kota indicators and kota alerts on loopback, a webhook receiver and a bare
    subscriber (the floor); stops all of them by PID. Exit code 0 whether or not the target
    (p99 ≤ 5 s) is met. Progress goes to stderr; the summary (or --json) to stdout.

    \b
    Examples:
      kota bench alerts                         # 10,000 readings/s for 60 s, SQLite
      kota bench alerts --database postgresql --output run/bench-alerts.jsonl
      kota bench alerts --rate 1000 --duration 20 --profile run/prof-alerts
    """
    from alerts.bench.run import AlertsBenchConfig, run_alerts_bench, summary

    started = time.monotonic()

    def progress(message: str) -> None:
        click.echo(f"[{time.monotonic() - started:7.1f} s] {message}", err=True)

    config = AlertsBenchConfig(rate=rate, duration_s=duration_s, probe_every_s=probe_every_s,
                               database=database, grace_s=grace_s, workdir=workdir,
                               profile_dir=profile_dir)
    result = run_alerts_bench(config, progress)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(result, ensure_ascii=False) + "\n")
        progress(f"result appended to {output}")
    if as_json:
        json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        click.echo(summary(result))
