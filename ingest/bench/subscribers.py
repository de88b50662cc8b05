"""Two bare subscribers drain the same QoS 1 backlog: paho-mqtt vs kota.mqtt (docs/decisions.md D1).

Both only count (and acknowledge) messages; what is measured is the MQTT client alone.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.localstack import start_mosquitto
from ingest.bench.mqttload import create_session, drain_bare_subscriber, publish_backlog
from ingest.bench.workload import CITY
from kota.aio import sleep_or_stop
from kota.mqtt import Message, Subscriber

PAHO_ID, KOTA_ID = "bench-floor-paho", "bench-floor-kota"


@dataclass
class SubscriberFigures:
    messages: int
    paho_received: int
    paho_seconds: float
    kota_received: int
    kota_seconds: float

    def rate(self, received: int, seconds: float) -> float:
        return received / seconds if seconds > 0 else 0.0


async def _drain_kota(port: int, expected: int, timeout_s: float) -> tuple[int, float]:
    stop = asyncio.Event()
    received = 0

    def on_messages(generation: int, messages: list[Message]) -> None:
        nonlocal received
        received += len(messages)
        subscriber.ack(generation, [packet_id for packet_id, _, _ in messages])
        if received >= expected:
            stop.set()

    subscriber = Subscriber(host="127.0.0.1", port=port, client_id=KOTA_ID,
                            topics=[f"kota/{CITY}/+/+"], on_messages=on_messages)
    started = time.perf_counter()
    task = asyncio.create_task(subscriber.run(stop))
    await sleep_or_stop(stop, timeout_s)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    return received, elapsed


def compare_subscribers(messages: int, timeout_s: float = 300.0) -> SubscriberFigures:
    """Queue ``messages`` for both sessions, then let each client drain its queue."""
    with tempfile.TemporaryDirectory(prefix="kota-bench-subscribers-") as folder:
        broker = start_mosquitto(Path(folder) / "mosquitto")
        try:
            create_session(broker.port, PAHO_ID)
            create_session(broker.port, KOTA_ID)
            acked, _ = publish_backlog(broker.port, messages, int(time.time() * 1000) - 86_400_000)
            if acked != messages:
                raise RuntimeError(f"the broker acknowledged {acked} of {messages} messages")
            paho_received, paho_seconds = drain_bare_subscriber(broker.port, PAHO_ID, messages,
                                                                timeout_s)
            kota_received, kota_seconds = asyncio.run(_drain_kota(broker.port, messages,
                                                                  timeout_s))
        finally:
            broker.stop()
    return SubscriberFigures(messages, paho_received, paho_seconds, kota_received, kota_seconds)
