"""End to end on real Mosquitto and InfluxDB: MQTT in, exactly the right points out."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from kota_testing import count_points, influx_query, publish, wait_until

from devstack.localstack import LocalService
from ingest.deadletter import read_dead_letters

NOW_S = int(time.time()) - 3600  # an hour ago: inside every plausibility window

# One well-formed message per kind, with the fields and tags each must produce.
KIND_SAMPLES = {
    "air": ({"pm25": 35.5, "pm10": 60, "temperature": 30.2, "humidity": 78},
            {"pm25": 35.5, "pm10": 60.0}),
    "water": ({"level_cm": 812}, {"level_cm": 812.0}),
    "rain": ({"rain_mm": 2.4, "tips": 12}, {"rain_mm": 2.4, "tips": 12.0}),
    "noise": ({"laeq_db": 68.3}, {"laeq_db": 68.3}),
    "safety": ({"event": "panic", "confidence": 0.9}, {"count": 1.0, "confidence": 0.9}),
    "status": ({"battery_pct": 87, "rssi_dbm": -71, "firmware": "1.2.0"},
               {"battery_pct": 87.0, "firmware": "1.2.0"}),
}


def _registry(tmp_path: Path) -> Path:
    path = tmp_path / "devices.yaml"
    path.write_text(
        "devices:\n"
        "  - {device_id: jkt-air-gambir, kind: air, city: jakarta, district: Gambir,"
        " kelurahan: Gambir, lat: -6.176, lon: 106.827, params: {zone: roadside}}\n"
        "  - {device_id: jkt-water-manggarai, kind: water, city: jakarta, district: Tebet,"
        " lat: -6.208, lon: 106.850, params: {gauge_id: manggarai, river: Ciliwung}}\n",
        encoding="utf-8")
    return path


@pytest.mark.slow
def test_every_kind_arrives_with_tags_fields_and_timestamps(
        mosquitto: LocalService, influxdb: LocalService, database: str, client_id: str,
        tmp_path: Path, ingest_factory: type) -> None:
    ingest = ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                            mqtt__client_id=client_id,
                            registry_file=str(_registry(tmp_path))).start()
    per_kind = 40
    messages = []
    for kind, (payload, _) in KIND_SAMPLES.items():
        for index in range(per_kind):
            messages.append((f"kota/jakarta/{kind}/dev-{kind}-{index % 4}",
                             {**payload, "ts": NOW_S + index, "seq": index}))
    assert publish(mosquitto.port, messages) == len(messages)

    for kind, (_, expected_fields) in KIND_SAMPLES.items():
        wait_until(lambda k=kind: count_points(influxdb, database, k) >= per_kind, 30,
                   f"{per_kind} {kind} points")
        assert count_points(influxdb, database, kind) == per_kind
        rows = influx_query(influxdb, database,
                            f'SELECT * FROM "{kind}" WHERE device = \'dev-{kind}-1\' '
                            "ORDER BY time ASC LIMIT 1")
        columns, values = rows[0]["columns"], rows[0]["values"][0]
        row = dict(zip(columns, values, strict=True))
        assert row["time"] == (NOW_S + 1) * 1000
        assert row["city"] == "jakarta"
        assert row["district"] == "unregistered"  # not in the registry: accepted, tagged
        assert row["kind"] == kind
        assert row["seq"] == 1.0
        for field, value in expected_fields.items():
            assert row[field] == value, (kind, field)
    # Registered devices carry the registry's district and kelurahan.
    publish(mosquitto.port, [("kota/jakarta/air/jkt-air-gambir", {"pm25": 12.0, "ts": NOW_S})])
    wait_until(lambda: count_points(influxdb, database, "air",
                                    "WHERE device = 'jkt-air-gambir'") == 1, 30, "gambir point")
    rows = influx_query(influxdb, database,
                        "SELECT pm25, district, kelurahan FROM air WHERE device = 'jkt-air-gambir'")
    assert rows[0]["values"][0][2:] == ["Gambir", "Gambir"]
    assert ingest.metric("kota_ingest_rejected") == 0


@pytest.mark.slow
def test_repeated_message_creates_one_point(
        mosquitto: LocalService, influxdb: LocalService, database: str, client_id: str,
        tmp_path: Path, ingest_factory: type) -> None:
    ingest = ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                            mqtt__client_id=client_id).start()
    message = ("kota/jakarta/noise/dev-noise-dup", {"laeq_db": 61.0, "ts": NOW_S, "seq": 7})
    assert publish(mosquitto.port, [message] * 5) == 5
    wait_until(lambda: (ingest.metric("kota_ingest_points_written") or 0) >= 5, 30,
               "five writes")
    assert count_points(influxdb, database, "noise") == 1


@pytest.mark.slow
def test_missing_ts_uses_receive_time_and_says_so(
        mosquitto: LocalService, influxdb: LocalService, database: str, client_id: str,
        tmp_path: Path, ingest_factory: type) -> None:
    ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                   mqtt__client_id=client_id).start()
    before_ms = int(time.time() * 1000)
    publish(mosquitto.port, [("kota/jakarta/rain/dev-rain-nots", {"rain_mm": 0.2})])
    wait_until(lambda: count_points(influxdb, database, "rain") == 1, 30, "rain point")
    row = influx_query(influxdb, database, "SELECT rain_mm, ts_from_receive FROM rain")[0]
    timestamp_ms, rain_mm, from_receive = row["values"][0]
    assert from_receive is True
    assert rain_mm == 0.2
    assert before_ms - 1000 <= timestamp_ms <= int(time.time() * 1000)


# A stream with a share of garbage: each bad message must land in dead-letter with its reason.
BAD_MESSAGES = [
    ("kota/jakarta/air/dev-bad-1", b"this is not json", "not_json"),
    ("kota/jakarta/air/dev-bad-2", b'"just a string"', "not_object"),
    ("kota/jakarta/air/dev-bad-3", json.dumps({"pm25": "high"}).encode(), "wrong_type"),
    ("kota/jakarta/air/dev-bad-4", json.dumps({"pm25": 5000}).encode(), "out_of_range"),
    ("kota/jakarta/air/dev-bad-5", json.dumps({"pm25": 1, "ts": 4102444800}).encode(),
     "timestamp_future"),
    ("kota/jakarta/air/dev-bad-6", json.dumps({"pm25": 1, "ts": 5}).encode(),
     "timestamp_too_old"),
    ("kota/jakarta/lava/dev-bad-7", json.dumps({"temp": 1}).encode(), "unknown_kind"),
    ("kota/jakarta/air/dev-bad-8", json.dumps({"pm25": 1, "colour": "grey"}).encode(),
     "unknown_field"),
    ("kota/jakarta/safety/dev-bad-9", json.dumps({"event": "alien"}).encode(), "bad_tag"),
    ("kota/jakarta/air/dev-bad-10", b"{" + b" " * 300_000 + b"}", "oversized"),
    ("kota/jakarta/air/dev-bad-11", b"\xff\xfe\x00garbage", "not_json"),
    ("kota/jakarta/air", json.dumps({"pm25": 1}).encode(), "bad_topic"),
]


@pytest.mark.slow
def test_garbage_goes_to_deadletter_and_the_consumer_keeps_running(
        mosquitto: LocalService, influxdb: LocalService, database: str, client_id: str,
        tmp_path: Path, ingest_factory: type) -> None:
    ingest = ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                            mqtt__client_id=client_id, mqtt__topics='["kota/#"]').start()
    good = [(f"kota/jakarta/air/dev-good-{i % 3}", {"pm25": 10.0 + i, "ts": NOW_S + i})
            for i in range(60)]
    stream: list[tuple[str, bytes | dict[str, float]]] = []
    for index, message in enumerate(good):
        stream.append(message)
        if index % 5 == 0 and index // 5 < len(BAD_MESSAGES):
            topic, payload, _ = BAD_MESSAGES[index // 5]
            stream.append((topic, payload))
    publish(mosquitto.port, stream)
    wait_until(lambda: count_points(influxdb, database, "air") == len(good), 30, "good points")
    wait_until(lambda: ingest.metric("kota_ingest_rejected") == len(BAD_MESSAGES), 30,
               "all rejections counted")
    letters = read_dead_letters(tmp_path / "ingest" / "deadletter")
    assert sorted(str(r["reason"]) for r in letters) == sorted(r for *_, r in BAD_MESSAGES)
    by_topic = {str(r["topic"]): r for r in letters}
    assert by_topic["kota/jakarta/air/dev-bad-1"]["payload"] == "this is not json"
    assert by_topic["kota/jakarta/air/dev-bad-11"]["payload_b64"]  # raw bytes kept
    assert by_topic["kota/jakarta/air/dev-bad-4"]["detail"].startswith("pm25 5000")
    # The dead letters are countable in InfluxDB too, for the platform-health dashboard.
    assert count_points(influxdb, database, "kota_deadletter") == len(BAD_MESSAGES)
    # Still consuming after the garbage.
    publish(mosquitto.port, [("kota/jakarta/air/dev-good-0", {"pm25": 1.0, "ts": NOW_S + 999})])
    wait_until(lambda: count_points(influxdb, database, "air") == len(good) + 1, 30,
               "a point after the garbage")
