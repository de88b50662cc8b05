"""The store-and-forward queue and publisher against a real Mosquitto, ingest and InfluxDB.

What must hold: a reading is on disk before anything sends it; it is deleted only after the
broker's PUBACK; a backlog goes out oldest first as JSON arrays; the queue is bounded and
counts what it drops; the broker going away and coming back, or the agent being SIGKILLed
mid-send, loses nothing and stores nothing twice (counted in InfluxDB through real ingest).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from kota_testing import REPO, count_points, influx_query, wait_until

from agent.config import MqttSection
from agent.publisher import Publisher, group_messages
from agent.queue import ReadingQueue
from devstack.localstack import LocalService

BASE_TS = int(time.time()) - 3600


def _fill(queue: ReadingQueue, device: str, count: int, city: str = "jakarta",
          start: int = 0) -> None:
    for i in range(start, start + count):
        queue.put(f"kota/{city}/air/{device}", device, {"pm25": float(i % 500)}, BASE_TS + i)


class _Subscriber:
    """Records every message on a topic filter, in arrival order."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[tuple[str, Any]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"agent-test-sub-{time.monotonic_ns()}")
        subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, json.loads(m.payload)))
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "subscriber did not subscribe"

    def readings(self) -> list[dict[str, Any]]:
        flat: list[dict[str, Any]] = []
        for _, payload in list(self.messages):
            flat.extend(payload if isinstance(payload, list) else [payload])
        return flat

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publisher(queue: ReadingQueue, port: int, **kwargs: Any) -> tuple[Publisher, threading.Event,
                                                                       threading.Thread]:
    publisher = Publisher(queue, MqttSection(port=port, reconnect_max_s=0.5, keepalive_s=5),
                          client_id=f"agent-test-{time.monotonic_ns()}",
                          status_topic="kota/jakarta/status/t-status", **kwargs)
    stop = threading.Event()
    thread = threading.Thread(target=publisher.run, args=(stop,), daemon=True)
    thread.start()
    return publisher, stop, thread


# -- the queue on its own ------------------------------------------------------------------

def test_seq_and_ts_are_assigned_once_and_survive_a_reopen(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "q.sqlite3")
    assert queue.put("kota/jakarta/air/a", "a", {"pm25": 1.0}, 1764201600.1234) == 0
    assert queue.put("kota/jakarta/air/a", "a", {"pm25": 2.0}, 1764201601.0) == 1
    assert queue.put("kota/jakarta/air/b", "b", {"pm25": 3.0}, 1764201602.0) == 0
    first = queue.after(0, 10)
    queue.close()
    reopened = ReadingQueue(tmp_path / "q.sqlite3")
    assert reopened.depth == 3
    assert reopened.after(0, 10) == first  # byte-for-byte the same payloads
    assert json.loads(first[0].payload) == {"ts": 1764201600.123, "seq": 0, "pm25": 1.0}
    assert reopened.put("kota/jakarta/air/a", "a", {"pm25": 4.0}, 1764201603.0) == 2
    assert reopened.delete([first[0].id, first[0].id]) == 1
    assert reopened.depth == 3
    reopened.close()


def test_full_queue_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "q.sqlite3", max_readings=10)
    _fill(queue, "a", 15)
    assert queue.depth == 10
    assert queue.dropped == 5
    assert queue.dropped_total == 5
    kept = [json.loads(r.payload)["seq"] for r in queue.after(0, 100)]
    assert kept == list(range(5, 15))


def test_rows_of_several_topics_are_grouped_per_topic_in_order(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "q.sqlite3")
    for i in range(6):
        device = "a" if i % 3 else "b"
        queue.put(f"kota/jakarta/air/{device}", device, {"pm25": float(i)}, BASE_TS + i)
    messages = group_messages(queue.after(0, 100))
    assert [topic for topic, _, _ in messages] == ["kota/jakarta/air/b", "kota/jakarta/air/a"]
    assert [len(ids) for _, _, ids in messages] == [2, 4]
    assert [p["pm25"] for p in json.loads(messages[1][1])] == [1.0, 2.0, 4.0, 5.0]


# -- against the real broker ---------------------------------------------------------------

