"""The indicator service against a real InfluxDB: known readings in, exact indicator values out.

Expected values come from the pure index functions (kota.indices) applied to the same numbers,
so these tests check the windowing, the queries, the completeness flags and the persistence.
"""

from __future__ import annotations

import asyncio
import math
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from kota_testing import count_points, influx_query

from devstack.localstack import LocalService
from indicators.context import Context, District, DistrictTable
from indicators.service import IndicatorService
from indicators.settings import IndicatorSettings
from indicators.windows import HOUR_MS
from kota.indices import aqi, ispu, noise, rain, siaga
from kota.influx import InfluxSettings
from kota.registry import Device, Registry

HOUR = HOUR_MS
MINUTE = 60_000
# Local day 2026-11-20 in Jakarta (UTC+7) starts at 2026-11-19T17:00Z.
DAY_START = int(datetime(2026, 11, 19, 17, tzinfo=UTC).timestamp() * 1000)
DAY_END = DAY_START + 24 * HOUR


def _device(device_id: str, kind: str, district: str, **params: Any) -> Device:
    return Device(device_id=device_id, kind=kind, city="jakarta", district=district,
                  lat=-6.2, lon=106.8, params=params)


REGISTRY = Registry([
    _device("air-a", "air", "Menteng", zone="roadside"),
    _device("air-b", "air", "Menteng", zone="residential"),
    _device("air-c", "air", "Tebet", zone="residential"),
    _device("water-manggarai", "water", "Tebet", gauge_id="manggarai", river="Ciliwung"),
    _device("rain-a", "rain", "Tebet", mm_per_tip=0.2),
    _device("noise-a", "noise", "Menteng", zone="residential"),
    _device("panic-a", "safety", "Menteng"),
    _device("air-a-status", "status", "Menteng"),
    _device("air-c-status", "status", "Tebet"),
    _device("panic-a-status", "status", "Menteng"),
])
DISTRICTS = DistrictTable([District("Menteng", 6.53, 68_000.0, 2023),
                           District("Tebet", 9.03, 210_000.0, 2023)])


def write(influx: LocalService, database: str, lines: list[str]) -> None:
    for index in range(0, len(lines), 5000):
        response = httpx.post(f"http://127.0.0.1:{influx.port}/write",
                              params={"db": database, "precision": "ms"},
                              content="\n".join(lines[index:index + 5000]).encode(), timeout=30)
        assert response.status_code == 204, response.text


def tags(kind: str, device: str, district: str, **extra: str) -> str:
    parts = {"city": "jakarta", "district": district, "kind": kind, "device": device, **extra}
    return ",".join(f"{k}={v}" for k, v in sorted(parts.items()))


def air_line(device: str, district: str, time_ms: int, **fields: float) -> str:
    values = ",".join(f"{k}={float(v)!r}" for k, v in fields.items())
    return f"air,{tags('air', device, district)} {values} {time_ms}"


def service(influx: LocalService, database: str, **settings: Any) -> IndicatorService:
    config = IndicatorSettings(
        influx=InfluxSettings(url=f"http://127.0.0.1:{influx.port}", database=database),
        metrics_port=0, **settings)
    return IndicatorService(config, Context(REGISTRY, DISTRICTS))


def recompute(svc: IndicatorService, since_ms: int, until_ms: int) -> int:
    async def go() -> int:
        try:
            return len((await svc.recompute(since_ms, until_ms)).windows)
        finally:
            await svc.close()
    return asyncio.run(go())


def point(influx: LocalService, database: str, measurement: str, where: str) -> dict[str, Any]:
    series = influx_query(influx, database, f'SELECT * FROM "{measurement}" WHERE {where}')
    assert len(series) == 1 and len(series[0]["values"]) == 1, series
    return dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))


def pm25_values() -> list[float]:
    return [12.0 + 1.5 * hour for hour in range(24)]  # 12.0 .. 46.5, crosses Baik -> Sedang


