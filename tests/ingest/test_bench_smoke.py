"""Smoke test of the `kota bench ingest` harness with tiny numbers on real services.

Not a timed test: it checks that every phase runs, nothing is lost, and the result has sane
fields. The figures themselves are meaningless at this size.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from devstack.cli import bench
from ingest.bench.ingest import BenchConfig, run_ingest_bench
from ingest.bench.report import summary_table


@pytest.mark.slow
def test_bench_harness_runs_every_phase(tmp_path: Path) -> None:
    started = time.monotonic()
    messages: list[str] = []
    result = run_ingest_bench(
        BenchConfig(messages=2000, rate=500, seconds=2, publishers=1, workdir=tmp_path),
        messages.append)
    assert time.monotonic() - started < 60
    assert messages, "progress lines"
    json.dumps(result)  # machine-readable as is

    drain = result["drain"]
    assert drain["outcome"] == "complete"
    assert drain["published_acked"] == 2000
    assert drain["stored"] == 2000 and drain["lost"] == 0
    assert drain["rejected"] == 0
    assert drain["msg_per_s"] > 0 and drain["seconds_from_ready"] > 0
    assert drain["startup_s"] is not None and 0 < drain["startup_s"] < drain["seconds_from_start"]
    assert 10 < drain["peak_rss_mb"]["main"] < 1000

    live = result["live"]
    assert live["sent"] == 1000 and live["acked_by_broker"] == 1000
    assert live["stored"] == 1000 and live["lost"] == 0
    assert 400 < live["achieved_rate"] < 600
    latency = live["latency"]
    assert 50 < live["probes"] < 200  # one device in ten is a latency probe
    assert latency["samples"] == live["probes"]
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"] < 10_000

    floors = result["floors"]
    assert floors["mqtt_bare_subscriber"]["received"] == 2000
    assert floors["influx_only"]["points"] == 2000 and floors["influx_only"]["stored"] == 2000
    assert floors["ingest_vs_mqtt_floor"] > 0 and floors["ingest_vs_influx_floor"] > 0

    assert [t["id"] for t in result["targets"]] == ["drain_rate", "drain_lost", "peak_rss",
                                                    "live_p99"]
    assert all(t["result"] in ("PASS", "MISS") for t in result["targets"])
    assert {"cpu_model", "cores", "memory_mb", "python", "mosquitto", "influxd",
            "date"} <= set(result["machine"])
    table = summary_table(result)
    assert "PASS" in table and "drain >= 40,000 msg/s" in table


@pytest.mark.slow
def test_bench_cli_json_and_output(tmp_path: Path) -> None:
    output = tmp_path / "bench.jsonl"
    run = CliRunner().invoke(bench, ["ingest", "--messages", "300", "--skip-live",
                                     "--skip-floors", "--publishers", "1", "--json",
                                     "--workdir", str(tmp_path / "work"),
                                     "--output", str(output)])
    assert run.exit_code == 0, run.output
    printed = json.loads(run.stdout)
    stored = json.loads(output.read_text().splitlines()[-1])
    assert printed["drain"]["lost"] == 0 == stored["drain"]["lost"]
    assert "live" not in printed and "floors" not in printed
    assert printed["targets"][-1]["result"] == "n/a"


@pytest.mark.slow
def test_subscriber_comparison_counts_every_message() -> None:
    from ingest.bench.subscribers import compare_subscribers

    figures = compare_subscribers(2_000, timeout_s=60)
    assert figures.paho_received == figures.kota_received == 2_000
    assert figures.paho_seconds > 0 and figures.kota_seconds > 0
