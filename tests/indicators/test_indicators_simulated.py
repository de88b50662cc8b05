"""A simulated Jakarta day through the whole pipeline: simulator -> Mosquitto -> `kota ingest`
-> InfluxDB -> the indicator service. Checks that every station, gauge and district gets its
indicators and that a station's ISPU equals the pure function applied to the stored readings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kota_testing import count_points, influx_query, wait_until

from devstack.localstack import LocalService
from indicators.context import Context, load_districts
from indicators.service import IndicatorService
from indicators.settings import DATA_DIR, IndicatorSettings
from indicators.windows import HOUR_MS
from kota.indices import ispu
from kota.influx import InfluxSettings
from kota.registry import Registry
from simulators import SimulateSettings, build_stream, run

HOUR = HOUR_MS
DAY_START = int(datetime(2026, 11, 19, 17, tzinfo=UTC).timestamp() * 1000)  # 20 Nov, WIB
DAY_END = DAY_START + 24 * HOUR


@pytest.mark.slow
def test_a_simulated_day_gets_its_indicators(tmp_path: Path, mosquitto: LocalService,
                                             influxdb: LocalService, database: str,
                                             client_id: str, ingest_factory: type) -> None:
    settings = SimulateSettings.model_validate({
        "mqtt": {"port": mosquitto.port, "client_id": f"{client_id}-sim"},
        "seed": 5, "speed": 0, "duration_s": 24 * 3600.0,
        "start": datetime.fromtimestamp(DAY_START / 1000, UTC), "faults": {"share": 0.0}})
    stream, _ = build_stream(settings)
    registry = stream.city.registry()
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text(registry.dump_yaml())
    expected = sum(1 for _ in stream)
    ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                   registry_file=str(registry_file), mqtt__client_id=client_id).start()
    summary = run(settings)
    assert summary.acknowledged == expected
    kinds = ("air", "water", "rain", "noise", "safety", "status")
    wait_until(lambda: sum(count_points(influxdb, database, kind) for kind in kinds)
               >= expected, 60, "ingest to store the simulated day")

    service = IndicatorService(
        IndicatorSettings(influx=InfluxSettings(url=f"http://127.0.0.1:{influxdb.port}",
                                                database=database),
                          windows=["1h", "1d"], metrics_port=0),
        Context(Registry.load(registry_file), load_districts(DATA_DIR / "jakarta" /
                                                             "districts.csv")))

    async def go() -> int:
        try:
            return len((await service.recompute(DAY_START, DAY_END)).windows)
        finally:
            await service.close()
    assert asyncio.run(go()) == 25
    assert count_points(influxdb, database, "indicator_runs") == 25

    # every air station: a daily ISPU point; complete ones equal the pure function applied to
    # hourly means queried independently here
    stations = [d.device_id for d in registry if d.kind == "air"]
    daily = influx_query(influxdb, database, "SELECT * FROM \"ispu\" WHERE \"window\"='1d' "
                         "AND \"scope\"='device' GROUP BY \"device\"")
    assert sorted(s["tags"]["device"] for s in daily) == sorted(stations)
    complete = 0
    for series in daily:
        row = dict(zip(series["columns"], series["values"][0], strict=True))
        if not row["complete"]:
            assert row.get("ispu") is None or row["insufficient"]
            continue
        complete += 1
        device = series["tags"]["device"]
        hourly = influx_query(
            influxdb, database, f"SELECT mean(\"pm25\") FROM \"air\" WHERE \"device\"='{device}'"
            f" AND time >= {DAY_START}ms AND time < {DAY_END}ms GROUP BY time(1h) fill(none)")
        values = [v[1] for v in hourly[0]["values"] if v[1] is not None]
        mean = ispu.average_for_ispu(values, "pm25").mean_ugm3
        assert mean is not None and row["conc_pm25"] == pytest.approx(mean, rel=1e-9)
        assert row["ispu_pm25"] == pytest.approx(ispu.ispu_sub_index("pm25", mean), rel=1e-9)
    assert complete >= len(stations) // 2

    gauges = influx_query(influxdb, database, "SELECT \"status\", \"hours_with_data\" FROM "
                          "\"siaga\" WHERE \"window\"='1d' GROUP BY \"gauge\"")
    assert len(gauges) == sum(1 for d in registry if d.kind == "water")
    for series in gauges:
        assert series["values"][0][1] in (1.0, 2.0, 3.0, 4.0)
    city = influx_query(influxdb, database, "SELECT * FROM \"city_indicators\" WHERE "
                        "\"scope\"='city'")
    row = dict(zip(city[0]["columns"], city[0]["values"][0], strict=True))
    assert 0 < row["population_share_flood_gauge"] < 1
    assert row["air_stations_live"] >= 1 and row["air_stations_per_km2"] > 0
    assert 0 < row["uptime_share"] <= 1