@pytest.mark.slow
def test_hourly_ispu_and_aqi_equal_the_pure_functions(influxdb: LocalService,
                                                      database: str) -> None:
    lines = []
    for hour, value in enumerate(pm25_values()):
        hour_start = DAY_START + hour * HOUR
        # two readings per hour whose mean is the hourly value
        lines.append(air_line("air-a", "Menteng", hour_start + 10 * MINUTE,
                              pm25=value - 1.0, pm10=40.0))
        lines.append(air_line("air-a", "Menteng", hour_start + 40 * MINUTE,
                              pm25=value + 1.0, pm10=40.0))
    write(influxdb, database, lines)
    last_hour = DAY_END - HOUR
    assert recompute(service(influxdb, database, windows=["1h"]), last_hour, DAY_END) == 1

    mean = math.fsum(pm25_values()) / 24
    expected = ispu.station_ispu({"pm25": ispu.average_for_ispu(pm25_values(), "pm25").mean_ugm3,
                                  "pm10": 40.0})
    got = point(influxdb, database, "ispu",
                "\"window\"='1h' AND \"scope\"='device' AND \"device\"='air-a'")
    assert got["time"] == last_hour
    assert got["conc_pm25"] == pytest.approx(mean, abs=1e-9)
    assert got["ispu"] == pytest.approx(expected.ispu, abs=1e-9)
    assert got["ispu_pm25"] == pytest.approx(expected.sub_indices["pm25"], abs=1e-9)
    assert got["ispu_pm10"] == pytest.approx(expected.sub_indices["pm10"], abs=1e-9)
    assert got["critical_parameter"] == expected.critical_parameter == "pm25"
    assert expected.category is not None and got["category"] == expected.category.name
    assert got["complete"] is True and got["insufficient"] == ""
    assert got["hours_with_data"] == 24.0
    # the district's worst station is the only one
    district = point(influxdb, database, "ispu",
                     "\"window\"='1h' AND \"scope\"='district' AND \"district\"='Menteng'")
    assert district["ispu"] == got["ispu"] and district["worst_device"] == "air-a"
    us = point(influxdb, database, "aqi_us", "\"window\"='1h' AND \"scope\"='device' AND "
               "\"device\"='air-a'")
    # The hourly PM figure is EPA's NowCast of the last 12 hourly means, as AirNow shows it.
    nowcast = aqi.nowcast(pm25_values()).concentration_ugm3
    assert nowcast is not None
    assert us["conc_pm25"] == pytest.approx(nowcast) and us["basis_pm25"] == "nowcast"
    assert us["aqi_pm25"] == float(aqi.us_aqi("pm25", nowcast).aqi)
    assert us["aqi"] == max(float(aqi.us_aqi("pm25", nowcast).aqi),
                            float(aqi.us_aqi("pm10", 40.0).aqi))
    assert us["responsible_pollutant"] == "pm25"
    assert us["category"] == aqi.us_aqi("pm25", nowcast).category
    whole = point(influxdb, database, "aqi_us", "\"window\"='1h' AND \"scope\"='city'")
    assert whole["aqi"] == us["aqi"] and whole["worst_device"] == "air-a"


@pytest.mark.slow
def test_a_gap_is_flagged_not_invented(influxdb: LocalService, database: str) -> None:
    # 10 of 24 hours: below the 18-hour completeness rule for the 24-h PM2.5 mean.
    lines = [air_line("air-b", "Menteng", DAY_START + hour * HOUR + 5 * MINUTE, pm25=30.0)
             for hour in range(14, 24)]
    write(influxdb, database, lines)
    recompute(service(influxdb, database, windows=["1h"]), DAY_END - HOUR, DAY_END)
    got = point(influxdb, database, "ispu",
                "\"window\"='1h' AND \"scope\"='device' AND \"device\"='air-b'")
    assert got["complete"] is False
    assert got["insufficient"] == "pm25"
    assert got["hours_with_data"] == 10.0
    # no index from 10 hours: the fields are absent (the measurement has no such column yet)
    assert all(got.get(name) is None for name in ("ispu", "category", "conc_pm25", "ispu_pm25"))
    # an incomplete station is no district's worst station
    assert count_points(influxdb, database, "ispu", "WHERE \"scope\"='district'") == 0
    # The hourly US AQI is the NowCast, which needs only 2 of the 3 newest hours: it has one.
    us = point(influxdb, database, "aqi_us", "\"scope\"='device' AND \"device\"='air-b'")
    assert us["complete"] is True and us["aqi"] == float(aqi.us_aqi("pm25", 30.0).aqi)


