"""MQTT load for the benchmark (paho-mqtt 2.x): a fast backlog publisher, paced live
publishers, and the floor: a bare QoS 1 subscriber that only counts.

Publishers run in their own processes so that the benchmark process (which polls InfluxDB)
never holds them back.

Every wait here is bounded by a deadline; clients connect to loopback only.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.bench.workload import CITY, KINDS, backlog_messages, live_message

__all__ = ["LivePublisher", "create_session", "delete_session", "drain_bare_subscriber",
           "publish_backlog"]

HOST = "127.0.0.1"
# QoS 1 messages a publisher keeps unacknowledged, below the broker's receive maximum (65,535).
# paho's own limit stays off (0): with a limit, each PUBACK scans every unacknowledged message
# (Client._update_inflight), which made a 200,000-message backlog take minutes.
WINDOW = 10_000


def _client(client_id: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    return client


class _AckCounter:
    """paho ``on_publish``: counts acknowledged messages (the loop thread writes, we read)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _c: mqtt.Client, _u: object, _mid: int, _rc: object, _p: object) -> None:
        self.count += 1


def _publisher(client_id: str, port: int) -> tuple[mqtt.Client, _AckCounter]:
    """A connected QoS 1 publisher with its network loop running, and its PUBACK count."""
    client = _client(client_id)
    acks = _AckCounter()
    client.on_publish = acks
    client.connect(HOST, port, keepalive=30)
    client.loop_start()
    return client, acks


def _session_properties(expiry_s: int) -> Properties:
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = expiry_s
    return properties


# -- backlog ---------------------------------------------------------------------------------
def _publish_part(port: int, part: int, parts: int, count: int, base_ms: int,
                  timeout_s: float) -> int:
    """Publish messages part, part + parts, ... of the backlog; return how many were acked."""
    client, acks = _publisher(f"kota-bench-publisher-{part}", port)
    sent = 0
    deadline = time.monotonic() + timeout_s
    try:
        for topic, payload in backlog_messages(count, base_ms, part, parts):
            client.publish(topic, payload, qos=1)
            sent += 1
            if sent % 500 == 0:
                while sent - acks.count > WINDOW and time.monotonic() < deadline:
                    time.sleep(0.001)
            if time.monotonic() > deadline:
                break
        while acks.count < sent and time.monotonic() < deadline:
            time.sleep(0.01)
        return acks.count
    finally:
        client.disconnect()
        client.loop_stop()


def publish_backlog(port: int, count: int, base_ms: int, publishers: int = 2,
                    timeout_s: float = 600.0) -> tuple[int, float]:
    """Publish ``count`` backlog messages at QoS 1 from ``publishers`` processes.

    Returns (messages acknowledged by the broker, seconds taken).
    """
    started = time.perf_counter()
    if publishers <= 1:
        acked = _publish_part(port, 0, 1, count, base_ms, timeout_s)
        return acked, time.perf_counter() - started
    context = multiprocessing.get_context("spawn")
    with context.Pool(publishers) as pool:
        results = [pool.apply_async(_publish_part, (port, part, publishers, count, base_ms,
                                                    timeout_s))
                   for part in range(publishers)]
        acked = sum(result.get(timeout_s + 30) for result in results)
    return acked, time.perf_counter() - started


# -- floor: a bare subscriber ----------------------------------------------------------------
def delete_session(port: int, client_id: str, timeout_s: float = 10.0) -> None:
    """End ``client_id``'s persistent session and its queue (clean start, expiry 0)."""
    client = _client(client_id)
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect(HOST, port, keepalive=30, clean_start=True,
                   properties=_session_properties(0))
    client.loop_start()
    try:
        if not connected.wait(timeout_s):
            raise TimeoutError(f"no CONNACK for {client_id} within {timeout_s:.0f} s")
    finally:
        client.disconnect()
        client.loop_stop()


def create_session(port: int, client_id: str, topic: str = f"kota/{CITY}/+/+",
                   expiry_s: int = 3600, timeout_s: float = 10.0) -> None:
    """Create a persistent session subscribed at QoS 1, then leave it for the broker to fill."""
    client = _client(client_id)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect(HOST, port, keepalive=30, clean_start=True,
                   properties=_session_properties(expiry_s))
    client.loop_start()
    try:
        client.subscribe(topic, qos=1)
        if not subscribed.wait(timeout_s):
            raise TimeoutError(f"no SUBACK for {client_id} within {timeout_s:.0f} s")
    finally:
        client.disconnect()
        client.loop_stop()


