"""What the live page's chart asks of the API (issue 14), against the real InfluxDB: a field's
unit, words and bands (``/readings/fields``: ISPU categories at the PM2.5 breakpoints of
kota/standards/ispu.yaml, a gauge's Siaga thresholds from kota/standards/gauges.yaml), and the
history as CSV (``format=csv`` or ``Accept: text/csv``) holding the very points of the JSON
answer, under the same limits."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from api_data import Seeded
from fastapi.testclient import TestClient

from kota.standards import load_gauges_table, load_ispu_table

HISTORY = "/api/v1/readings/history"


def test_air_fields_carry_the_ispu_bands_at_the_breakpoint_concentrations(
        api_client: TestClient) -> None:
    body = api_client.get("/api/v1/readings/fields", params={"kind": "air"}).json()
    assert body["kind"] == "air" and body["title"].startswith("Kualitas udara")
    pm25 = next(f for f in body["fields"] if f["field"] == "pm25")
    assert pm25["unit"] == "ug/m3" and pm25["description"] == "PM2.5 concentration"
    table = load_ispu_table()
    edges = table.parameters["pm25"].edges_ugm3
    assert [(b["label"], b["lower"], b["upper"], b["hex"]) for b in pm25["bands"]] == [
        (c.name, edges[i], edges[i + 1], c.hex) for i, c in enumerate(table.categories.bands)]
    assert pm25["bands"][1] == {"label": "Sedang", "lower": 15.5, "upper": 55.4,
                                "hex": "#193ce3", "status": None,
                                "source": pm25["bands"][1]["source"]}
    # temperature is no ISPU parameter: no bands
    assert next(f for f in body["fields"] if f["field"] == "temperature")["bands"] == []


def test_water_fields_carry_the_gauges_siaga_thresholds(api_client: TestClient) -> None:
    body = api_client.get("/api/v1/readings/fields",
                          params={"kind": "water", "device": "water-manggarai"}).json()
    level = next(f for f in body["fields"] if f["field"] == "level_cm")
    assert (body["title"], level["unit"]) == ("Tinggi muka air / Water level", "cm")
    gauge = load_gauges_table().gauges["manggarai"]
    thresholds = [t.value_cm for _, t in gauge.thresholds()]
    assert [(b["status"], b["lower"], b["upper"]) for b in level["bands"]] == [
        (4, None, thresholds[0]), (3, thresholds[0], thresholds[1]),
        (2, thresholds[1], thresholds[2]), (1, thresholds[2], None)]
    assert level["bands"][1]["label"] == "Siaga 3 · Waspada"
    # a gauge id missing from the table, and no device: no bands
    for params in ({"kind": "water", "device": "water-kali"}, {"kind": "water"}):
        fields = api_client.get("/api/v1/readings/fields", params=params).json()["fields"]
        assert all(f["bands"] == [] for f in fields), params
    assert api_client.get("/api/v1/readings/fields", params={"kind": "lava"}).status_code == 422


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_history_holds_the_json_points(api_client: TestClient, seeded: Seeded) -> None:
    params = {"kind": "water", "device": "water-manggarai", "fields": "level_cm",
              "interval": "10m", "aggregate": "max"}
    series = api_client.get(HISTORY, params=params).json()["series"][0]
    answer = api_client.get(HISTORY, params={**params, "format": "csv"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith('attachment; filename="water-')
    rows = _rows(answer.text)
    assert answer.text.splitlines()[0] == "time_utc,time_wib,device,district,city,level_cm"
    assert [float(r["level_cm"]) for r in rows] == series["values"]["level_cm"] == [
        800.0, 830.0, 860.0]
    times = [int(datetime.fromisoformat(r["time_utc"]).timestamp() * 1000) for r in rows]
    assert times == series["times_ms"]
    wib = datetime.fromtimestamp(series["times_ms"][0] / 1000, UTC).astimezone(
        ZoneInfo("Asia/Jakarta"))
    assert rows[0]["time_wib"] == wib.strftime("%Y-%m-%d %H:%M:%S")
    assert {(r["device"], r["district"], r["city"]) for r in rows} == {
        ("water-manggarai", "Tebet", "jakarta")}
    # Accept: text/csv asks for the same; format=json wins over Accept
    by_accept = api_client.get(HISTORY, params=params, headers={"Accept": "text/csv"})
    assert by_accept.text == answer.text
    json_wins = api_client.get(HISTORY, params={**params, "format": "json"},
                               headers={"Accept": "text/csv"})
    assert json_wins.headers["content-type"] == "application/json"


def test_csv_history_keeps_the_limits(api_client: TestClient, seeded: Seeded) -> None:
    raw = api_client.get(HISTORY, params={"kind": "air", "device": "air-menteng",
                                          "fields": ["pm25", "temperature"], "limit": 5,
                                          "format": "csv"})
    rows = _rows(raw.text)
    assert len(rows) == 5 and set(rows[0]) >= {"pm25", "temperature"}
    # a missing value is an empty cell, not "None"
    assert all(r["pm25"] == "40.0" for r in rows)
    too_much = api_client.get(HISTORY, params={"kind": "air", "interval": "10s",
                                               "start": "2026-01-01T00:00:00Z",
                                               "end": "2026-01-20T00:00:00Z",
                                               "format": "csv"})
    assert too_much.status_code == 422
    assert too_much.headers["content-type"] == "application/problem+json"
    safety = api_client.get(HISTORY, params={"kind": "safety", "format": "csv"})
    assert safety.status_code == 401
    bad = api_client.get(HISTORY, params={"kind": "air", "format": "xlsx"})
    assert bad.status_code == 422