@pytest.mark.slow
def test_siaga_status_rise_and_time_to_threshold(influxdb: LocalService, database: str) -> None:
    # Manggarai rising 5 cm every 5 minutes: 700 -> 755 cm over 55 minutes.
    samples = [(DAY_START + i * 5 * MINUTE, 700.0 + 5.0 * i) for i in range(12)]
    write(influxdb, database,
          [f"water,{tags('water', 'water-manggarai', 'Tebet')} level_cm={level!r} {t}"
           for t, level in samples])
    minute_start = samples[-1][0]
    recompute(service(influxdb, database, windows=["1m"]), minute_start, minute_start + MINUTE)
    got = point(influxdb, database, "siaga", "\"window\"='1m'")
    gauge = siaga.load_gauges()["manggarai"]
    status = siaga.siaga_status(gauge, 755.0)
    rise = siaga.rate_of_rise_cm_per_h([(t / 1000, level) for t, level in samples])
    assert got["time"] == minute_start and got["gauge"] == "manggarai"
    assert got["level_cm"] == 755.0
    assert got["status"] == float(status.status) == 3.0  # above 750: Waspada
    assert got["status_name"] == status.status_name
    assert rise is not None and got["rise_cm_per_h"] == pytest.approx(rise, abs=1e-9)
    assert got["rise_cm_per_h"] == pytest.approx(60.0, abs=1e-6)
    hours = siaga.hours_to_next_threshold(gauge, 755.0, rise)
    assert hours is not None and got["hours_to_next"] == pytest.approx(hours, abs=1e-9)
    # a minute with no reading in max_age_s: flagged, no status invented
    late = minute_start + 2 * HOUR
    recompute(service(influxdb, database, windows=["1m"]), late, late + MINUTE)
    stale = point(influxdb, database, "siaga", f"\"window\"='1m' AND time = {late}ms")
    assert stale["complete"] is False
    assert stale.get("status") is None and stale.get("level_cm") is None


@pytest.mark.slow
def test_restart_computes_missed_windows_exactly_once(influxdb: LocalService,
                                                      database: str) -> None:
    lines = []
    for hour in range(48):
        time_ms = DAY_START - 24 * HOUR + hour * HOUR + 30 * MINUTE
        lines.append(air_line("air-c", "Tebet", time_ms, pm25=20.0 + hour % 5))
        lines.append(f"rain,{tags('rain', 'rain-a', 'Tebet')} rain_mm=0.4 {time_ms}")
    write(influxdb, database, lines)
    lateness = 120_000

    def run_once(now_ms: int) -> int:
        svc = service(influxdb, database, windows=["1h"], lateness_s=lateness / 1000)

        async def go() -> int:
            try:
                return len((await svc.run_once(now_ms)).windows)
            finally:
                await svc.close()
        return asyncio.run(go())

    t0 = DAY_START + 10 * HOUR + lateness + 5_000
    assert run_once(t0) == 1  # first start: only the latest closed hour
    assert run_once(t0 + 1_000) == 0  # nothing new closed
    # "down" for five hours, then restarted: the five missed hours, each once
    assert run_once(t0 + 5 * HOUR) == 5
    assert run_once(t0 + 5 * HOUR) == 0
    runs = influx_query(influxdb, database, 'SELECT "points" FROM "indicator_runs"')
    times = [row[0] for row in runs[0]["values"]]
    assert times == [DAY_START + (9 + i) * HOUR for i in range(6)]
    where = "WHERE \"device\"='rain-a' AND \"window\"='1h'"
    assert count_points(influxdb, database, "rain_category", where) == 6
    assert count_points(influxdb, database, "ispu", "WHERE \"device\"='air-c'") == 6
    # recomputing the same range overwrites: still 6 of each, same values
    before = influx_query(influxdb, database, f'SELECT * FROM "rain_category" {where}')
    recompute(service(influxdb, database, windows=["1h"]), DAY_START + 9 * HOUR,
              DAY_START + 15 * HOUR)
    assert count_points(influxdb, database, "rain_category", where) == 6
    assert count_points(influxdb, database, "ispu", "WHERE \"device\"='air-c'") == 6
    assert count_points(influxdb, database, "indicator_runs") == 6
    after = influx_query(influxdb, database, f'SELECT * FROM "rain_category" {where}')
    assert after == before
    row = point(influxdb, database, "rain_category", f"\"window\"='1h' AND time = "
                f"{DAY_START + 9 * HOUR}ms")
    assert row["rain_mm"] == pytest.approx(0.4)
    assert row["category"] == rain.bmkg_hourly_category(0.4).name


