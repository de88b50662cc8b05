"""The polled rules (``ispu``, ``rain``) against a real InfluxDB: points written by the indicator
service's own code (indicators/air.py ``ispu_points``, indicators/rain.py ``rain_points``), an
AlertService built in-process on a SQLite file, ``poll_once`` and ``tick_once`` called directly
(no ``run``: no MQTT connection is made), and the alerts read back from the database."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kota_testing import LocalService

from alerts.model import AlertView
from alerts.service import AlertService
from alerts.settings import AlertsSettings
from indicators.air import compute_stations, ispu_points
from indicators.points import Point, to_lines
from indicators.queries import DeviceKey
from indicators.rain import rain_points
from indicators.settings import AirSettings, RainSettings
from indicators.windows import HOUR_MS, Window
from kota.influx import InfluxClient, InfluxSettings
from kota.standards import load_ispu_table

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
REGISTRY = REPO / "simulators" / "cities" / "jakarta" / "devices.yaml"
SHIPPED = REPO / "alerts" / "rules" / "jakarta.yaml"

_SHIPPED_AIR = next(rule for rule in yaml.safe_load(SHIPPED.read_text())["rules"]
                    if rule["kind"] == "ispu")
TIDAK_SEHAT_ADVICE_EN = (
    (_SHIPPED_AIR.get("advice", {}).get("Tidak Sehat", {}).get("en"))
    or next(band.health.advice_en for band in load_ispu_table().categories.bands
            if band.name == "Tidak Sehat" and band.health is not None))


def rules_file(path: Path, **changes: dict[str, Any]) -> Path:
    """The shipped rules with ``changes`` merged into the rules they name (by id)."""
    document = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    for rule in document["rules"]:
        rule.update(changes.get(rule["id"], {}))
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def make_service(tmp_path: Path, influx_port: int, database: str, mqtt_port: int,
                 **changes: dict[str, Any]) -> AlertService:
    settings = AlertsSettings.model_validate({
        "city": "jakarta",
        "rules_file": str(rules_file(tmp_path / "rules.yaml", **changes)),
        "rules_reload_s": 0,
        "registry_file": str(REGISTRY),
        "database": {"url": f"sqlite:///{tmp_path / 'kota.db'}"},
        "mqtt": {"port": mqtt_port, "client_id": f"kota-alerts-{tmp_path.name[-20:]}"},
        "influx": {"url": f"http://127.0.0.1:{influx_port}", "database": database},
        "influx_events": False,
        "channels": [],
        "metrics_port": 0,
    })
    return AlertService(settings)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop per test: the service's InfluxDB client belongs to the loop it first
    ran in."""
    made = asyncio.new_event_loop()
    yield made
    made.close()


@pytest.fixture
def service(tmp_path: Path, influxdb: LocalService, database: str, mosquitto: LocalService,
            loop: asyncio.AbstractEventLoop) -> Iterator[AlertService]:
    made = make_service(tmp_path, influxdb.port, database, mosquitto.port,
                        **{"air-ispu": {"pending_s": 0}})
    yield made
    loop.run_until_complete(made.influx.close())
    made.engine.dispose()


def write(influxdb: LocalService, database: str, points: list[Point]) -> None:
    lines = to_lines(points)
    assert lines

    async def run() -> None:
        client = InfluxClient(InfluxSettings(url=f"http://127.0.0.1:{influxdb.port}",
                                             database=database))
        try:
            await client.write("\n".join(lines).encode())
        finally:
            await client.close()

    asyncio.run(run())


def poll_and_tick(service: AlertService, loop: asyncio.AbstractEventLoop,
                  tick_at: datetime | None = None) -> int:
    async def run() -> int:
        changes = await service.poll_once()
        await service.tick_once(now=tick_at)
        return changes

    return loop.run_until_complete(run())


