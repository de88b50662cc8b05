"""Kecamatan boundaries on the live page (issue 14): the file the city provides
(``api.page.districts_geojson``) is checked when the settings load — a bad one is one line
naming the setting, the file and where in it — served by the API with an ETag, and drawn in
Chromium coloured by the worst complete station's ISPU, recoloured when that changes.

The shapes are tests/api/data/kecamatan-handmade.geojson: hand-made around the test devices,
NOT real boundaries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_data import HOUR, MINUTE, api_registry, make_settings, seed, serve, tags, write_lines
from browser import Browsed
from fastapi.testclient import TestClient
from playwright.sync_api import expect

from api.districts import COORDINATE_DECIMALS, DistrictsError, load_districts
from api.main import create_app
from api.settings import ApiSettings
from devstack.localstack import LocalService
from kota.config import ConfigError, load_settings

HANDMADE = Path(__file__).parent / "data" / "kecamatan-handmade.geojson"
SEDANG = "#193ce3"   # kota/standards/ispu.yaml
NO_DATA = "#aab4be"  # api/static/common.js
ATTRIBUTION = "Batas kecamatan: buatan tangan untuk uji <b>"  # escaped on the page


def _feature(name: str | None = "Tebet", geometry: object = None,
             **properties: object) -> dict[str, object]:
    props: dict[str, object] = dict(properties)
    if name is not None:
        props["name"] = name
    return {"type": "Feature", "properties": props, "geometry": geometry or {
        "type": "Polygon",
        "coordinates": [[[106.84, -6.2], [106.87, -6.2], [106.87, -6.24], [106.84, -6.2]]]}}


def _collection(*features: dict[str, object], **extra: object) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features), **extra})


def test_the_handmade_file_is_served_small_and_named() -> None:
    districts = load_districts(HANDMADE)
    assert districts.names == ("Gambir", "Menteng", "Tebet", "Setiabudi")
    served = json.loads(districts.body)
    # Only the name is kept; the geometry types as given (Tebet is a MultiPolygon).
    assert [f["properties"] for f in served["features"]] == [{"name": n} for n in districts.names]
    assert [f["geometry"]["type"] for f in served["features"]] == [
        "Polygon", "Polygon", "MultiPolygon", "Polygon"]
    assert districts.etag.startswith('"') and districts.etag.endswith('"')


def test_coordinates_are_rounded_and_another_name_property_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.geojson"
    path.write_text(_collection(_feature(None, WADMKC="Kec. Tebet", geometry={
        "type": "Polygon", "coordinates": [[[106.8412345678, -6.2], [106.87, -6.2],
                                             [106.87, -6.24], [106.8412345678, -6.2]]]})))
    districts = load_districts(path, "WADMKC", "© OpenStreetMap contributors, ODbL")
    served = json.loads(districts.body)
    assert served["attribution"] == "© OpenStreetMap contributors, ODbL"
    feature = served["features"][0]
    assert feature["properties"] == {"name": "Kec. Tebet"}
    assert feature["geometry"]["coordinates"][0][0] == [round(106.8412345678,
                                                              COORDINATE_DECIMALS), -6.2]


@pytest.mark.parametrize(("text", "expected"), [
    ('{"type": "FeatureCollection",\n "features": [\n  {"type": "Feature",,}]}', ":3: not JSON"),
    ('{"type": "Feature"}', "not a GeoJSON FeatureCollection"),
    (_collection(), "has no features"),
    (_collection(_feature(None, NAMOBJ="Tebet")), "feature 0: no 'name' property"),
    (_collection(_feature(), _feature(geometry={"type": "Point",
                                                "coordinates": [106.8, -6.2]})),
     "feature 1 (Tebet): geometry 'Point', expected Polygon or MultiPolygon"),
    # UTM zone 48S (EPSG:32748), as BIG's shapefiles often come: metres, not degrees.
    (_collection(_feature(geometry={"type": "Polygon", "coordinates": [[
        [702000.0, 9314000.0], [705000.0, 9314000.0], [705000.0, 9310000.0],
        [702000.0, 9314000.0]]]})), "is not longitude/latitude (WGS84): reproject it"),
    (_collection(_feature(), crs={"type": "name", "properties": {
        "name": "urn:ogc:def:crs:EPSG::32748"}}), "not longitude/latitude (WGS84)"),
    (_collection(_feature(geometry={"type": "Polygon", "coordinates": [[
        [106.84, -6.2], [106.87, -6.2], [106.84, -6.2]]]})), "a ring with 3 positions"),
    (_collection(_feature(geometry={"type": "Polygon", "coordinates": [[
        [106.84, "x"], [106.87, -6.2], [106.87, -6.24], [106.84, -6.2]]]})),
     "is not [longitude, latitude]"),
])
def test_a_bad_file_is_one_line_naming_it(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "kecamatan.geojson"
    path.write_text(text)
    with pytest.raises(DistrictsError) as caught:
        load_districts(path)
    message = str(caught.value)
    assert expected in message and str(path) in message and "\n" not in message, message


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DistrictsError, match="cannot read it: No such file"):
        load_districts(tmp_path / "absent.geojson")


def test_the_setting_is_checked_when_the_settings_load(tmp_path: Path) -> None:
    """What `kota api` prints (one line per problem, exit 2): the kota.yaml line of the
    setting, the setting's name, the GeoJSON file and the line in it."""
    bad = tmp_path / "kecamatan.geojson"
    bad.write_text('{"type": "FeatureCollection",\n "features": [}\n')
    config = tmp_path / "kota.yaml"
    config.write_text(f"api:\n  port: 8001\n  page:\n    districts_geojson: {bad}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(ApiSettings, "api", config, environ={})
    assert len(caught.value.problems) == 1
    problem = caught.value.problems[0]
    assert problem.startswith(f"{config}:4: api.page.districts_geojson: "), problem
    assert f"{bad}:2: not JSON" in problem and "\n" not in problem, problem
    # A good file loads.
    config.write_text(f"api:\n  page:\n    districts_geojson: {HANDMADE}\n")
    settings = load_settings(ApiSettings, "api", config, environ={})
    assert settings.page.districts_geojson == HANDMADE


def test_the_api_serves_them_with_an_etag(influxdb: LocalService, database: str,
                                          tmp_path: Path) -> None:
    path = tmp_path / "kecamatan.geojson"
    path.write_text(HANDMADE.read_text())
    settings = make_settings(influxdb, database)
    configured = settings.model_copy(update={"page": settings.page.model_copy(
        update={"districts_geojson": path})})
    with TestClient(create_app(configured, registry=api_registry())) as client:
        answer = client.get("/api/v1/meta/districts")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/geo+json"
        assert answer.headers["cache-control"] == "public, max-age=600"
        etag = answer.headers["etag"]
        assert [f["properties"]["name"] for f in answer.json()["features"]] == [
            "Gambir", "Menteng", "Tebet", "Setiabudi"]
        again = client.get("/api/v1/meta/districts", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        # The city replaces the file: the next answer is the new one, with a new tag.
        path.write_text(_collection(_feature("Tebet")))
        time.sleep(0.01)
        changed = client.get("/api/v1/meta/districts", headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert [f["properties"]["name"] for f in changed.json()["features"]] == ["Tebet"]
    # Unset: an empty collection (the page draws none), still cacheable.
    with TestClient(create_app(settings, registry=api_registry())) as client:
        answer = client.get("/api/v1/meta/districts")
        assert answer.status_code == 200 and answer.json() == {
            "type": "FeatureCollection", "features": []}
        assert answer.headers["etag"]


@pytest.fixture
def served(influxdb: LocalService, database: str) -> Iterator[str]:
    seed(influxdb, database)
    settings = make_settings(influxdb, database, sse_interval_s=0.5, sse_max_duration_s=60)
    settings = settings.model_copy(update={"page": settings.page.model_copy(
        update={"districts_geojson": HANDMADE, "districts_attribution": ATTRIBUTION})})
    with serve(create_app(settings, registry=api_registry())) as url:
        yield url


def _fill(browsed: Browsed, district: str) -> str | None:
    return browsed.page.locator(f'path.district[data-district="{district}"]').get_attribute(
        "fill")


@pytest.mark.slow
def test_the_map_colours_each_kecamatan_by_its_ispu(browser: Browsed, served: str,
                                                    influxdb: LocalService,
                                                    database: str) -> None:
    page = browser.page
    page.goto(f"{served}/")
    expect(page.locator("path.district")).to_have_count(4, timeout=20_000)
    expect(page.locator('#table-air tr[data-device="air-menteng"] [data-field="category"]')
           ).to_contain_text("Sedang", timeout=20_000)
    # Menteng: its station's ISPU 81, Sedang. Tebet: its station has 3 hours of 24 (no index);
    # Gambir and Setiabudi: no air station.
    expect(page.locator('path.district[data-district="Menteng"]')).to_have_attribute(
        "fill", SEDANG, timeout=10_000)
    assert [_fill(browser, d) for d in ("Tebet", "Gambir", "Setiabudi")] == [NO_DATA] * 3
    # Names as labels on the map (the test data's zoom is above the labels' threshold), and
    # in the tooltip with the ISPU.
    labels = page.locator(".leaflet-tooltip.district-label")
    expect(labels).to_have_count(4)
    assert sorted(labels.all_text_contents()) == ["Gambir", "Menteng", "Setiabudi", "Tebet"]
    expect(labels.first).to_be_visible()
    page.locator('path.district[data-district="Setiabudi"]').hover()
    expect(page.locator(".leaflet-tooltip.district-tip")).to_contain_text("Kecamatan Setiabudi")
    # The legend says what the colour means; the licence's attribution is on the map, as text.
    expect(page.locator('.legend-note[data-when="districts"]')).to_be_visible()
    expect(page.locator(".leaflet-control-attribution")).to_contain_text(ATTRIBUTION)

    # Tebet's station gets a full day of PM2.5 150 µg/m³: the stream brings its ISPU, and the
    # kecamatan takes the colour of the station's marker (not grey any more).
    now_ms = int(time.time() * 1000)
    tebet = tags("air-tebet", "air", "Tebet")
    write_lines(influxdb, database, [
        f"air,{tebet} pm25=150.0 {now_ms // HOUR * HOUR - k * HOUR + 30 * MINUTE}"
        for k in range(1, 24)] + [f"air,{tebet} pm25=150.0 {now_ms}"])
    row = page.locator('#table-air tr[data-device="air-tebet"] [data-field="category"]')
    expect(row).not_to_contain_text("tidak cukup", timeout=20_000)
    expect(page.locator('path.district[data-district="Tebet"]')).not_to_have_attribute(
        "fill", NO_DATA, timeout=10_000)
    tebet_fill = _fill(browser, "Tebet")
    marker_fills = page.locator("path.leaflet-interactive:not(.district)").evaluate_all(
        "paths => paths.map(p => p.getAttribute('fill'))")
    assert tebet_fill in marker_fills and tebet_fill not in (SEDANG, NO_DATA), tebet_fill
    # Menteng is unchanged: each kecamatan has its own stations.
    assert _fill(browser, "Menteng") == SEDANG