@pytest.mark.slow
def test_a_day_of_city_indicators(influxdb: LocalService, database: str) -> None:
    lines = []
    for hour in range(24):
        start = DAY_START + hour * HOUR
        lines.append(air_line("air-a", "Menteng", start + 30 * MINUTE,
                              pm25=10.0 if hour < 12 else 40.0))
        for minute in range(0, 60, 15):  # four heartbeats an hour from air-a only
            lines.append(f"status,{tags('status', 'air-a-status', 'Menteng')} "
                         f"uptime_s={float(hour * 3600 + minute * 60)!r} "
                         f"{start + minute * MINUTE}")
        lines.append(f"rain,{tags('rain', 'rain-a', 'Tebet')} rain_mm=1.0 {start + MINUTE}")
        laeq = 50.0 if 6 <= hour < 22 else 60.0  # local hours: quiet days, loud nights
        lines.append(f"noise,{tags('noise', 'noise-a', 'Menteng')} laeq_db={laeq},lamax_db=75.0 "
                     f"{start + 20 * MINUTE}")
        lines.append(f"water,{tags('water', 'water-manggarai', 'Tebet')} "
                     f"level_cm={900.0 if hour in (5, 6) else 600.0} {start + 2 * MINUTE}")
    for index in range(3):
        lines.append(f"safety,{tags('safety', 'panic-a', 'Menteng', event='panic')} count=1.0 "
                     f"{DAY_START + (index + 1) * HOUR}")
    lines.append(f"safety,{tags('safety', 'panic-a', 'Menteng', event='test')} count=1.0 "
                 f"{DAY_START + 5 * HOUR}")
    # the panic button's heartbeat is heard once: one 15-minute slot of 96
    lines.append(f"status,{tags('status', 'panic-a-status', 'Menteng')} battery_pct=90.0 "
                 f"{DAY_START + 3 * HOUR}")
    write(influxdb, database, lines)
    # the previous day's PM2.5 too, so that every hour of the day has a 24-h mean
    write(influxdb, database, [air_line("air-a", "Menteng", DAY_START - HOUR * (h + 1) + 1,
                                        pm25=10.0) for h in range(24)])
    # and its rain from 07:00: BMKG's rain day closed by this day runs 07:00 to 07:00 WIB
    write(influxdb, database, [f"rain,{tags('rain', 'rain-a', 'Tebet')} rain_mm=1.0 "
                               f"{DAY_START - HOUR * (h + 1) + MINUTE}" for h in range(17)])
    assert recompute(service(influxdb, database, windows=["1h", "1d"]),
                     DAY_START, DAY_END) == 25

    city = point(influxdb, database, "city_indicators",
                 "\"scope\"='district' AND \"district\"='Menteng'")
    assert city["time"] == DAY_START
    assert city["pm25_daily_mean"] == pytest.approx(25.0)
    assert city["pm25_exceeds_who"] is True and city["pm25_exceeds_national"] is False
    assert city["air_stations_live"] == 1.0
    assert city["air_stations_per_km2"] == pytest.approx(1 / 6.53)
    assert city["safety_sensor_events"] == 3.0  # "test" events are not counted
    assert city["safety_sensor_events_per_100k"] == pytest.approx(3 / 68_000 * 100_000)
    assert city["uptime_share"] == pytest.approx((1.0 + 1 / 96) / 2)  # air-a-status, panic-a
    assert city["noise_night_exceedances"] == 1.0  # 60 dBA > 55 at night, residential
    # hourly ISPU categories: every hour valid, each Baik or Sedang by the rolling 24-h mean
    ranks = influx_query(influxdb, database, "SELECT \"category_rank\" FROM \"ispu\" WHERE "
                         "\"window\"='1h' AND \"scope\"='district' AND \"district\"='Menteng'")
    values = [row[1] for row in ranks[0]["values"]]
    assert len(values) == 24 and city["ispu_hours_valid"] == 24.0
    assert city["ispu_share_baik"] == pytest.approx(values.count(1.0) / 24)
    assert city["ispu_share_sedang"] == pytest.approx(values.count(2.0) / 24)
    assert 0 < city["ispu_share_baik"] < 1

    tebet = point(influxdb, database, "city_indicators",
                  "\"scope\"='district' AND \"district\"='Tebet'")
    assert tebet["flood_gauge_live"] is True and tebet["siaga2_hours"] == 2.0
    # air-c-status never reported: Tebet's uptime is 0, not missing
    assert tebet["uptime_share"] == 0.0
    whole = point(influxdb, database, "city_indicators", "\"scope\"='city'")
    # a safety device was heard in Menteng, none in Tebet
    assert whole["districts_safety_monitored"] == 1.0
    assert whole["districts_safety_monitored_share"] == pytest.approx(0.5)
    assert whole["population_share_flood_gauge"] == pytest.approx(210_000 / 278_000)
    assert whole["safety_sensor_events_per_100k"] == pytest.approx(3 / 278_000 * 100_000)

    gauge = point(influxdb, database, "siaga", "\"window\"='1d'")
    assert gauge["hours_siaga2_or_worse"] == 2.0 and gauge["complete"] is True
    assert gauge["status"] == float(siaga.siaga_status(siaga.load_gauges()["manggarai"],
                                                       900.0).status)
    daily_rain = point(influxdb, database, "rain_category", "\"window\"='1d'")
    assert daily_rain["time"] == DAY_START - 17 * HOUR  # 07:00 WIB on the day before
    assert daily_rain["rain_mm"] == pytest.approx(24.0)
    assert daily_rain["category"] == rain.bmkg_daily_category(24.0).name
    level = point(influxdb, database, "noise_level", "\"window\"='1d'")
    expected = noise.day_night_levels([(DAY_START / 1000 + h * 3600 + 1200,
                                        50.0 if 6 <= h < 22 else 60.0) for h in range(24)])
    assert level["ls_db"] == pytest.approx(expected.ld_db) == pytest.approx(50.0)
    assert level["lm_db"] == pytest.approx(expected.ln_db) == pytest.approx(60.0)
    assert level["lsm_db"] == pytest.approx(expected.lsm_db)
    assert level["exceeds_night"] is True and level["exceeds_day"] is False
    events = point(influxdb, database, "safety_events",
                   "\"window\"='1d' AND \"scope\"='district' AND \"event\"='all'")
    assert events["events"] == 3.0
    assert count_points(influxdb, database, "safety_events",
                        "WHERE \"window\"='1h' AND \"event\"='panic'") == 6  # 3 district, 3 city