@pytest.mark.slow
def test_backlog_goes_out_oldest_first_as_batches(mosquitto: LocalService,
                                                  tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "q.sqlite3")
    _fill(queue, "order-a", 120)
    _fill(queue, "order-b", 80, start=120)
    subscriber = _Subscriber(mosquitto.port, "kota/jakarta/air/+")
    publisher, stop, thread = _publisher(queue, mosquitto.port, batch_max=25)
    try:
        wait_until(lambda: queue.depth == 0, 20, "the backlog to be acknowledged")
        wait_until(lambda: len(subscriber.readings()) >= 200, 10, "every reading")
    finally:
        stop.set()
        thread.join(10)
        subscriber.close()
    readings = subscriber.readings()
    assert len(readings) == 200
    assert [r["ts"] for r in readings] == sorted(r["ts"] for r in readings)
    assert all(isinstance(payload, list) for _, payload in subscriber.messages)
    # chunks of 25 oldest rows; the chunk that spans both devices is one message per topic
    assert [len(p) for _, p in subscriber.messages] == [25, 25, 25, 25, 20, 5, 25, 25, 25]
    assert publisher.stats.readings_acked == 200


@pytest.mark.slow
def test_broker_away_and_back_loses_and_doubles_nothing(
        own_mosquitto: LocalService, influxdb: LocalService, database: str, tmp_path: Path,
        ingest_factory: type) -> None:
    ingest_factory(tmp_path / "ingest", own_mosquitto.port, influxdb.port, database,
                   mqtt__client_id=f"ingest-{database}").start()
    queue = ReadingQueue(tmp_path / "q.sqlite3")
    publisher, stop, thread = _publisher(queue, own_mosquitto.port, batch_max=50)
    try:
        _fill(queue, "away", 100)
        wait_until(lambda: count_points(influxdb, database, "air") == 100, 30, "first 100")
        own_mosquitto.stop()
        wait_until(lambda: not publisher.stats.connected, 10, "the publisher to notice")
        _fill(queue, "away", 300, start=100)  # readings keep coming while the broker is away
        time.sleep(1.0)
        assert queue.depth == 300  # kept, not sent into the void
        own_mosquitto.start()
        wait_until(lambda: queue.depth == 0, 30, "the backlog to drain")
        wait_until(lambda: count_points(influxdb, database, "air") >= 400, 30, "all points")
        time.sleep(0.5)
        assert count_points(influxdb, database, "air") == 400
        assert publisher.stats.connections >= 2
        assert max(publisher.stats.batch_sizes) > 1  # the backlog went as arrays
    finally:
        stop.set()
        thread.join(10)
        queue.close()


def _agent_config(path: Path, state_dir: Path, port: int, agent_id: str,
                  extra: str = "", mqtt_extra: str = "") -> Path:
    path.write_text(f"""
[agent]
id = "{agent_id}"
city = "jakarta"
state_dir = "{state_dir}"

[mqtt]
port = {port}
keepalive_s = 5
reconnect_max_s = 0.5
{mqtt_extra}

[queue]
batch_max = 10

[heartbeat]
interval_s = 1
{extra}
""")
    return path


def _start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def _paused(broker: LocalService) -> Any:
    """SIGSTOP the broker we started (by its PID): it keeps the TCP connection but reads and
    acknowledges nothing until SIGCONT — a sent, unacknowledged message, deterministically."""
    import contextlib
    import os

    @contextlib.contextmanager
    def pause() -> Any:
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(broker.pid, signal.SIGCONT)

    return pause()


@pytest.mark.slow
def test_rows_are_deleted_only_after_the_brokers_acknowledgement(
        own_mosquitto: LocalService, tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "q.sqlite3")
    publisher, stop, thread = _publisher(queue, own_mosquitto.port, batch_max=10)
    try:
        wait_until(lambda: publisher.stats.connected, 10, "the connection")
        with _paused(own_mosquitto):
            _fill(queue, "ack", 50)
            wait_until(lambda: publisher.stats.messages_sent >= 5, 5, "messages on the wire")
            time.sleep(0.3)
            assert publisher.stats.messages_acked == 0
            assert queue.depth == 50  # sent, but nothing deleted without a PUBACK
        wait_until(lambda: queue.depth == 0, 10, "acknowledgements after the broker resumed")
        assert publisher.stats.readings_acked == 50
    finally:
        stop.set()
        thread.join(10)
        queue.close()


