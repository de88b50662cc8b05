"""Hourly roll-ups as continuous queries in the real InfluxDB 1.6: the statements, the checks
of indicators/rollups.yaml, and CQs that really run (RESAMPLE EVERY 1s in the test) and write
exact hourly aggregates with every tag kept; install is idempotent, backfill covers old hours."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner
from kota_testing import REPO as REPO_ROOT
from kota_testing import influx_query, wait_until

from devstack.localstack import LocalService
from indicators.rollup import (
    ROLLUPS_FILE,
    RollupPlan,
    drop,
    install,
    installed,
    load_rollups,
    plan,
)
from kota.cli import main
from kota.influx import InfluxClient, InfluxDataError, InfluxSettings

HOUR_S = 3600
T = TypeVar("T")


def _plan(database: str, rollups_file: Path = ROLLUPS_FILE, every: str = "1s") -> RollupPlan:
    return plan(database, "", "kota_1h", "INF", "1h", every, "3h", load_rollups(rollups_file))


def _run(influx: LocalService, database: str,
         action: Callable[[InfluxClient], Awaitable[T]]) -> T:
    async def go() -> T:
        client = InfluxClient(InfluxSettings(url=f"http://127.0.0.1:{influx.port}",
                                             database=database))
        try:
            return await action(client)
        finally:
            await client.close()
    return asyncio.run(go())


def _write(influx: LocalService, database: str, lines: list[str]) -> None:
    import httpx

    response = httpx.post(f"http://127.0.0.1:{influx.port}/write",
                          params={"db": database, "precision": "s"},
                          content="\n".join(lines).encode(), timeout=30)
    assert response.status_code == 204, response.text


def _rolled(influx: LocalService, database: str, measurement: str) -> list[dict[str, Any]]:
    series = influx_query(influx, database,
                          f'SELECT * FROM "{database}"."kota_1h"."{measurement}"')
    return [dict(zip(one["columns"], values, strict=True))
            for one in series for values in one["values"]]


def test_the_shipped_file_covers_every_kind() -> None:
    rollups = load_rollups()
    assert sorted(rollups) == ["air", "noise", "rain", "safety", "status", "water"]
    names = {o.name for o in rollups["safety"]}
    assert names == {"events", "count"}
    assert {o.name for o in rollups["rain"]} >= {"rain_mm_sum"}
    # no arithmetic mean of decibels
    assert not [o for o in rollups["noise"] if o.aggregate == "mean"]


@pytest.mark.parametrize(("text", "message"), [
    ("weather:\n  t: [mean]\n", "weather: not a measurement ingest writes"),
    ("safety:\n  message: [count]\n", "safety.message: not a numeric field of kind safety"),
    ("air:\n  pm25: [average]\n", "air.pm25: unknown aggregate 'average'"),
    ("air:\n  pm25: {mean: x}\n  pm10: {max: x}\n", "air: an output name is used twice"),
    ("air:\n  pm25: {mean: 'a b'}\n", "output name 'a b' is not a plain identifier"),
    ("air:\n  pm25: []\n", "air.pm25: no aggregates"),
    ("rain:\n  rain_mm: {sum: time}\n", "output name 'time' is a tag or 'time'"),
    ("air:\n  pm25: {mean: city}\n", "output name 'city' is a tag"),
    ("safety:\n  count: {sum: event}\n", "output name 'event' is a tag"),
    ("- air\n", "expected a mapping"),
])
def test_bad_rollup_files_are_refused_with_the_place(tmp_path: Path, text: str,
                                                    message: str) -> None:
    path = tmp_path / "rollups.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_rollups(path)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("retention", "forever", "rollup.retention: 'forever' is not a duration"),
    ("interval", "INF", "rollup.interval"),
    ("every", "0m", "rollup.every"),
    ("resample_for", "3 h", "rollup.resample_for"),
    ("every", "999999w", "at most 100 years"),
    # what InfluxDB would refuse only after the old CQ was dropped
    ("resample_for", "30m", r"rollup.resample_for \(30m\) must be at least rollup.interval"),
    ("retention", "30m", r"rollup.retention \(30m\) must be at least 1h"),
])
def test_bad_durations_are_refused(field: str, value: str, message: str) -> None:
    args = {"retention": "INF", "interval": "1h", "every": "15m", "resample_for": "3h"}
    args[field] = value
    with pytest.raises(ValueError, match=message):
        plan("kota", "", "kota_1h", args["retention"], args["interval"], args["every"],
             args["resample_for"], load_rollups())


def test_the_raw_retention_policy_is_never_the_target(influxdb: LocalService,
                                                      database: str) -> None:
    with pytest.raises(ValueError, match="where the raw readings are"):
        plan(database, "raw", "raw", "INF", "1h", "1s", "3h", load_rollups())
    # the database's default policy (autogen here) when influx.retention_policy is empty
    onto_default = plan(database, "", "autogen", "INF", "1h", "1s", "3h", load_rollups())
    with pytest.raises(ValueError, match="is the retention policy of the raw readings"):
        _run(influxdb, database, lambda client: install(client, onto_default))
    assert _run(influxdb, database, lambda client: installed(client, onto_default)) == {}


@pytest.mark.slow
def test_a_refused_continuous_query_leaves_the_old_one_in_place(influxdb: LocalService,
                                                                database: str) -> None:
    rollup = _plan(database)
    _run(influxdb, database, lambda client: install(client, rollup))
    before = _run(influxdb, database, lambda client: installed(client, rollup))
    # a plan InfluxDB refuses at CREATE time (FOR shorter than the bucket; plan() would
    # stop it, so it is built directly): the dropped CQ must be put back
    refused = RollupPlan(database, "", "kota_1h", "INF", "1h", "1s", "30m", rollup.rollups)
    with pytest.raises(InfluxDataError, match="FOR duration must be >= GROUP BY time"):
        _run(influxdb, database, lambda client: install(client, refused))
    assert _run(influxdb, database, lambda client: installed(client, rollup)) == before


def test_statements_quote_names_and_keep_tags() -> None:
    statement = _plan("kota").create_cq("safety")
    assert statement == (
        'CREATE CONTINUOUS QUERY "kota_rollup_1h_safety" ON "kota" RESAMPLE EVERY 1s FOR 3h '
        'BEGIN SELECT count("count") AS "events", sum("count") AS "count" INTO '
        '"kota"."kota_1h"."safety" FROM "kota".."safety" GROUP BY time(1h), * END')


@pytest.mark.slow
def test_continuous_queries_roll_up_the_raw_readings(influxdb: LocalService,
                                                     database: str) -> None:
    rollup = _plan(database)
    done = _run(influxdb, database, lambda client: install(client, rollup))
    assert done[0] == "retention policy kota_1h created (INF)"
    hour = int(time.time()) // HOUR_S * HOUR_S - HOUR_S  # the previous full hour
    air = "air,city=jakarta,district=Menteng,kind=air,device=air-a"
    rain = "rain,city=jakarta,district=Tebet,kind=rain,device=rain-t"
    safety = "safety,city=jakarta,district=Gambir,kind=safety,device=panic-g"
    _write(influxdb, database, [
        f"{air} pm25=10,temperature=30 {hour + 60}",
        f"{air} pm25=20,temperature=28 {hour + 1200}",
        f"{air} pm25=60,temperature=31 {hour + 3000}",
        f"{rain} rain_mm=0.5,tips=2 {hour + 100}",
        f"{rain} rain_mm=2.0,tips=8 {hour + 200}",
        f"{safety},event=panic count=1 {hour + 300}",
        f"{safety},event=panic count=3 {hour + 400}",
        f"{safety},event=fire count=1 {hour + 500}",
    ])
    wait_until(lambda: len(_rolled(influxdb, database, "safety")) == 2
               and _rolled(influxdb, database, "air")
               and _rolled(influxdb, database, "rain"), 30,
               "the continuous queries to write the hour")
    [row] = _rolled(influxdb, database, "air")
    assert row["time"] == hour * 1000
    assert (row["pm25_mean"], row["pm25_max"]) == (30.0, 60.0)
    assert (row["temperature_min"], row["temperature_max"]) == (28.0, 31.0)
    assert (row["city"], row["district"], row["kind"], row["device"]) == (
        "jakarta", "Menteng", "air", "air-a")
    [rain_row] = _rolled(influxdb, database, "rain")
    assert (rain_row["rain_mm_sum"], rain_row["rain_mm_max"], rain_row["tips_sum"]) == (
        2.5, 2.0, 10.0)
    by_event = {r["event"]: (r["events"], r["count"]) for r in _rolled(influxdb, database,
                                                                        "safety")}
    assert by_event == {"panic": (2, 4.0), "fire": (1, 1.0)}

    # install again: same CQs, no duplicates; then a file without noise drops that CQ
    _run(influxdb, database, lambda client: install(client, rollup))
    names = _run(influxdb, database, lambda client: installed(client, rollup))
    assert sorted(names) == sorted(rollup.cq_name(m) for m in rollup.rollups)
    smaller = {m: o for m, o in rollup.rollups.items() if m != "noise"}
    fewer = plan(database, "", "kota_1h", "INF", "1h", "1s", "3h", smaller)
    done = _run(influxdb, database, lambda client: install(client, fewer))
    assert "continuous query kota_rollup_1h_noise: dropped (no longer in the roll-up file)" in done
    assert _run(influxdb, database, lambda client: drop(client, fewer)) == [
        f"continuous query {fewer.cq_name(m)}: dropped" for m in sorted(smaller)]
    assert _run(influxdb, database, lambda client: installed(client, fewer)) == {}


@pytest.mark.slow
def test_backfill_rolls_up_whole_hours_before_the_resample_span(influxdb: LocalService,
                                                                database: str) -> None:
    old_hour = int(time.time()) // HOUR_S * HOUR_S - 10 * HOUR_S  # outside FOR 3h
    _write(influxdb, database, [
        f"water,city=jakarta,district=Tebet,kind=water,device=w level_cm={level} "
        f"{old_hour + n * 600}" for n, level in enumerate((700.0, 760.0, 820.0))])
    # "now" 10 h 15 min after that hour began: a 10 h span starts 15 min into it, and the
    # backfill must still take the whole hour (it starts at the bucket boundary)
    now_ns = (old_hour + 10 * HOUR_S + 900) * 1_000_000_000
    rollup = _plan(database, every="1h")
    done = _run(influxdb, database,
                lambda client: install(client, rollup, "10h", now_ns=now_ns))
    assert "  water: backfilled the last 10h" in done
    [row] = _rolled(influxdb, database, "water")
    assert (row["time"], row["level_cm_mean"], row["level_cm_min"], row["level_cm_max"]) == (
        old_hour * 1000, 760.0, 700.0, 820.0)


@pytest.mark.slow
def test_the_command_line(influxdb: LocalService, database: str) -> None:
    runner = CliRunner()
    target = ["--influx-url", f"http://127.0.0.1:{influxdb.port}", "--database", database]
    planned = runner.invoke(main, ["indicators", "rollup", "plan", *target])
    assert planned.exit_code == 0, planned.output
    assert planned.output.splitlines()[0] == (
        f'CREATE RETENTION POLICY "kota_1h" ON "{database}" DURATION INF REPLICATION 1;')
    before = runner.invoke(main, ["indicators", "rollup", "status", *target])
    assert "retention policy kota_1h: missing" in before.output
    assert before.output.rstrip().endswith("6 missing: run `kota indicators rollup install`")
    misplaced = runner.invoke(main, ["indicators", "--database", database, "rollup", "plan"])
    assert misplaced.exit_code == 2 and "--database before 'rollup' would be ignored" in (
        misplaced.output)
    installed_ = runner.invoke(main, ["indicators", "rollup", "install", *target])
    assert installed_.exit_code == 0, installed_.output
    assert "roll-ups installed: 6 continuous queries" in installed_.output
    after = runner.invoke(main, ["indicators", "rollup", "status", *target])
    assert after.output.rstrip().endswith("all roll-ups installed")
    dropped = runner.invoke(main, ["indicators", "rollup", "drop", *target])
    assert dropped.output.rstrip().endswith("dropped 6 continuous queries")
    bad = runner.invoke(main, ["indicators", "rollup", "install", *target, "--backfill", "1y"])
    assert bad.exit_code == 2 and "'1y' is not a duration like 30d" in bad.output


def test_influxdb_2_is_told_to_use_a_task(tmp_path: Path) -> None:
    config = tmp_path / "kota.yaml"
    config.write_text("indicators:\n  influx:\n    version: 2\n    url: http://127.0.0.1:9\n")
    result = CliRunner().invoke(main, ["indicators", "rollup", "install", "--config",
                                       str(config)])
    assert result.exit_code == 1
    assert "continuous queries exist only in InfluxDB 1.x" in result.output


def test_the_sample_configuration_in_the_readme_is_valid(tmp_path: Path) -> None:
    import re

    from indicators.settings import IndicatorSettings
    from kota.config import load_settings

    readme = (REPO_ROOT / "indicators" / "README.md").read_text()
    block = re.search(r"## Sample configuration\s+```yaml\n(.*?)```", readme, re.S)
    assert block is not None
    config = tmp_path / "kota.yaml"
    # the registry path in the sample is relative to the repository
    config.write_text(block.group(1).replace(
        "simulators/", str(REPO_ROOT / "simulators") + "/"))
    settings = load_settings(IndicatorSettings, "indicators", str(config), {})
    assert (settings.rollup.every, settings.rollup.retention) == ("15m", "INF")
    assert settings.windows == ["1m", "1h", "1d"]
