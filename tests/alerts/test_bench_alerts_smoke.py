"""Smoke test of the `kota bench alerts` harness with small numbers on real services.

Not a timed test: it checks that the whole path runs (broker, InfluxDB, ingest, indicators,
kota alerts, the webhook receiver, the floor), that every probe was committed and delivered,
and the report's shape. The figures themselves mean little at this size.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from alerts.bench.procs import bench_rules, commit_times
from alerts.bench.run import AlertsBenchConfig, run_alerts_bench, summary
from devstack.cli import bench


def test_kota_bench_lists_alerts() -> None:
    result = CliRunner().invoke(bench, ["alerts", "--help"])
    assert result.exit_code == 0, result.output
    assert "--rate" in result.output and "--database" in result.output


def test_bench_rules_shorten_only_flood_siaga(tmp_path: Path) -> None:
    rules = yaml.safe_load(bench_rules(tmp_path / "rules.yaml", 1.5).read_text())["rules"]
    by_id = {rule["id"]: rule for rule in rules}
    assert by_id["flood-siaga"]["clear_after_s"] == 1.5
    assert by_id["flood-siaga"]["repeat_s"] is None
    assert by_id["flood-rise"]["clear_after_s"] == 1800   # as shipped
    assert "safety-event" in by_id


def test_commit_times_read_kota_alerts_json_log(tmp_path: Path) -> None:
    log = tmp_path / "alerts.log"
    log.write_text("\n".join([
        '{"ts": "2026-12-03T10:00:00.250Z", "level": "info", "logger": "kota.alerts", '
        '"msg": "alert safety-event bench-0001-abc: fired panic"}',
        '{"ts": "2026-12-03T10:00:01.000Z", "level": "info", "logger": "kota.mqtt", '
        '"msg": "alert x y: fired"}',
        "a text line from an import warning",
        '{"ts": "2026-12-03T10:00:02.500Z", "level": "info", "logger": "kota.alerts", '
        '"msg": "alert flood-siaga manggarai: resolved Siaga 2 (Siaga)"}',
    ]) + "\n")
    commits = commit_times(log)
    assert [(c.rule_id, c.scope, c.event) for c in commits] == [
        ("safety-event", "bench-0001-abc", "fired"), ("flood-siaga", "manggarai", "resolved")]
    assert commits[1].at_s - commits[0].at_s == pytest.approx(2.25)


@pytest.mark.slow
def test_bench_alerts_delivers_every_probe(tmp_path: Path) -> None:
    started = time.monotonic()
    messages: list[str] = []
    result = run_alerts_bench(
        AlertsBenchConfig(rate=500, duration_s=8, probe_every_s=2, grace_s=30,
                          workdir=tmp_path), messages.append)
    assert time.monotonic() - started < 120
    assert messages, "progress lines"
    json.dumps(result)  # machine-readable as is

    probes = result["probes"]
    for kind in ("panic", "crossing", "floor"):
        entry = probes[kind]
        assert entry["sent"] >= 2, kind
        assert entry["delivered"] == entry["sent"], (kind, entry)
        hook = entry["publish_to_webhook"]
        assert hook["samples"] == entry["sent"]
        assert 0 < hook["p50_ms"] <= hook["p95_ms"] <= hook["p99_ms"] <= hook["max_ms"] < 30_000
    for kind in ("panic", "crossing"):
        entry = probes[kind]
        assert entry["committed"] == entry["sent"], (kind, entry)
        # committed before it was delivered: the outbox sends only what is committed
        assert 0 < entry["publish_to_commit"]["max_ms"] <= entry["publish_to_webhook"]["max_ms"]
        assert entry["commit_to_webhook"]["samples"] == entry["sent"]
    detail = probes["detail"]
    assert len(detail) == sum(probes[kind]["sent"] for kind in ("panic", "crossing", "floor"))
    assert all(item["webhook_ms"] is not None for item in detail)
    assert probes["duplicate_deliveries"] == 0
    assert result["skipped_crossings"] == 0

    background = result["background"]
    assert background["sent"] == 4000 and background["acked_by_broker"] == 4000
    assert 400 < background["achieved_rate"] < 600
    assert background["alerts_readings_evaluated"] >= 4000   # the load and the probes
    assert 10 < result["alerts_peak_rss_mb"] < 1000
    assert all(result["services_alive_at_end"].values())
    assert {"alerts", "ingest", "mosquitto", "others"} <= set(result["cpu_s"])
    assert [t["id"] for t in result["targets"]] == ["panic_p99", "crossing_p99"]
    assert all(t["result"] in ("PASS", "MISS") for t in result["targets"])
    text = summary(result)
    assert text.splitlines()[-1].startswith("kota bench alerts: panic_p99 ")
    assert "floor" in text