@pytest.mark.slow
def test_hostile_tag_values_stay_inside_their_literal(influxdb: LocalService,
                                                      database: str) -> None:
    from indicators import queries

    write(influxdb, database, [air_line("air-a", "Menteng", DAY_START, pm25=10.0)])
    hostile = f"x' OR 1=1; DROP DATABASE \"{database}\"; SELECT * FROM air WHERE '1'='1"
    text = queries.raw_query("air", ["pm25"], DAY_START, DAY_END, hostile,
                             equals=[("device", hostile)])
    assert influx_query(influxdb, database, text) == []  # matched nothing, ran nothing else
    databases = influx_query(influxdb, database, "SHOW DATABASES")[0]["values"]
    assert [database] in databases
    assert count_points(influxdb, database, "air") == 1
    with pytest.raises(ValueError):
        queries.hourly_aggregate_query("air", [("sum) FROM x; --", "pm25", "a")], 0, 1, None)


@pytest.mark.slow
def test_the_loop_passes_and_reports_on_metrics(influxdb: LocalService, database: str) -> None:
    from devstack.localstack import free_port

    port = free_port()
    svc = service(influxdb, database, windows=["1h"], interval_s=0.05)
    svc.settings.metrics_port = port

    async def go() -> None:
        await svc.run(asyncio.Event(), max_passes=3)
    asyncio.run(go())
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'kota_indicators_windows_computed_total{window="1h"} 1.0' in text
    assert "kota_indicators_influx_up 1.0" in text
    assert count_points(influxdb, database, "indicator_runs") == 1  # three passes, one window


@pytest.mark.slow
def test_replace_leaves_no_stale_field_from_an_earlier_computation(influxdb: LocalService,
                                                                   database: str) -> None:
    hours = range(24)
    write(influxdb, database, [air_line("air-a", "Menteng", DAY_START + h * HOUR + 1,
                                        pm25=20.0, so2=60.0) for h in hours])
    last = DAY_END - HOUR
    recompute(service(influxdb, database, windows=["1h"]), last, DAY_END)
    where = "\"scope\"='district' AND \"district\"='Menteng'"
    assert point(influxdb, database, "ispu", where)["worst_device"] == "air-a"
    # a second station, worse and without SO2, arrives late: now it is the district's worst
    write(influxdb, database, [air_line("air-b", "Menteng", DAY_START + h * HOUR + 1,
                                        pm25=80.0) for h in hours])
    svc = service(influxdb, database, windows=["1h"])

    async def go() -> None:
        try:
            await svc.recompute(last, DAY_END, replace=True)
        finally:
            await svc.close()
    asyncio.run(go())
    district = point(influxdb, database, "ispu", where)
    assert district["worst_device"] == "air-b"
    assert district["ispu_so2"] is None and district["conc_so2"] is None  # not air-a's leftovers
    assert district["stations"] == 2.0
    assert count_points(influxdb, database, "ispu", "WHERE \"scope\"='device'") == 2


