"""Regression tests for defects found in review (each failed before its fix)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from kota_testing import count_points, influx_query, publish, wait_until

from devstack.localstack import LocalService
from ingest.buffer import DiskBuffer
from ingest.deadletter import read_dead_letters

NOW_S = int(time.time()) - 3600


@pytest.mark.slow
def test_readings_without_ts_arriving_together_stay_distinct(
        mosquitto: LocalService, influxdb: LocalService, database: str, client_id: str,
        tmp_path: Path, ingest_factory: type) -> None:
    ingest = ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                            mqtt__client_id=client_id).start()
    ingest.stop()  # a backlog builds up; on return it arrives in a few TCP reads
    messages = [("kota/jakarta/noise/nots-1", {"laeq_db": 50.0 + i % 20}) for i in range(50)]
    messages.append(("kota/jakarta/noise/nots-1", [{"laeq_db": 61.0}, {"laeq_db": 62.0},
                                                    {"laeq_db": 63.0}]))
    assert publish(mosquitto.port, messages) == len(messages)
    ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                   mqtt__client_id=client_id).start()
    wait_until(lambda: count_points(influxdb, database, "noise") >= 53, 30, "53 points")
    time.sleep(0.5)
    assert count_points(influxdb, database, "noise") == 53


@pytest.mark.slow
def test_a_batch_influxdb_refuses_is_kept_whole(
        mosquitto: LocalService, influxdb: LocalService, database: str, client_id: str,
        tmp_path: Path, ingest_factory: type) -> None:
    # Another writer made pm25 a string in this shard: every float pm25 is refused (HTTP 400).
    response = httpx.post(f"http://127.0.0.1:{influxdb.port}/write",
                          params={"db": database, "precision": "s"},
                          content=f'air,device=other pm25="high" {NOW_S}'.encode())
    assert response.status_code == 204
    ingest = ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                            mqtt__client_id=client_id).start()
    messages = [(f"kota/jakarta/air/refused-{i % 7}", {"pm25": 10.0, "pm10": 20.0,
                                                      "ts": NOW_S + i})
                for i in range(3000)]
    assert publish(mosquitto.port, messages) == len(messages)
    wait_until(lambda: (ingest.metric("kota_ingest_influx_refused") or 0) >= len(messages), 60,
               "every point refused")
    refused = [r for r in read_dead_letters(tmp_path / "ingest" / "deadletter")
               if r["reason"] == "influx_refused"]
    kept_lines = sum(str(r["payload"]).count("\n") + 1 for r in refused)
    assert kept_lines == len(messages)
    assert not any(r.get("truncated") for r in refused)


@pytest.mark.slow
def test_an_array_of_garbage_is_stored_once_and_counted_once(
        mosquitto: LocalService, influxdb: LocalService, database: str, client_id: str,
        tmp_path: Path, ingest_factory: type) -> None:
    ingest = ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                            mqtt__client_id=client_id).start()
    elements = [{"pm25": "x" * 200} for _ in range(1000)]
    payload = json.dumps(elements)
    assert publish(mosquitto.port, [("kota/jakarta/air/garbage-1", payload)]) == 1
    wait_until(lambda: ingest.metric("kota_ingest_rejected") == 1000, 30, "1000 rejections")
    records = read_dead_letters(tmp_path / "ingest" / "deadletter")
    assert len(records) == 1000
    assert sum(1 for r in records if "payload" in r) == 1  # the payload once, not 1000 times
    folder_bytes = sum(p.stat().st_size for p in (tmp_path / "ingest" / "deadletter").iterdir())
    assert folder_bytes < 3 * len(payload)
    wait_until(lambda: count_points(influxdb, database, "kota_deadletter") == 1, 30,
               "one dead-letter point")
    rows = influx_query(influxdb, database, "SELECT count FROM kota_deadletter")
    assert rows[0]["values"][0][1] == 1000.0


def test_buffer_remove_after_drop_oldest_leaves_the_other_batches(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path, max_bytes=250, drop_oldest=True)
    assert buffer.append(b"a" * 100, 1) and buffer.append(b"b" * 100, 1)
    replaying = buffer.oldest()
    assert replaying is not None
    assert buffer.append(b"c" * 100, 1)  # drops the batch being replayed
    buffer.remove(replaying)  # must not remove the next, never-replayed batch
    assert len(buffer) == 2
    assert buffer.dropped_lines == 1
    assert buffer.size_bytes == 200
