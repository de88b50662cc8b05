"""The status shown is never older than the level shown (issue 14): with the indicator
service behind, a newer water reading decides the Siaga, computed with kota.indices.siaga.

Real InfluxDB; Manggarai's thresholds (kota/standards/gauges.yaml): Siaga 3 from 750 cm,
Siaga 2 from 850 cm.
"""

from __future__ import annotations

import pytest
from api_data import MINUTE, api_registry, make_settings, tags, write_lines
from fastapi.testclient import TestClient

from api.main import create_app
from devstack.localstack import LocalService
from kota.indices.siaga import load_gauges, siaga_status

GAUGE = tags("water-manggarai", "water", "Tebet")
SERVICE_POINT = ("siaga,city=jakarta,device=water-manggarai,district=Tebet,gauge=manggarai,"
                 "scope=device,window=1m ")


def _manggarai(client: TestClient) -> dict[str, object]:
    body = client.get("/api/v1/indicators/siaga").json()
    return {i["device"]: i for i in body["items"]}["water-manggarai"]


@pytest.mark.slow
def test_a_newer_reading_overrides_a_service_point_that_is_behind(
        influxdb: LocalService, database: str) -> None:
    import time

    now_ms = int(time.time() * 1000)
    old_minute = now_ms // MINUTE * MINUTE - 55 * MINUTE
    write_lines(influxdb, database, [
        # the service's newest complete minute: 55 minutes ago, Normal at 600 cm
        SERVICE_POINT + f'level_cm=600.0,status=4.0,status_name="Normal",complete=true '
                        f"{old_minute}",
        f"water,{GAUGE} level_cm=600.0 {old_minute + 10_000}",
        f"water,{GAUGE} level_cm=790.0 {now_ms - 10 * MINUTE}",
        f"water,{GAUGE} level_cm=826.0 {now_ms - 30_000}"])
    expected = siaga_status(load_gauges()["manggarai"], 826.0)
    assert (expected.status, expected.status_name) == (3, "Waspada")
    with TestClient(create_app(make_settings(influxdb, database),
                               registry=api_registry())) as client:
        item = _manggarai(client)
        assert (item["level_cm"], item["status"], item["status_name"]) == (826.0, 3, "Waspada")
        assert item["source"] == "computed"
        assert item["age_s"] is not None and float(str(item["age_s"])) < 120
        # the latest reading the page shows beside it is the same level
        latest = client.get("/api/v1/readings/latest",
                            params={"device": "water-manggarai"}).json()["readings"][0]
        assert latest["fields"]["level_cm"] == 826.0
        # the live stream's first event says the same
        body = client.get("/api/v1/stream", params={"kind": "water"}).text
        assert '"status_name":"Waspada"' in body and '"status_name":"Normal"' not in body


@pytest.mark.slow
def test_a_current_service_point_is_kept(influxdb: LocalService, database: str) -> None:
    import time

    now_ms = int(time.time() * 1000)
    minute = now_ms // MINUTE * MINUTE - MINUTE
    # the service's point covers the newest reading (same minute): its figures are used
    write_lines(influxdb, database, [
        SERVICE_POINT + f'level_cm=826.0,status=3.0,status_name="Waspada",complete=true,'
                        f"hours_to_next=2.5 {minute}",
        f"water,{GAUGE} level_cm=826.0 {minute + 20_000}"])
    with TestClient(create_app(make_settings(influxdb, database),
                               registry=api_registry())) as client:
        item = _manggarai(client)
        assert (item["status"], item["source"], item["hours_to_next"]) == (
            3, "indicator_service", 2.5)
