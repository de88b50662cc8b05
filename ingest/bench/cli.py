"""``kota bench ingest`` and ``kota bench subscribers`` (registered by the ``kota.bench`` entry
points in pyproject.toml; the group is devstack.cli); the measuring lives in ingest.bench.ingest."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from ingest.bench.ingest import BenchConfig, run_ingest_bench
from ingest.bench.report import summary_table


@click.command("ingest")
@click.option("--messages", type=click.IntRange(1, 10_000_000), default=200_000,
              show_default=True, help="Backlog size N (queued while ingest is away).")
@click.option("--rate", type=click.FloatRange(1, 1_000_000), default=10_000, show_default=True,
              help="Live phase: messages per second.")
@click.option("--seconds", type=click.FloatRange(0.5, 3600), default=20, show_default=True,
              help="Live phase: duration.")
@click.option("--workers", type=click.IntRange(1, 32), default=1, show_default=True,
              help="Passed to kota ingest --workers.")
@click.option("--skip-live", is_flag=True, help="Skip the live latency phase.")
@click.option("--skip-floors", is_flag=True,
              help="Skip the bare-subscriber and InfluxDB-alone floors.")
@click.option("--publishers", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Processes publishing the backlog.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep services' data and logs here (default: a temporary folder).")
@click.option("--profile", "profile_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Record ingest with py-spy during the drain; raw stacks go to this folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Append the result to FILE as one JSON line.")
def ingest(messages: int, rate: float, seconds: float, workers: int, skip_live: bool,
           skip_floors: bool, publishers: int, workdir: Path | None, profile_dir: Path | None,
           as_json: bool, output: Path | None) -> None:
    """Backlog drain, live latency and floors for kota ingest, with PASS/MISS per target.

    Starts a private Mosquitto and InfluxDB on loopback, runs `kota ingest` as a subprocess,
    and stops all of them by PID. Exit code 0 whether or not the targets are met. Progress
    goes to stderr; the summary (or --json) to stdout.

    \b
    Examples:
      kota bench ingest                         # N=200,000; 10,000 msg/s for 20 s
      kota bench ingest --workers 2 --output run/bench.jsonl
      kota bench ingest --messages 20000 --seconds 5 --skip-floors
    """
    started = time.monotonic()

    def progress(message: str) -> None:
        click.echo(f"[{time.monotonic() - started:7.1f} s] {message}", err=True)

    config = BenchConfig(messages=messages, rate=rate, seconds=seconds, workers=workers,
                         live=not skip_live, floors=not skip_floors, publishers=publishers,
                         workdir=workdir, profile_dir=profile_dir)
    result = run_ingest_bench(config, progress)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(result, ensure_ascii=False) + "\n")
        progress(f"result appended to {output}")
    if as_json:
        json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        click.echo(summary_table(result))


@click.command("subscribers")
@click.option("--messages", type=click.IntRange(1, 5_000_000), default=100_000,
              show_default=True, help="Backlog queued for each subscriber.")
def subscribers(messages: int) -> None:
    """Drain one QoS 1 backlog with a bare paho-mqtt subscriber and with kota.mqtt.

    The measurement behind docs/decisions.md D1: both clients only count and acknowledge.
    """
    from ingest.bench.subscribers import compare_subscribers

    figures = compare_subscribers(messages)
    paho = figures.rate(figures.paho_received, figures.paho_seconds)
    kota = figures.rate(figures.kota_received, figures.kota_seconds)
    click.echo(f"paho-mqtt subscriber  {figures.paho_received:>9,} in {figures.paho_seconds:6.2f} s"
               f"  {paho:>10,.0f} msg/s")
    click.echo(f"kota.mqtt subscriber  {figures.kota_received:>9,} in {figures.kota_seconds:6.2f} s"
               f"  {kota:>10,.0f} msg/s")
    click.echo(f"{messages:,} messages each; kota.mqtt / paho = {kota / paho:.1f}x" if paho else "")
