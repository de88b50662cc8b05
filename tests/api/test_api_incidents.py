"""``/api/v1/indicators/incidents``: the open incidents the real indicator service computed from
real safety events in the real InfluxDB, newest window only, with the hourly fallback."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from api_data import MINUTE, api_registry, tags, write_lines
from fastapi.testclient import TestClient

from devstack.localstack import LocalService
from indicators.context import Context, District, DistrictTable
from indicators.service import IndicatorService
from indicators.settings import IndicatorSettings
from kota.influx import InfluxSettings

HOUR = 60 * MINUTE


def compute_minutes(influx: LocalService, database: str, since_ms: int, until_ms: int) -> int:
    settings = IndicatorSettings(
        influx=InfluxSettings(url=f"http://127.0.0.1:{influx.port}", database=database),
        metrics_port=0, windows=["1m"])
    service = IndicatorService(settings, Context(
        api_registry(), DistrictTable([District("Gambir", 7.59, 91_673.0, 2020, "jakarta")])))

    async def go() -> int:
        try:
            return len((await service.recompute(since_ms, until_ms)).windows)
        finally:
            await service.close()
    return asyncio.run(go())


def counts(body: dict) -> dict[tuple[str, str], tuple[int, int]]:
    return {(item["district"] or "city", item["event"]):
            (item["open_incidents"], item["stale_incidents"]) for item in body["items"]}


def test_none_before_the_service_wrote_anything(api_client: TestClient) -> None:
    body = api_client.get("/api/v1/indicators/incidents").json()
    assert body == {"source": "none", "window": None, "as_of": None, "items": []}


@pytest.mark.slow
def test_open_incidents_from_the_service_minutes(api_client: TestClient, influxdb: LocalService,
                                                 database: str) -> None:
    minute = time.time_ns() // 1_000_000 // MINUTE * MINUTE
    monas = tags("panic-monas", "safety", "Gambir")
    write_lines(influxdb, database, [
        f'safety,{monas},event=fire count=1.0,incident_id="inc-1" {minute - 30 * MINUTE}',
        f'safety,{monas},event=panic count=1.0,incident_id="inc-2" {minute - 20 * MINUTE}',
        f'safety,{monas},event=resolved count=1.0,incident_id="inc-2" {minute - 10 * MINUTE}',
        f'safety,{monas},event=panic count=1.0 {minute - 5 * MINUTE}',
    ])
    # the minute ending 25 min ago (only inc-1 open: all = 1) and the last closed minute
    assert compute_minutes(influxdb, database, minute - 26 * MINUTE, minute - 25 * MINUTE) == 1
    assert compute_minutes(influxdb, database, minute - 2 * MINUTE, minute - MINUTE) == 1
    body = api_client.get("/api/v1/indicators/incidents").json()
    assert (body["source"], body["window"]) == ("indicator_service", "1m")
    # the state at the end of the newest computed minute
    assert datetime.fromisoformat(body["as_of"]) == datetime.fromtimestamp(
        (minute - MINUTE) / 1000, UTC)
    # only the newest minute: inc-2 is closed there, the id-less panic counts
    assert counts(body) == {("city", "all"): (2, 0), ("city", "fire"): (1, 0),
                            ("city", "panic"): (1, 0), ("Gambir", "all"): (2, 0),
                            ("Gambir", "fire"): (1, 0), ("Gambir", "panic"): (1, 0)}
    assert body["items"][0]["scope"] == "city" and body["items"][0]["event"] == "all"
    filtered = api_client.get("/api/v1/indicators/incidents",
                              params={"district": "Gambir"}).json()
    assert {item["scope"] for item in filtered["items"]} == {"district"}
    unknown = api_client.get("/api/v1/indicators/incidents", params={"district": "Atlantis"})
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"


def test_hourly_points_when_the_service_computes_no_minutes(api_client: TestClient,
                                                            influxdb: LocalService,
                                                            database: str) -> None:
    hour = time.time_ns() // 1_000_000 // HOUR * HOUR - HOUR
    write_lines(influxdb, database, [
        "safety_incidents,city=jakarta,district=Gambir,event=all,scope=district,window=1h "
        f"open_incidents=3.0,stale_incidents=1.0 {hour}",
        "safety_incidents,city=jakarta,district=Gambir,event=all,scope=district,window=1h "
        f"open_incidents=9.0,stale_incidents=0.0 {hour - HOUR}",
    ])
    body = api_client.get("/api/v1/indicators/incidents").json()
    assert (body["source"], body["window"]) == ("indicator_service", "1h")
    assert counts(body) == {("Gambir", "all"): (3, 1)}


@pytest.mark.slow
def test_each_city_its_newest_minute_and_no_outdated_district(api_client: TestClient,
                                                              influxdb: LocalService,
                                                              database: str) -> None:
    minute = time.time_ns() // 1_000_000 // MINUTE * MINUTE - 2 * MINUTE

    def line(city: str, district: str | None, open_: float, stale: float, at: int) -> str:
        scope = f"district,district={district}" if district else "city"
        return (f"safety_incidents,city={city},event=all,scope={scope},window=1m "
                f"open_incidents={open_},stale_incidents={stale} {at}")

    write_lines(influxdb, database, [
        line("jakarta", "Menteng", 1, 0, minute), line("jakarta", None, 1, 0, minute),
        # one city's service runs a minute behind the other's
        line("bogor", "Bogor\\ Tengah", 2, 0, minute - MINUTE),
        line("bogor", None, 2, 0, minute - MINUTE),
        # Gambir was last written 30 min ago (its incidents have aged out since)
        line("jakarta", "Gambir", 0, 1, minute - 30 * MINUTE),
    ])
    body = api_client.get("/api/v1/indicators/incidents").json()
    assert {(i["city"], i["district"], i["open_incidents"]) for i in body["items"]} == {
        ("jakarta", "Menteng", 1), ("jakarta", None, 1),
        ("bogor", "Bogor Tengah", 2), ("bogor", None, 2)}
    as_of = {i["city"]: datetime.fromisoformat(i["as_of"]) for i in body["items"]}
    assert as_of["bogor"] == datetime.fromtimestamp(minute / 1000, UTC)
    assert datetime.fromisoformat(body["as_of"]) == as_of["jakarta"]
    bogor = api_client.get("/api/v1/indicators/incidents", params={"city": "bogor"}).json()
    assert {i["city"] for i in bogor["items"]} == {"bogor"}
    gambir = api_client.get("/api/v1/indicators/incidents", params={"district": "Gambir"}).json()
    assert gambir["source"] == "indicator_service" and gambir["items"] == []