@pytest.mark.slow
def test_refresh_recomputes_recent_windows_without_duplicates(influxdb: LocalService,
                                                              database: str) -> None:
    svc = service(influxdb, database, windows=["1h"], interval_s=0.05, refresh_h=3,
                  refresh_interval_s=0.001)

    async def go() -> None:
        await svc.run(asyncio.Event(), max_passes=2)
    asyncio.run(go())
    runs = count_points(influxdb, database, "indicator_runs")
    assert 2 <= runs <= 3  # the hours that started in the last three, each once
    assert svc.counters.windows["1h"] >= runs + 2  # computed again by each pass's refresh


@pytest.mark.slow
def test_a_window_with_indigestible_data_is_skipped_not_retried_forever(
        influxdb: LocalService, database: str) -> None:
    # Another writer put a negative rain depth into hour 11 (ingest would refuse it).
    lines = []
    for hour in range(14):
        time_ms = DAY_START + hour * HOUR + 30 * MINUTE
        rain_mm = -5.0 if hour == 11 else 0.4
        lines.append(f"rain,{tags('rain', 'rain-a', 'Tebet')} rain_mm={rain_mm} {time_ms}")
    write(influxdb, database, lines)
    lateness = 120_000

    def run_once(now_ms: int) -> int:
        svc = service(influxdb, database, windows=["1h"], lateness_s=lateness / 1000)

        async def go() -> int:
            try:
                return len((await svc.run_once(now_ms)).windows)
            finally:
                await svc.close()
        return asyncio.run(go())

    t0 = DAY_START + 11 * HOUR + lateness + 5_000
    assert run_once(t0) == 1  # hour 10
    assert run_once(t0 + 3 * HOUR) == 3  # hours 11 (fails, recorded), 12 and 13
    assert run_once(t0 + 3 * HOUR) == 0  # hour 11 is not retried on every pass
    failed = point(influxdb, database, "indicator_runs",
                   f"time = {DAY_START + 11 * HOUR}ms")
    assert failed["failed"] is True and "Error" in failed["error"]
    where = f"WHERE \"device\"='rain-a' AND \"window\"='1h' AND time >= {DAY_START + 12 * HOUR}ms"
    assert count_points(influxdb, database, "rain_category", where) == 2


@pytest.mark.slow
def test_recompute_reports_progress_and_beyond_horizon_logs_iso_times(
        influxdb: LocalService, database: str, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[tuple[int, int]] = []
    svc = service(influxdb, database, windows=["1h", "1d"])
    assert [len(w) for w in svc.recompute_plan(DAY_START, DAY_END + 3 * HOUR)] == [27, 1]

    async def go() -> int:
        try:
            report = await svc.recompute(DAY_START, DAY_END + 3 * HOUR,
                                         progress=lambda done, total: calls.append((done, total)))
            return len(report.windows)
        finally:
            await svc.close()
    assert asyncio.run(go()) == 28
    assert calls == [(done, 28) for done in range(29)]  # (0, total) first, then each window

    # a restart long after the last window: the missed ones beyond the horizon are named in
    # ISO 8601 UTC, with the command that recomputes them (not raw epoch milliseconds)
    later = service(influxdb, database, windows=["1h"], catch_up_horizon_h=2, lateness_s=60)

    async def once() -> None:
        try:
            await later.run_once(DAY_END + 10 * HOUR + 5 * MINUTE)
        finally:
            await later.close()
    with caplog.at_level("WARNING", logger="kota.indicators"):
        asyncio.run(once())
    warning = next(r.getMessage() for r in caplog.records if "catch-up horizon" in r.getMessage())
    assert "1h windows from 2026-11-20T20:00:00Z to 2026-11-21T01:00:00Z" in warning, warning
    assert "--since 2026-11-20T20:00:00Z --until 2026-11-21T01:00:00Z" in warning
    assert not re.search(r"\d{13}", warning)
