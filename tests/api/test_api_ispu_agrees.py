"""The API's fallback ISPU (no recent indicator points) is the indicator service's own ISPU: for
the same readings, the live page and the dashboards show the same number for a station.

The data makes the averaging periods matter: CO (an 8-h mean in the ISPU table) is high in the
last 8 hours only, PM2.5 and PM10 (24-h means) are steady; both sides must pick the same hours.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from api_data import api_registry, make_settings, tags, write_lines
from fastapi.testclient import TestClient

from api.main import create_app
from devstack.localstack import LocalService
from indicators.context import Context
from indicators.service import IndicatorService
from indicators.settings import IndicatorSettings
from indicators.windows import HOUR_MS, MINUTE_MS, Window
from kota.influx import InfluxSettings


@pytest.mark.slow
def test_api_fallback_ispu_equals_the_indicator_service_s(influxdb: LocalService,
                                                          database: str) -> None:
    now_ms = int(time.time() * 1000)
    current_hour = now_ms // HOUR_MS * HOUR_MS
    menteng = tags("air-menteng", "air", "Menteng")
    lines = []
    for k in range(0, 24):
        at = current_hour - k * HOUR_MS + min(30 * MINUTE_MS, max(0, now_ms - current_hour - 1))
        co = 9000.0 if k < 8 else 1000.0
        lines.append(f"air,{menteng} pm25=40.0,pm10=80.0,co={co} {at}")
    write_lines(influxdb, database, lines)

    with TestClient(create_app(make_settings(influxdb, database),
                               registry=api_registry())) as client:
        body = client.get("/api/v1/indicators/ispu").json()
    assert body["source"] == "computed"
    [api_item] = body["items"]

    settings = IndicatorSettings(
        influx=InfluxSettings(url=f"http://127.0.0.1:{influxdb.port}", database=database),
        metrics_port=0)
    service = IndicatorService(settings, Context(api_registry()))

    async def points() -> list:
        try:
            return await service.points_for(Window(current_hour, current_hour + HOUR_MS, "1h"))
        finally:
            await service.close()

    [station] = [p for p in asyncio.run(points())
                 if p.measurement == "ispu" and p.tags.get("device") == "air-menteng"]
    assert station.fields["complete"] is True
    assert api_item["ispu"] == pytest.approx(station.fields["ispu"])
    assert api_item["critical_parameter"] == station.fields["critical_parameter"]
    assert api_item["category"] == station.fields["category"]
    assert api_item["sub_indices"] == pytest.approx(
        {k.removeprefix("ispu_"): v for k, v in station.fields.items()
         if k.startswith("ispu_")})
    assert api_item["complete"] is True