def drain_bare_subscriber(port: int, client_id: str, expected: int, timeout_s: float,
                          expiry_s: int = 3600) -> tuple[int, float]:
    """Resume ``client_id``'s session and count messages (paho acks each) until ``expected``.

    Returns (messages received, seconds from CONNECT to the last message).
    """
    client = _client(client_id)
    received = 0
    last_message = 0.0

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        nonlocal received, last_message
        received += 1
        last_message = time.perf_counter()

    client.on_message = on_message
    started = time.perf_counter()
    client.connect(HOST, port, keepalive=30, clean_start=False,
                   properties=_session_properties(expiry_s))
    deadline = time.monotonic() + timeout_s
    try:
        while received < expected and time.monotonic() < deadline:
            client.loop(timeout=0.05)
        # Let the PUBACKs of the last messages out before disconnecting.
        for _ in range(5):
            client.loop(timeout=0.01)
    finally:
        client.disconnect()
    return received, (last_message or time.perf_counter()) - started


# -- live: paced publishers, one process per kind ----------------------------------------------
def _live_part(port: int, kind_index: int, total: int, seconds: float, tick_s: float,
               start_at: float, records: Any) -> None:
    """Publish ``total`` messages of kind ``kind_index`` evenly over ``seconds`` from
    ``start_at`` (epoch s).

    After every tick, puts (kind_index, [publish ms of each latency probe, ...]) on
    ``records``; at the end
    ("done", kind_index, sent, acked, elapsed_s, behind_max, cpu_s).
    """
    client, acks = _publisher(f"kota-bench-live-{kind_index}", port)
    rng = random.Random(100 + kind_index)
    rate = total / seconds
    sent = behind_max = 0
    time.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    try:
        while sent < total:
            elapsed = time.perf_counter() - started
            if elapsed > seconds + 5:  # hopelessly behind: stop rather than run on
                break
            due = min(total, int(elapsed * rate) + 1)
            behind_max = max(behind_max, due - sent)
            if sent - acks.count > WINDOW:  # the broker stopped acknowledging: wait
                time.sleep(tick_s)
                continue
            batch: list[int] = []
            while sent < due:
                now_ms = time.time_ns() // 1_000_000
                topic, payload, probe = live_message(kind_index, sent, now_ms, rng)
                client.publish(topic, payload, qos=1)
                if probe:
                    batch.append(now_ms)
                sent += 1
            if batch:
                records.put((kind_index, batch))
            next_tick = started + (int(elapsed / tick_s) + 1) * tick_s
            time.sleep(max(0.0, next_tick - time.perf_counter()))
        elapsed = time.perf_counter() - started
        deadline = time.monotonic() + 30
        while acks.count < sent and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        client.disconnect()
        client.loop_stop()
    records.put(("done", kind_index, sent, acks.count, elapsed, behind_max, time.process_time()))


@dataclass
class LivePublisher:
    """Publish ``rate`` msg/s in total for ``seconds``: one process per kind, 10 ms ticks.

    ``collect()`` moves the publish times of the latency probes (ingest.bench.workload) that the
    processes report into ``probe_ms[k]`` (epoch ms, also the payload's ``ts``, in publish
    order: one process per kind keeps each list ordered).
    """

    port: int
    rate: float
    seconds: float
    tick_s: float = 0.01
    probe_ms: list[list[int]] = field(default_factory=lambda: [[] for _ in KINDS])
    finished: dict[int, tuple[int, int, float, int, float]] = field(default_factory=dict)
    _processes: list[Any] = field(default_factory=list)
    _records: Any = None

    def start(self) -> LivePublisher:
        context = multiprocessing.get_context("spawn")
        self._records = context.Queue()
        start_at = time.time() + 1.5  # spawned interpreters need a moment to import
        total, kinds = round(self.rate * self.seconds), len(KINDS)
        for kind_index in range(kinds):
            share = total // kinds + (1 if kind_index < total % kinds else 0)
            process = context.Process(
                target=_live_part, name=f"kota-bench-live-{kind_index}",
                args=(self.port, kind_index, share, self.seconds, self.tick_s, start_at,
                      self._records))
            process.start()
            self._processes.append(process)
        return self

    def collect(self) -> None:
        while True:
            try:
                record = self._records.get_nowait()
            except queue.Empty:
                return
            if record[0] == "done":
                self.finished[record[1]] = tuple(record[2:])
            else:
                self.probe_ms[record[0]].extend(record[1])

    @property
    def running(self) -> bool:
        self.collect()
        return len(self.finished) < len(self._processes) and any(
            process.is_alive() for process in self._processes)

    def finish(self, timeout_s: float = 40.0) -> None:
        """Wait (bounded) for every publisher to report; terminate any that do not."""
        deadline = time.monotonic() + self.seconds + timeout_s
        while self.running and time.monotonic() < deadline:
            time.sleep(0.05)
        for process in self._processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(5)
        self.collect()

    @property
    def sent(self) -> int:
        return sum(done[0] for done in self.finished.values())

    @property
    def acked(self) -> int:
        return sum(done[1] for done in self.finished.values())

    @property
    def elapsed_s(self) -> float:
        return max((done[2] for done in self.finished.values()), default=0.0)

    @property
    def behind_max(self) -> int:
        return sum(done[3] for done in self.finished.values())

    @property
    def cpu_s(self) -> float:
        return sum(done[4] for done in self.finished.values())