def alerts(service: AlertService, rule_id: str) -> dict[str, AlertView]:
    return {view.scope: view for view in service.store.find(rule_id=rule_id)}


def hour_window(name: str = "1h", hours: int = 1) -> Window:
    """A window that starts on the hour within the rule's max_age_s of now (30 to 90 min ago
    for 1h, 24 h and 30 to 90 min for 1d), as the indicator service writes them."""
    start = (int(time.time() * 1000) - 30 * 60_000) // HOUR_MS * HOUR_MS - (hours - 1) * HOUR_MS
    return Window(start, start + hours * HOUR_MS, name)  # type: ignore[arg-type]


def ispu_district_points(o3_by_device: dict[DeviceKey, float]) -> list[Point]:
    """ISPU points as the indicator service makes them, from one hourly O3 mean per station
    (O3 averages over 1 h, so one hour is a complete station)."""
    window = hour_window()
    hourly = {key: {window.end_ms - HOUR_MS: {"o3": o3}} for key, o3 in o3_by_device.items()}
    return ispu_points(window, compute_stations(window, hourly, AirSettings()))


def assert_texts_complete(view: AlertView) -> None:
    assert set(view.texts) == {"id-ID", "en-US"}
    for language, text in view.texts.items():
        whole = " ".join((text.headline, text.description, text.instruction))
        assert "?" not in whole and "None" not in whole, f"{language}: {whole}"


def test_ispu_tidak_sehat_fires_per_district_and_baik_does_not(
        service: AlertService, influxdb: LocalService, database: str,
        loop: asyncio.AbstractEventLoop) -> None:
    # O3 300 µg/m³ is ISPU ~139 (Tidak Sehat), 50 µg/m³ is ~21 (Baik): kota/standards/ispu.yaml.
    points = ispu_district_points({
        DeviceKey("jakarta", "Tebet", "air-tebet"): 300.0,
        DeviceKey("jakarta", "Menteng", "air-ref-bundaran-hi"): 320.0,
        DeviceKey("jakarta", "Senen", "air-senen"): 50.0,
    })
    district = {p.tags["district"]: p.fields["category"] for p in points
                if p.tags["scope"] == "district"}
    assert district == {"Tebet": "Tidak Sehat", "Menteng": "Tidak Sehat", "Senen": "Baik"}
    write(influxdb, database, points)
    assert poll_and_tick(service, loop) == 2
    found = alerts(service, "air-ispu")
    assert set(found) == {"Tebet", "Menteng"}
    for scope, view in found.items():
        assert (view.status, view.grade, view.level) == ("firing", 1, "Tidak Sehat")
        assert view.hazard == "air" and view.audience == "public"
        assert view.area.districts == (scope,)
        assert scope in view.texts["id-ID"].headline
        # The rule's own words if it has them, else the standards' advice for the category.
        assert view.texts["en-US"].instruction == TIDAK_SEHAT_ADVICE_EN
        assert view.details["critical_parameter"] == "o3"
        assert_texts_complete(view)
    # Polled again with nothing new: the same alerts, no new versions.
    assert poll_and_tick(service, loop) == 0
    assert {scope: view.version for scope, view in alerts(service, "air-ispu").items()} == {
        "Tebet": 1, "Menteng": 1}


def test_ispu_pending_counts_from_the_window_and_fires_on_a_tick(
        tmp_path: Path, influxdb: LocalService, database: str, mosquitto: LocalService,
        loop: asyncio.AbstractEventLoop) -> None:
    # The condition holds from the ISPU window's start (30 to 90 min ago here): with 4 h
    # pending it is pending now, and a tick 4 h later fires it without a new poll.
    service = make_service(tmp_path, influxdb.port, database, mosquitto.port,
                           **{"air-ispu": {"pending_s": 4 * 3600}})
    try:
        write(influxdb, database,
              ispu_district_points({DeviceKey("jakarta", "Tebet", "air-tebet"): 300.0}))
        poll_and_tick(service, loop)
        [view] = alerts(service, "air-ispu").values()
        assert view.status == "pending"
        later = datetime.now(UTC) + timedelta(hours=4)
        loop.run_until_complete(service.tick_once(now=later))
        [view] = alerts(service, "air-ispu").values()
        assert (view.status, view.version) == ("firing", 1)
    finally:
        loop.run_until_complete(service.influx.close())
        service.engine.dispose()


