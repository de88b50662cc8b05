"""Faults on real services: InfluxDB down, ingest killed, broker restarted, load shared.

Each test publishes a stream of distinct points (device x timestamp) and checks that InfluxDB
ends with exactly that many: a lost message shows as fewer, a duplicate cannot hide because
counts are over distinct series+timestamp, and counters show the path taken (buffer, replay).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kota_testing import count_points, publish, wait_until

from devstack.localstack import LocalService

NOW_S = int(time.time()) - 7200


def _stream(count: int, tag: str = "f") -> list[tuple[str, dict[str, float]]]:
    return [(f"kota/jakarta/air/{tag}-{i % 10}", {"pm25": float(i % 90), "ts": NOW_S + i})
            for i in range(count)]


def _publish_in_background(port: int, messages: list, rate_per_s: float) -> threading.Thread:
    thread = threading.Thread(target=publish, args=(port, messages),
                              kwargs={"rate_per_s": rate_per_s, "timeout_s": 120}, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_influxdb_down_mid_stream_loses_and_doubles_nothing(
        mosquitto: LocalService, own_influxdb: LocalService, client_id: str, tmp_path: Path,
        ingest_factory: type) -> None:
    ingest = ingest_factory(tmp_path / "ingest", mosquitto.port, own_influxdb.port, "kota",
                            mqtt__client_id=client_id).start()
    messages = _stream(3000)
    sender = _publish_in_background(mosquitto.port, messages, rate_per_s=1000)
    wait_until(lambda: count_points(own_influxdb, "kota", "air") > 300, 30, "first points")
    own_influxdb.stop()
    wait_until(lambda: (ingest.metric("kota_ingest_points_buffered") or 0) > 0, 30,
               "ingest to buffer on disk")
    time.sleep(1.0)
    own_influxdb.start()
    sender.join(120)
    wait_until(lambda: count_points(own_influxdb, "kota", "air") >= len(messages), 60,
               "every point after the restart")
    assert count_points(own_influxdb, "kota", "air") == len(messages)
    wait_until(lambda: ingest.metric("kota_ingest_buffer_bytes") == 0, 30, "buffer drained")
    assert ingest.metric("kota_ingest_points_replayed") == ingest.metric(
        "kota_ingest_points_buffered")
    assert ingest.metric("kota_ingest_points_dropped") == 0


@pytest.mark.slow
def test_ingest_killed_mid_stream_loses_nothing(
        mosquitto: LocalService, influxdb: LocalService, database: str, client_id: str,
        tmp_path: Path, ingest_factory: type) -> None:
    first = ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                           mqtt__client_id=client_id).start()
    messages = _stream(4000, "k")
    sender = _publish_in_background(mosquitto.port, messages, rate_per_s=1500)
    wait_until(lambda: count_points(influxdb, database, "air") > 500, 30, "first points")
    first.kill()  # SIGKILL: no chance to flush or acknowledge
    stored_at_kill = count_points(influxdb, database, "air")
    time.sleep(0.5)
    second = ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                            mqtt__client_id=client_id).start()
    sender.join(120)
    wait_until(lambda: count_points(influxdb, database, "air") >= len(messages), 60,
               "every point after the restart")
    assert stored_at_kill < len(messages)
    assert count_points(influxdb, database, "air") == len(messages)
    assert (second.metric("kota_ingest_messages_received") or 0) >= len(messages) - stored_at_kill


@pytest.mark.slow
def test_broker_restart_ingest_recovers_by_itself(
        own_mosquitto: LocalService, influxdb: LocalService, database: str, client_id: str,
        tmp_path: Path, ingest_factory: type) -> None:
    ingest = ingest_factory(tmp_path / "ingest", own_mosquitto.port, influxdb.port, database,
                            mqtt__client_id=client_id).start()
    messages = _stream(2000, "b")
    half = len(messages) // 2
    assert publish(own_mosquitto.port, messages[:half]) == half
    own_mosquitto.restart()
    wait_until(lambda: ingest.metric("kota_ingest_mqtt_connected") == 1.0, 60,
               "ingest to reconnect by itself")
    assert publish(own_mosquitto.port, messages[half:]) == len(messages) - half
    wait_until(lambda: count_points(influxdb, database, "air") >= len(messages), 60,
               "every point")
    assert count_points(influxdb, database, "air") == len(messages)


@pytest.mark.slow
def test_backlog_while_ingest_is_away_is_delivered_on_return(
        mosquitto: LocalService, influxdb: LocalService, database: str, client_id: str,
        tmp_path: Path, ingest_factory: type) -> None:
    ingest = ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                            mqtt__client_id=client_id).start()
    ingest.stop()  # the persistent session stays with the broker
    messages = _stream(5000, "q")
    assert publish(mosquitto.port, messages) == len(messages)
    ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                   mqtt__client_id=client_id).start()
    wait_until(lambda: count_points(influxdb, database, "air") >= len(messages), 60,
               "the backlog")
    assert count_points(influxdb, database, "air") == len(messages)


@pytest.mark.slow
def test_buffer_on_disk_survives_an_ingest_restart(
        mosquitto: LocalService, own_influxdb: LocalService, client_id: str, tmp_path: Path,
        ingest_factory: type) -> None:
    ingest = ingest_factory(tmp_path / "ingest", mosquitto.port, own_influxdb.port, "kota",
                            mqtt__client_id=client_id).start()
    own_influxdb.stop()
    messages = _stream(1000, "d")
    assert publish(mosquitto.port, messages) == len(messages)  # acknowledged: on disk
    wait_until(lambda: ingest.metric("kota_ingest_points_buffered") == len(messages), 30,
               "all points buffered")
    ingest.stop()
    own_influxdb.start()
    restarted = ingest_factory(tmp_path / "ingest", mosquitto.port, own_influxdb.port, "kota",
                               mqtt__client_id=client_id).start()
    wait_until(lambda: count_points(own_influxdb, "kota", "air") >= len(messages), 60,
               "the buffered points")
    assert count_points(own_influxdb, "kota", "air") == len(messages)
    assert restarted.metric("kota_ingest_points_replayed") == len(messages)


@pytest.mark.slow
def test_full_buffer_applies_backpressure_instead_of_dropping(
        mosquitto: LocalService, own_influxdb: LocalService, client_id: str, tmp_path: Path,
        ingest_factory: type) -> None:
    ingest = ingest_factory(tmp_path / "ingest", mosquitto.port, own_influxdb.port, "kota",
                            mqtt__client_id=client_id, buffer__max_mb="0.02",
                            batch_max_points="100").start()
    own_influxdb.stop()
    messages = _stream(2000, "p")
    sender = _publish_in_background(mosquitto.port, messages, rate_per_s=2000)
    wait_until(lambda: (ingest.metric("kota_ingest_pending_messages") or 0) > 0
               and (ingest.metric("kota_ingest_buffer_bytes") or 0) > 0, 30, "a full buffer")
    time.sleep(1.0)
    assert "disk buffer full" in ingest.log()
    own_influxdb.start()
    sender.join(120)
    wait_until(lambda: count_points(own_influxdb, "kota", "air") >= len(messages), 90,
               "every point once InfluxDB is back")
    assert count_points(own_influxdb, "kota", "air") == len(messages)
    assert ingest.metric("kota_ingest_points_dropped") == 0


@pytest.mark.slow
def test_two_workers_share_the_load_without_duplicates(
        mosquitto: LocalService, influxdb: LocalService, database: str, client_id: str,
        tmp_path: Path, ingest_factory: type) -> None:
    workers = [ingest_factory(tmp_path / f"ingest-{n}", mosquitto.port, influxdb.port, database,
                              mqtt__client_id=f"{client_id}-{n}", mqtt__share_group=client_id,
                              instance=str(n)).start()
               for n in (1, 2)]
    messages = _stream(4000, "s")
    assert publish(mosquitto.port, messages) == len(messages)
    wait_until(lambda: count_points(influxdb, database, "air") >= len(messages), 60,
               "every point")
    received = [w.metric("kota_ingest_messages_received") or 0 for w in workers]
    assert count_points(influxdb, database, "air") == len(messages)
    assert sum(received) == len(messages)  # each message went to exactly one worker
    assert min(received) > 0
