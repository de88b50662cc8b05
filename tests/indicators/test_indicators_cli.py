"""``kota indicators`` as a real process against a real InfluxDB: --check, --once, --since."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kota_testing import REPO, count_points, influx_query

from devstack.localstack import LocalService

REGISTRY = REPO / "simulators" / "cities" / "jakarta" / "devices.yaml"


def run(influx: LocalService, database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update({
        "KOTA_INDICATORS__INFLUX__URL": f"http://127.0.0.1:{influx.port}",
        "KOTA_INDICATORS__INFLUX__DATABASE": database,
        "KOTA_INDICATORS__METRICS_PORT": "0",
        "KOTA_INDICATORS__WINDOWS": '["1h", "1d"]',
        "KOTA_INDICATORS__REGISTRY_FILE": str(REGISTRY),
    })
    env.pop("KOTA_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "kota", "indicators", *args], env=env,
                          capture_output=True, text=True, timeout=60, cwd=Path(REPO))


@pytest.mark.slow
def test_check_validates_settings_and_data(influxdb: LocalService, database: str) -> None:
    result = run(influxdb, database, "--check")
    assert result.returncode == 0, result.stderr
    assert "indicators settings OK" in result.stdout
    match = re.search(r"registry: (\d+) devices; districts: 44 \((\d+) with population\)",
                      result.stdout)
    assert match is not None, result.stdout
    assert int(match.group(1)) == 118 and int(match.group(2)) >= 30


@pytest.mark.slow
def test_once_computes_what_is_due_and_a_second_run_nothing_twice(influxdb: LocalService,
                                                                  database: str) -> None:
    first = run(influxdb, database, "--once")
    assert first.returncode == 0, first.stderr
    computed = re.search(r"computed (\d+) windows", first.stdout)
    assert computed is not None and int(computed.group(1)) == 2  # the latest hour and day
    second = run(influxdb, database, "--once")
    again = re.search(r"computed (\d+) windows", second.stdout)
    assert again is not None
    # only a window that closed between the two runs (an hour boundary) may come again
    assert int(again.group(1)) <= 1
    total = int(computed.group(1)) + int(again.group(1))
    assert count_points(influxdb, database, "indicator_runs") == total


@pytest.mark.slow
def test_since_until_recomputes_a_range(influxdb: LocalService, database: str) -> None:
    result = run(influxdb, database, "--since", "2026-11-20T00:00:00+07:00",
                 "--until", "2026-11-20T06:00:00+07:00")
    assert result.returncode == 0, result.stderr
    assert "recomputed 6 windows" in result.stdout  # six hours; the day is not closed in range
    series = influx_query(influxdb, database,
                          "SELECT \"points\" FROM \"indicator_runs\" WHERE \"window\"='1h'")
    assert len(series[0]["values"]) == 6
    bad = run(influxdb, database, "--since", "2026-11-20T00:00:00")
    assert bad.returncode != 0 and "time zone" in bad.stderr


@pytest.mark.slow
def test_until_alone_recomputes_the_day_before_with_progress_and_exits(
        influxdb: LocalService, database: str) -> None:
    # the endless service would never return: subprocess.run's timeout would fail the test
    result = run(influxdb, database, "--until", "2026-11-20T06:00:00+07:00")
    assert result.returncode == 0, result.stderr
    assert "--since not given: recomputing the day before --until, from " \
           "2026-11-18T23:00:00Z" in result.stderr
    assert ("recomputing 24 windows from 2026-11-18T23:00:00Z to 2026-11-19T23:00:00Z"
            in result.stderr)
    # a progress line after the first window (then every few seconds), with an estimate
    assert re.search(r"^windows 1/24 \(4 %\), \d+ s, ~\d+ s left$", result.stderr,
                     re.MULTILINE), result.stderr
    # the summary: 24 hours (the local day 11-19 starts before the range), points, elapsed
    assert re.search(r"^recomputed 24 windows \(1h: 24\), \d+ points written in [\d.]+ s$",
                     result.stdout, re.MULTILINE), result.stdout
    assert count_points(influxdb, database, "indicator_runs") == 24


@pytest.mark.slow
def test_range_mistakes_are_one_line_errors(influxdb: LocalService, database: str) -> None:
    backwards = run(influxdb, database, "--since", "2026-11-21T00:00:00+07:00",
                    "--until", "2026-11-20T00:00:00+07:00")
    assert backwards.returncode == 2
    assert backwards.stderr == ("error: --since 2026-11-21T00:00:00+07:00 is not before --until "
                                "2026-11-20T00:00:00+07:00: nothing to recompute\n")
    equal = run(influxdb, database, "--since", "2026-11-20T00:00:00Z",
                "--until", "2026-11-20T00:00:00Z")
    assert equal.returncode == 2 and "is not before --until" in equal.stderr
    future = run(influxdb, database, "--since", "2099-01-01T00:00:00Z")
    assert future.returncode == 2
    assert re.search(r"--until \S+Z \(now\)", future.stderr), future.stderr
    both = run(influxdb, database, "--once", "--until", "2026-11-20T00:00:00Z")
    assert both.returncode == 2 and "--once" in both.stderr
    replace = run(influxdb, database, "--replace")
    assert replace.returncode == 2 and "--replace needs --since" in replace.stderr
    short = run(influxdb, database, "--since", "2026-11-20T00:10:00Z",
                "--until", "2026-11-20T00:50:00Z")
    assert short.returncode == 0, short.stderr
    assert "no 1h or 1d window lies wholly inside the range" in short.stderr
    assert "recomputed 0 windows" in short.stdout
    assert count_points(influxdb, database, "indicator_runs") == 0