def rain_hours(window: Window, mm_per_hour: float) -> list[tuple[int, dict[str, Any]]]:
    return [(start, {"rain_mm": mm_per_hour, "reports": 12.0})
            for start in range(window.start_ms, window.end_ms, HOUR_MS)]


def test_heavy_rain_fires_for_the_window_whose_scale_says_so(
        service: AlertService, influxdb: LocalService, database: str,
        loop: asyncio.AbstractEventLoop) -> None:
    hour, day = hour_window("1h"), hour_window("1d", hours=24)
    manggarai = DeviceKey("jakarta", "Tebet", "rain-manggarai")
    jagakarsa = DeviceKey("jakarta", "Jagakarsa", "rain-jagakarsa")
    points = [
        # 15 mm in an hour is Lebat (10–20 mm/h); 15 mm in a day only Ringan (0.5–20 mm/day).
        *rain_points(hour, {manggarai: rain_hours(hour, 15.0)}, RainSettings()),
        *rain_points(day, {manggarai: rain_hours(day, 15.0 / 24)}, RainSettings()),
        # 3 mm in an hour is Ringan; 120 mm in a day is Sangat lebat (100–150 mm/day).
        *rain_points(hour, {jagakarsa: rain_hours(hour, 3.0)}, RainSettings()),
        *rain_points(day, {jagakarsa: rain_hours(day, 5.0)}, RainSettings()),
    ]
    categories = {(p.tags["device"], p.tags["window"]): p.fields["category"] for p in points}
    assert categories == {("rain-manggarai", "1h"): "Lebat", ("rain-manggarai", "1d"): "Ringan",
                          ("rain-jagakarsa", "1h"): "Ringan",
                          ("rain-jagakarsa", "1d"): "Sangat lebat"}
    write(influxdb, database, points)
    poll_and_tick(service, loop)
    found = alerts(service, "rain-heavy")
    assert set(found) == {"rain-manggarai:1h", "rain-jagakarsa:1d"}
    hourly, daily = found["rain-manggarai:1h"], found["rain-jagakarsa:1d"]
    assert (hourly.status, hourly.grade, hourly.level) == ("firing", 1, "Lebat")
    assert (daily.status, daily.grade, daily.level) == ("firing", 2, "Sangat lebat")
    assert daily.severity == "Severe" and daily.area.districts == ("Jagakarsa",)
    assert "15.0 mm dalam 1 jam" in hourly.texts["id-ID"].headline
    assert "120.0 mm in 24 hours" in daily.texts["en-US"].headline
    for view in found.values():
        assert_texts_complete(view)


def test_influxdb_stopped_poll_once_warns_and_raises_nothing(
        tmp_path: Path, own_influxdb: LocalService, mosquitto: LocalService,
        caplog: pytest.LogCaptureFixture, loop: asyncio.AbstractEventLoop) -> None:
    service = make_service(tmp_path, own_influxdb.port, "kota", mosquitto.port)
    own_influxdb.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="kota.alerts"):
            started = time.monotonic()
            assert poll_and_tick(service, loop) == 0
        assert time.monotonic() - started < 30
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("rule air-ispu: InfluxDB did not answer" in w for w in warnings), warnings
        assert any("rule rain-heavy: InfluxDB did not answer" in w for w in warnings), warnings
        assert service.metrics.polls_failed._value.get() == 2
        assert service.store.find() == []
    finally:
        loop.run_until_complete(service.influx.close())
        service.engine.dispose()
