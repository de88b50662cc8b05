"""Every endpoint against a real InfluxDB holding known points (tests/support/api_data.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from api_data import HOUR, MINUTE, Seeded, api_registry, make_settings, tags, write_lines
from fastapi.testclient import TestClient

from api.main import create_app
from devstack.localstack import LocalService, free_port

PROBLEM = "application/problem+json"


def by_device(items: list[dict]) -> dict[str, dict]:
    return {item["device"]: item for item in items}


def test_healthz_and_readyz(api_client: TestClient, database: str) -> None:
    assert api_client.get("/healthz").json() == {"status": "ok"}
    ready = api_client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "influx": "up", "database": database,
                            "devices": 6}


def test_readyz_is_a_503_problem_without_influxdb(influxdb: LocalService,
                                                  database: str) -> None:
    settings = make_settings(influxdb, database)
    settings.influx.url = f"http://127.0.0.1:{free_port()}"
    with TestClient(create_app(settings, registry=api_registry())) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["status"] == 503
        latest = client.get("/api/v1/readings/latest")
        assert latest.status_code == 503
        assert latest.headers["retry-after"] == "5"


def test_devices(api_client: TestClient) -> None:
    everything = api_client.get("/api/v1/devices").json()
    assert len(everything) == 6
    water = api_client.get("/api/v1/devices", params={"kind": "water"}).json()
    assert {d["device_id"] for d in water} == {"water-manggarai", "water-kali"}
    tebet = api_client.get("/api/v1/devices", params={"district": "Tebet"}).json()
    assert {d["device_id"] for d in tebet} == {"air-tebet", "water-manggarai", "rain-tebet"}
    one = api_client.get("/api/v1/devices/water-manggarai").json()
    assert one["params"] == {"gauge_id": "manggarai", "river": "Ciliwung"}
    assert (one["lat"], one["lon"]) == (-6.209, 106.849)
    missing = api_client.get("/api/v1/devices/no-such-device")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json()["type"] == "urn:kota-cerdas:problem:unknown-device"
    assert missing.json()["instance"] == "/api/v1/devices/no-such-device"


@pytest.mark.slow
def test_latest_per_device(api_client: TestClient, seeded: Seeded) -> None:
    body = api_client.get("/api/v1/readings/latest").json()
    assert body["count"] == 6
    readings = by_device(body["readings"])
    menteng = readings["air-menteng"]
    assert menteng["time_ms"] == seeded.menteng_latest_ms
    assert menteng["fields"] == {"pm25": 40.0, "pm10": 80.0, "temperature": 30.5}
    assert (menteng["district"], menteng["kelurahan"], menteng["lat"]) == ("Menteng", "Menteng",
                                                                           -6.196)
    assert readings["water-manggarai"]["fields"] == {"level_cm": 860.0}
    assert readings["panic-monas"]["tags"] == {"event": "panic"}
    assert readings["panic-monas"]["fields"] == {"count": 1.0, "confidence": 0.9}
    assert datetime.fromisoformat(menteng["time"]) == datetime.fromtimestamp(
        seeded.menteng_latest_ms / 1000, tz=UTC)


@pytest.mark.slow
def test_latest_filtered_by_kind_district_and_device(api_client: TestClient,
                                                     seeded: Seeded) -> None:
    air = api_client.get("/api/v1/readings/latest", params={"kind": "air"}).json()
    assert [r["device"] for r in air["readings"]] == ["air-menteng", "air-tebet"]
    tebet = api_client.get("/api/v1/readings/latest", params={"district": "Tebet"}).json()
    assert {r["device"] for r in tebet["readings"]} == {"air-tebet", "water-manggarai",
                                                       "rain-tebet"}
    one = api_client.get("/api/v1/readings/latest",
                         params={"device": "rain-tebet", "kind": "rain"}).json()
    assert [(r["device"], r["fields"]["rain_mm"]) for r in one["readings"]] == [
        ("rain-tebet", 2.5)]
    nothing = api_client.get("/api/v1/readings/latest", params={"city": "bandung"}).json()
    assert nothing == {"count": 0, "readings": []}


@pytest.mark.slow
def test_latest_per_district(api_client: TestClient, influxdb: LocalService, database: str,
                             seeded: Seeded) -> None:
    # A second Tebet air station so the district has something to summarise.
    write_lines(influxdb, database, [
        f"air,{tags('air-tebet-2', 'air', 'Tebet')} pm25=60.0 {seeded.now_ms - 2 * MINUTE}"])
    districts = api_client.get("/api/v1/readings/latest/districts",
                               params={"kind": "air"}).json()
    tebet = next(d for d in districts if d["district"] == "Tebet")
    assert tebet["devices"] == 2
    assert tebet["fields"]["pm25"] == {"mean": 40.0, "min": 20.0, "max": 60.0, "devices": 2}
    menteng = next(d for d in districts if d["district"] == "Menteng")
    assert menteng["fields"]["pm10"]["mean"] == 80.0


@pytest.fixture
def history_points(influxdb: LocalService, database: str) -> None:
    """air-menteng every 10 min on 2026-01-01 00:00–01:50 UTC, pm25 = 1 … 12."""
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    write_lines(influxdb, database, [
        f"air,{tags('air-menteng', 'air', 'Menteng')} pm25={n + 1}.0,pm10={10 * (n + 1)}.0 "
        f"{start + n * 10 * MINUTE}" for n in range(12)])


HISTORY = {"kind": "air", "device": "air-menteng", "start": "2026-01-01T07:00:00+07:00",
           "end": "2026-01-01T02:00:00Z"}


@pytest.mark.slow
def test_history_downsampled(api_client: TestClient, history_points: None) -> None:
    body = api_client.get("/api/v1/readings/history",
                          params={**HISTORY, "fields": "pm25", "interval": "1h"}).json()
    assert body["interval"] == "1h" and body["aggregate"] == "mean"
    [series] = body["series"]
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert series["times_ms"] == [start, start + HOUR]
    assert series["values"] == {"pm25": [3.5, 9.5]}
    maxima = api_client.get("/api/v1/readings/history",
                            params={**HISTORY, "fields": ["pm25", "pm10"], "interval": "30m",
                                    "aggregate": "max"}).json()
    assert maxima["series"][0]["values"] == {"pm25": [3.0, 6.0, 9.0, 12.0],
                                             "pm10": [30.0, 60.0, 90.0, 120.0]}


@pytest.mark.slow
def test_history_raw_with_limit(api_client: TestClient, history_points: None) -> None:
    raw = api_client.get("/api/v1/readings/history", params={**HISTORY, "fields": "pm25"}).json()
    assert raw["interval"] is None and raw["truncated"] is False
    assert raw["series"][0]["values"]["pm25"] == [float(n) for n in range(1, 13)]
    cut = api_client.get("/api/v1/readings/history",
                         params={**HISTORY, "fields": "pm25", "limit": 5}).json()
    assert cut["truncated"] is True
    assert cut["series"][0]["values"]["pm25"] == [1.0, 2.0, 3.0, 4.0, 5.0]


@pytest.mark.slow
@pytest.mark.parametrize(("params", "word"), [
    ({"fields": "level_cm"}, "fields"),                       # not a field of air
    ({"start": "2026-01-02T00:00:00Z"}, "start"),             # start after end
    ({"start": "1999-01-01T00:00:00Z"}, "start"),             # outside the bounded range
    ({"start": "2025-01-01T00:00:00Z"}, "start"),             # longer than max_range_days
    ({"interval": "1s"}, "interval"),                         # shorter than min_interval_s
    ({"interval": "10s", "start": "2025-12-01T00:00:00Z"}, "interval"),  # too many buckets
    ({"limit": 20_000}, "limit"),                             # above max_points
    ({"interval": "1w"}, "interval"),                         # not a unit we take
    ({"aggregate": "percentile"}, "aggregate"),               # not an allowed aggregate
])
def test_history_bounds_are_problems(api_client: TestClient, params: dict[str, object],
                                     word: str) -> None:
    response = api_client.get("/api/v1/readings/history", params={**HISTORY, **params})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 422
    assert word in (body["title"] + body["detail"] + str(body.get("errors")))


def test_ispu_computed_from_readings(api_client: TestClient, seeded: Seeded) -> None:
    body = api_client.get("/api/v1/indicators/ispu").json()
    assert body["source"] == "computed"
    items = by_device(body["items"])
    menteng = items["air-menteng"]
    # 80.70 computed, published as KLHK does: a whole number (kota/standards/ispu.yaml rounding)
    assert menteng["ispu"] == math.floor(50 / 39.9 * 24.5 + 50 + 0.5) == 81
    assert menteng["sub_indices"]["pm10"] == pytest.approx(65.0)
    assert (menteng["category"], menteng["colour"], menteng["critical_parameter"]) == (
        "Sedang", "biru", "pm25")
    assert menteng["complete"] is True
    tebet = items["air-tebet"]
    assert tebet["ispu"] is None and tebet["insufficient"] == ["pm25"]
    districts = api_client.get("/api/v1/indicators/ispu", params={"scope": "district"}).json()
    by_name = {d["district"]: d for d in districts["items"]}
    assert by_name["Menteng"]["ispu"] == pytest.approx(menteng["ispu"])
    assert by_name["Menteng"]["stations"] == 1
    assert by_name["Tebet"]["ispu"] is None and by_name["Tebet"]["stations"] == 0


@pytest.mark.slow
def test_ispu_from_the_indicator_service(api_client: TestClient, influxdb: LocalService,
                                         database: str, seeded: Seeded) -> None:
    hour = seeded.now_ms // HOUR * HOUR - HOUR
    write_lines(influxdb, database, [
        "ispu,city=jakarta,device=air-menteng,district=Menteng,scope=device,window=1h "
        'ispu=123.0,ispu_pm25=123.0,ispu_pm10=60.0,category="Tidak Sehat",colour="kuning",'
        f'hex="#f56a0d",critical_parameter="pm25",complete=true,insufficient="" {hour}',
        "ispu,city=jakarta,district=Menteng,scope=district,window=1h "
        'ispu=123.0,category="Tidak Sehat",complete=true,stations=1.0,'
        f'worst_device="air-menteng" {hour}'])
    body = api_client.get("/api/v1/indicators/ispu").json()
    assert body["source"] == "indicator_service"
    [item] = body["items"]
    assert (item["device"], item["ispu"], item["category"], item["complete"]) == (
        "air-menteng", 123.0, "Tidak Sehat", True)
    assert item["sub_indices"] == {"pm25": 123.0, "pm10": 60.0}
    district = api_client.get("/api/v1/indicators/ispu", params={"scope": "district"}).json()
    assert district["source"] == "indicator_service"
    assert [(d["district"], d["device"], d["stations"]) for d in district["items"]] == [
        ("Menteng", "air-menteng", 1)]


@pytest.mark.slow
def test_siaga_computed_from_levels(api_client: TestClient, seeded: Seeded) -> None:
    body = api_client.get("/api/v1/indicators/siaga").json()
    assert body["source"] == "computed"
    items = by_device(body["items"])
    manggarai = items["water-manggarai"]
    assert (manggarai["level_cm"], manggarai["status"], manggarai["status_name"]) == (
        860.0, 2, "Siaga")
    assert manggarai["thresholds_cm"] == {"siaga3": 750.0, "siaga2": 850.0, "siaga1": 950.0}
    assert manggarai["rise_cm_per_h"] == pytest.approx(73.0, abs=3)
    assert manggarai["hours_to_next"] == pytest.approx(90 / manggarai["rise_cm_per_h"])
    kali = items["water-kali"]
    assert kali["status"] is None and kali["level_cm"] == 120.0


@pytest.mark.slow
def test_siaga_from_the_indicator_service(api_client: TestClient, influxdb: LocalService,
                                          database: str, seeded: Seeded) -> None:
    minute = seeded.now_ms // MINUTE * MINUTE - MINUTE
    write_lines(influxdb, database, [
        "siaga,city=jakarta,device=water-manggarai,district=Tebet,gauge=manggarai,scope=device,"
        f'window=1m level_cm=955.0,status=1.0,status_name="Awas",complete=true {minute}'])
    body = api_client.get("/api/v1/indicators/siaga").json()
    # Manggarai from the service; the other seeded gauges have no service minute: computed.
    assert body["source"] == "mixed"
    items = {item["device"]: item for item in body["items"]}
    item = items["water-manggarai"]
    assert (item["status"], item["status_name"], item["gauge_name"], item["source"]) == (
        1, "Awas", "Pintu Air Manggarai", "indicator_service")
    assert {i["source"] for d, i in items.items() if d != "water-manggarai"} == {"computed"}


@pytest.mark.slow
def test_siaga_ignores_incomplete_service_minutes(api_client: TestClient,
                                                  influxdb: LocalService, database: str,
                                                  seeded: Seeded) -> None:
    minute = seeded.now_ms // MINUTE * MINUTE - MINUTE
    write_lines(influxdb, database, [
        "siaga,city=jakarta,device=water-manggarai,district=Tebet,gauge=manggarai,scope=device,"
        f"window=1m complete=false {minute}"])
    body = api_client.get("/api/v1/indicators/siaga").json()
    item = {i["device"]: i for i in body["items"]}["water-manggarai"]
    assert item["source"] == "computed"
    assert item["level_cm"] == 860.0


def test_meta_for_the_page(api_client: TestClient) -> None:
    meta = api_client.get("/api/v1/meta").json()
    assert meta["tile_url"] is None
    assert [c["name"] for c in meta["ispu_categories"]][:2] == ["Baik", "Sedang"]
    assert meta["siaga_names"]["1"] == "Awas"


def test_openapi_docs_and_page_are_served(api_client: TestClient) -> None:
    docs = api_client.get("/docs")
    assert docs.status_code == 200
    # Swagger UI from the vendored copy, not a CDN: the docs work offline.
    assert "/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text and "cdn." not in docs.text
    assert api_client.get("/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert api_client.get("/vendor/leaflet/leaflet.js").status_code == 200
    paths = api_client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/readings/latest", "/api/v1/readings/history", "/api/v1/indicators/ispu",
            "/api/v1/indicators/siaga", "/api/v1/stream", "/healthz", "/readyz"} <= set(paths)
    page = api_client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def test_vendored_files_match_their_checksums() -> None:
    """api/static/vendor/README.md lists each vendored file's SHA-256; a silent edit fails."""
    import hashlib
    import re

    from api.main import STATIC_DIR

    vendor = STATIC_DIR / "vendor"
    sums = re.findall(r"^([0-9a-f]{64})  (\S+)$", (vendor / "README.md").read_text(), re.M)
    assert len(sums) == 6
    for digest, name in sums:
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    for licence in ("leaflet/LICENSE", "uplot/LICENSE", "swagger-ui/LICENSE"):
        assert (vendor / licence).stat().st_size > 500
