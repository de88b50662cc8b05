"""ISO 37120 / 37122 city indicators through the service: a real InfluxDB, and a real SQLite or
PostgreSQL store holding the subscriptions for alert coverage.

Three local days are computed in order: the third day's annual means are read back from the
first two days' own points, its response times come from incidents opened the day before, and
its alert coverage from the subscriptions confirmed (and not unsubscribed) at its end.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from kota_testing import influx_query
from sqlalchemy.orm import Session

from devstack.localstack import LocalService
from indicators.city import RENAMED_FIELDS, copy_renamed_fields_query
from indicators.context import Context, District, DistrictTable
from indicators.service import IndicatorService
from indicators.settings import IndicatorSettings
from indicators.windows import DAY_MS, HOUR_MS
from kota.influx import InfluxSettings
from kota.registry import Device, Registry
from store.db import make_engine, upgrade
from store.settings import DatabaseSettings
from store.subscription_models import Subscriber

pytestmark = pytest.mark.slow

MINUTE = 60_000
# Local day 2026-11-20 in Jakarta (UTC+7) starts at 2026-11-19T17:00Z; two days before it too.
DAY3 = int(datetime(2026, 11, 19, 17, tzinfo=UTC).timestamp() * 1000)
DAY1, DAY2 = DAY3 - 2 * DAY_MS, DAY3 - DAY_MS
END = DAY3 + DAY_MS

REGISTRY = Registry([
    Device(device_id="air-t", kind="air", city="jakarta", district="Tebet", lat=-6.24,
           lon=106.86),
    Device(device_id="water-manggarai", kind="water", city="jakarta", district="Tebet",
           kelurahan="Manggarai", lat=-6.21, lon=106.85, params={"gauge_id": "manggarai"}),
    Device(device_id="panic-a", kind="safety", city="jakarta", district="Menteng", lat=-6.2,
           lon=106.83),
])
DISTRICTS = DistrictTable([District("Menteng", 6.53, 68_000.0, 2023),
                           District("Tebet", 9.03, 210_000.0, 2023)])


def write(influx: LocalService, database: str, lines: list[str]) -> None:
    response = httpx.post(f"http://127.0.0.1:{influx.port}/write",
                          params={"db": database, "precision": "ms"},
                          content="\n".join(lines).encode(), timeout=30)
    assert response.status_code == 204, response.text


def tags(kind: str, device: str, district: str, **extra: str) -> str:
    parts = {"city": "jakarta", "district": district, "kind": kind, "device": device, **extra}
    return ",".join(f"{k}={v}" for k, v in sorted(parts.items()))


def air(day_ms: int, hours: int, **fields: float) -> list[str]:
    values = ",".join(f"{k}={v!r}" for k, v in fields.items())
    return [f"air,{tags('air', 'air-t', 'Tebet')} {values} {day_ms + h * HOUR_MS + MINUTE}"
            for h in range(hours)]


def safety(at_ms: int, event: str, incident: str) -> str:
    return (f"safety,{tags('safety', 'panic-a', 'Menteng', event=event)} count=1.0,"
            f'incident_id="{incident}" {at_ms}')


def three_days(influx: LocalService, database: str) -> None:
    lines = air(DAY1, 24, pm25=10.0, pm10=20.0, no2=30.0)
    lines += air(DAY2, 17, pm25=40.0)                 # 17 hours: not a valid day
    lines += air(DAY3, 24, pm25=30.0, pm10=50.0)
    lines += [f"water,{tags('water', 'water-manggarai', 'Tebet')} level_cm=600.0 "
              f"{DAY3 + h * HOUR_MS + 2 * MINUTE}" for h in range(24)]
    lines += [safety(DAY3 - 60 * MINUTE, "panic", "i-2"),      # opened the evening before
              safety(DAY3 + 30 * MINUTE, "resolved", "i-2"),   # 90 min
              safety(DAY3 + 60 * MINUTE, "fire", "i-1"),
              safety(DAY3 + 70 * MINUTE, "resolved", "i-1"),   # 10 min
              safety(DAY3 + 80 * MINUTE, "smoke", "i-3")]      # still open: no response yet
    write(influx, database, lines)


def service(influx: LocalService, influx_database: str, **settings: Any) -> IndicatorService:
    config = IndicatorSettings.model_validate({
        "influx": InfluxSettings(url=f"http://127.0.0.1:{influx.port}",
                                 database=influx_database),
        "metrics_port": 0, "windows": ["1d"],
        "air": {"annual_days": 3, "annual_min_valid_share": 1.0}, **settings})
    return IndicatorService(config, Context(REGISTRY, DISTRICTS))


def recompute(svc: IndicatorService) -> int:
    async def go() -> int:
        try:
            return len((await svc.recompute(DAY1, END)).windows)
        finally:
            await svc.close()
    return asyncio.run(go())


def day3(influx: LocalService, database: str, measurement: str, where: str) -> dict[str, Any]:
    series = influx_query(influx, database, f'SELECT * FROM "{measurement}" WHERE {where} '
                                            f"AND time = {DAY3}ms")
    assert len(series) == 1 and len(series[0]["values"]) == 1, series
    return {k: v for k, v in zip(series[0]["columns"], series[0]["values"][0], strict=True)
            if v is not None}


def subscriber(status: str, hazards: list[str], confirmed: datetime | None,
               unsubscribed: datetime | None = None, **area: Any) -> Subscriber:
    now = datetime.fromtimestamp(DAY1 / 1000, UTC)
    return Subscriber(channel="email", address="x@example.org", address_hash="0" * 64,
                      status=status, language="id-ID", districts=area.get("districts", []),
                      kelurahan=area.get("kelurahan", []), hazards=hazards,
                      min_severity="Minor", created_by="public", created_at=now,
                      updated_at=now, confirmed_at=confirmed, unsubscribed_at=unsubscribed)


def test_iso_indicators_of_a_day_with_a_real_store(influxdb: LocalService, database: str,
                                                   database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    day3_end = datetime.fromtimestamp(END / 1000, UTC)
    confirmed = day3_end - timedelta(days=1)
    with Session(engine) as session, session.begin():
        session.add_all([
            subscriber("active", ["flood"], confirmed, districts=["tebet"]),
            # pending (no confirmation): never counted
            subscriber("pending", ["air"], None, districts=["Tebet"]),
            # unsubscribed before the day ended: not counted
            subscriber("unsubscribed", ["air"], confirmed, day3_end - timedelta(hours=1),
                       districts=["Tebet"]),
            # unsubscribed after it: it still reached Tebet that day (every hazard)
            subscriber("unsubscribed", [], confirmed, day3_end + timedelta(hours=1),
                       kelurahan=["Manggarai"]),
            # confirmed after the day: not yet
            subscriber("active", ["air"], day3_end + timedelta(minutes=1), districts=["Tebet"]),
        ])
    engine.dispose()
    three_days(influxdb, database)
    assert recompute(service(influxdb, database, database={"url": database_url})) == 3

    tebet = day3(influxdb, database, "city_indicators",
                 "\"scope\"='district' AND \"district\"='Tebet'")
    # annual means over 3 days needing all 3: day 2 had 17 hours of PM2.5
    assert tebet["pm25_daily_mean"] == pytest.approx(30.0)
    assert tebet["pm25_annual_mean"] == pytest.approx(20.0)
    assert tebet["pm25_annual_valid_days"] == 2.0 and tebet["pm25_annual_complete"] is False
    assert tebet["pm10_daily_mean"] == pytest.approx(50.0)
    assert tebet["pm10_annual_mean"] == pytest.approx(35.0)
    assert tebet["no2_annual_mean"] == pytest.approx(30.0) and "no2_daily_mean" not in tebet
    assert tebet["no2_annual_valid_days"] == 1.0
    # alert coverage: one flood subscription by name, one (all hazards) by kelurahan
    assert tebet["flood_gauge_alerting"] is True and tebet["air_stations_live"] == 1.0
    assert tebet["alert_subscriptions_flood"] == 2.0
    assert tebet["alert_subscriptions_air"] == 1.0
    assert tebet["population_share_alerts_flood"] == 1.0
    assert tebet["population_share_alerts_air"] == 1.0
    city = day3(influxdb, database, "city_indicators", "\"scope\"='city'")
    assert city["pm25_annual_mean"] == pytest.approx(20.0)
    assert city["population_share_alerts_flood"] == pytest.approx(210 / 278)
    assert city["population_share_alerts_air"] == pytest.approx(210 / 278)
    # response times: 10 and 90 minutes against the 15-minute SPM target
    assert city["resolved_incidents"] == 2.0
    assert city["response_median_min"] == pytest.approx(50.0)
    assert city["response_p90_min"] == pytest.approx(90.0)
    assert city["response_within_target_share"] == pytest.approx(0.5)
    assert city["response_target_min"] == 15.0
    menteng = day3(influxdb, database, "city_indicators",
                   "\"scope\"='district' AND \"district\"='Menteng'")
    assert menteng["safety_sensor_events"] == 2.0  # fire and smoke; resolutions are not events
    assert menteng["safety_sensor_events_per_100k"] == pytest.approx(2 / 68_000 * 100_000)
    fire = day3(influxdb, database, "safety_events",
                "\"scope\"='district' AND \"event\"='fire' AND \"window\"='1d'")
    assert fire["resolved_incidents"] == 1.0 and fire["response_median_min"] == 10.0
    assert fire["response_within_target_share"] == 1.0
    panic = day3(influxdb, database, "safety_events",
                 "\"scope\"='district' AND \"event\"='panic' AND \"window\"='1d'")
    assert panic["events"] == 0.0 and panic["response_median_min"] == 90.0


def test_without_a_database_coverage_is_absent_and_said_once(
        influxdb: LocalService, database: str, caplog: pytest.LogCaptureFixture) -> None:
    three_days(influxdb, database)
    with caplog.at_level(logging.INFO, logger="kota.indicators"):
        assert recompute(service(influxdb, database)) == 3
    said = [r for r in caplog.records if "indicators.database.url" in r.getMessage()]
    assert len(said) == 1
    tebet = day3(influxdb, database, "city_indicators",
                 "\"scope\"='district' AND \"district\"='Tebet'")
    assert tebet["flood_gauge_alerting"] is True
    assert not [name for name in tebet if name.startswith(("alert_", "population_share_alerts"))]


def test_an_unreachable_database_leaves_coverage_out_not_the_day(
        influxdb: LocalService, database: str, caplog: pytest.LogCaptureFixture) -> None:
    three_days(influxdb, database)
    # a closed loopback port: the connection is refused at once
    url = f"postgresql://kota@127.0.0.1:{_closed_port()}/kota"
    with caplog.at_level(logging.WARNING, logger="kota.indicators"):
        assert recompute(service(influxdb, database, database={"url": url})) == 3
    warned = [r.getMessage() for r in caplog.records if "indicators.database" in r.getMessage()]
    assert warned and "\n" not in warned[0]
    tebet = day3(influxdb, database, "city_indicators",
                 "\"scope\"='district' AND \"district\"='Tebet'")
    assert tebet["pm25_annual_mean"] == pytest.approx(20.0)
    assert "population_share_alerts_flood" not in tebet


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_old_points_are_copied_to_the_new_field_names(influxdb: LocalService,
                                                      database: str) -> None:
    old = [f"city_indicators,city=jakarta,scope=city,window=1d incidents=4.0,"
           f"incidents_per_100k=1.5,population=278000.0 {DAY1}",
           f"city_indicators,city=jakarta,district=Tebet,scope=district,window=1d "
           f"incidents=3.0,incidents_per_100k=2.5 {DAY1}"]
    write(influxdb, database, old)
    response = httpx.post(f"http://127.0.0.1:{influxdb.port}/query",
                          params={"db": database, "q": copy_renamed_fields_query()}, timeout=30)
    assert response.status_code == 200 and "error" not in response.text, response.text
    # what the City overview panel asks for, under the new names
    series = influx_query(influxdb, database,
                          'SELECT last("safety_sensor_events_per_100k") FROM "city_indicators" '
                          "WHERE \"window\" = '1d' AND \"scope\" = 'city'")
    assert series[0]["values"][0][1] == 1.5
    tebet = day3_like(influxdb, database)
    for old_name, new_name in RENAMED_FIELDS.items():
        assert tebet[new_name] == tebet[old_name]  # merged into the same point
    assert len(influx_query(influxdb, database, 'SELECT * FROM "city_indicators"')[0]["values"]) \
        == 2


def day3_like(influx: LocalService, database: str) -> dict[str, Any]:
    series = influx_query(influx, database, "SELECT * FROM \"city_indicators\" WHERE "
                                            "\"district\"='Tebet'")
    return dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))


def test_the_database_setting_is_the_store_s() -> None:
    settings = IndicatorSettings.model_validate({"database": {"url": "sqlite:///run/kota.db"}})
    assert isinstance(settings.database, DatabaseSettings)
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        IndicatorSettings.model_validate({"database": {"url": "mysql://x@y/z"}})