@pytest.mark.slow
def test_agent_killed_mid_send_loses_nothing_and_stores_nothing_twice(
        own_mosquitto: LocalService, influxdb: LocalService, database: str, tmp_path: Path,
        ingest_factory: type) -> None:
    """The agent is SIGKILLed while messages it sent wait, unacknowledged, in a paused
    broker's socket. The broker then delivers them, and the restarted agent sends the same
    rows again (they were never acknowledged): InfluxDB must still hold exactly one point per
    reading, and every reading queued before the kill — backlog and live — must arrive."""
    broker = own_mosquitto
    agent_id = f"kill-{database}"
    ingest_factory(tmp_path / "ingest", broker.port, influxdb.port, database,
                   mqtt__client_id=f"ingest-{database}").start()
    state = tmp_path / "state"
    backlog = ReadingQueue(state / "queue.sqlite3")
    _fill(backlog, f"{agent_id}-air", 1500)
    backlog.close()
    will = _Subscriber(broker.port, f"kota/jakarta/status/{agent_id}-status")
    sensor = ('[[sensor]]\ndriver = "command"\nkind = "air"\ndevice_id = "' + agent_id
              + '-live"\ncommand = ["/bin/echo", "{\\"pm10\\": 20}"]\ninterval_s = 0.05\n')
    first = _agent_config(tmp_path / "first.toml", state, broker.port, agent_id, sensor,
                          "max_messages_per_s = 40")
    log = tmp_path / "agent.log"
    where_backlog = f"WHERE \"device\" = '{agent_id}-air'"
    where_live = f"WHERE \"device\" = '{agent_id}-live'"
    process = _start_agent(first, log)
    try:
        wait_until(lambda: count_points(influxdb, database, "air", where_backlog) > 100, 30,
                   f"the first batches (log: {log})")
        with _paused(broker):
            time.sleep(0.6)  # ~24 more messages leave the agent and wait in the socket
            process.kill()  # SIGKILL: no chance to finish anything
            process.wait(5)
        with sqlite3.connect(state / "queue.sqlite3") as db:
            still_queued = db.execute("SELECT count(*) FROM outbox WHERE topic LIKE ?",
                                      (f"%/{agent_id}-air",)).fetchone()[0]
        time.sleep(1.5)  # the broker delivers what was in its socket; ingest stores it
        stored_at_kill = count_points(influxdb, database, "air", where_backlog)
        assert stored_at_kill < 1500, "the kill came too late to be mid-send"
        # delivered but never acknowledged to the agent: these will be sent a second time
        assert stored_at_kill + still_queued > 1500
        wait_until(lambda: any(p == {"online": False} for p in will.readings()), 10,
                   "the Last Will")

        second = _agent_config(tmp_path / "second.toml", state, broker.port, agent_id)
        process = _start_agent(second, log)
        wait_until(lambda: count_points(influxdb, database, "air", where_backlog) >= 1500, 30,
                   "the rest of the backlog after the restart")
        with sqlite3.connect(state / "queue.sqlite3") as db:
            live_queued = db.execute("SELECT next FROM seq WHERE device = ?",
                                     (f"{agent_id}-live",)).fetchone()[0]
        assert live_queued > 5
        wait_until(lambda: count_points(influxdb, database, "air", where_live) >= live_queued,
                   30, "every live reading queued before the kill")
        wait_until(lambda: _air_rows(state) == 0, 10, "the queue to empty")
        time.sleep(1.0)  # anything doubled would have shown up by now
        assert count_points(influxdb, database, "air", where_backlog) == 1500
        assert count_points(influxdb, database, "air", where_live) == live_queued
        seqs = influx_query(influxdb, database,
                            f'SELECT count(distinct("seq")) FROM "air" {where_backlog}')
        assert seqs[0]["values"][0][1] == 1500
    finally:
        assert _stop(process) == 0, log.read_text()
        will.close()
    # the clean stop says goodbye with a timestamp (the will has none)
    assert any(p.get("online") is False and "ts" in p for p in will.readings())
    # heartbeats went through the queue like any reading: online true, queue figures
    beats = [p for p in will.readings() if p.get("online") is True]
    assert beats and all({"queue_depth", "dropped", "firmware", "clock_synced", "seq"}
                         <= set(p) for p in beats)


def _air_rows(state: Path) -> int:
    with sqlite3.connect(state / "queue.sqlite3") as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE topic LIKE '%/air/%'"
                              ).fetchone()[0])
