"""The MQTT channel against a real Mosquitto: the current state retained for a later subscriber,
the all-clear retained and then expired, drills only under exercise/, a broker that is away.
Each test has its own broker: retained alerts would reach every later subscriber of the
session's broker (a test counting messages on kota/# saw two more)."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from alert_samples import flood_view, resolved

from alerts.channels import DeliveryError
from alerts.channels.mqtt import MqttChannel, MqttChannelSettings, alert_topic
from alerts.model import AlertView
from alerts.outbox import idempotency_key
from devstack.localstack import LocalService, free_port

_cities = itertools.count(1)


@dataclass
class Seen:
    topic: str
    payload: dict[str, Any]
    retained: bool
    properties: Any


def _city() -> str:
    """A city of its own per test: retained messages on the shared broker do not mix."""
    return f"mqtttest{next(_cities)}"


def _channel(port: int, **extra: Any) -> MqttChannel:
    values: dict[str, Any] = {"name": "boards", "audiences": ["public", "operators"],
                              "broker": {"port": port, "client_id": f"alerts-{_city()}"},
                              "connect_timeout_s": 2, "publish_timeout_s": 5, **extra}
    return MqttChannel(MqttChannelSettings.model_validate(values))


def _send(channel: MqttChannel, *views: AlertView) -> None:
    async def go() -> None:
        try:
            for view in views:
                await channel.send(view, idempotency_key(view, channel.name))
        finally:
            await channel.close()

    asyncio.run(go())


def _subscribe(port: int, topic_filter: str, wait_s: float = 0.5) -> list[Seen]:
    """What a subscriber that arrives now gets within ``wait_s`` (retained messages at once)."""
    seen: list[Seen] = []
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"board-{_city()}",
                         protocol=mqtt.MQTTv5)
    client.on_subscribe = lambda *_args: subscribed.set()
    client.on_message = lambda _c, _u, message: seen.append(
        Seen(message.topic, json.loads(message.payload), bool(message.retain),
             message.properties))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.subscribe(topic_filter, qos=1)
        assert subscribed.wait(5), "no SUBACK"
        time.sleep(wait_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return seen


def test_current_state_is_retained_for_a_later_subscriber(own_mosquitto: LocalService) -> None:
    city = _city()
    first = flood_view(city=city)
    update = flood_view(city=city, version=2, level="Siaga 1 (Awas)", grade=4)
    _send(_channel(own_mosquitto.port), first, update)
    (seen,) = _subscribe(own_mosquitto.port, f"kota/{city}/alerts/#")
    assert seen.topic == f"kota/{city}/alerts/flood/flood-siaga/gauge:manggarai"
    assert seen.retained
    assert seen.payload["version"] == 2 and seen.payload["level"] == "Siaga 1 (Awas)"
    assert ("idempotency-key", f"kota-{city}-alert-1-v2-boards") in seen.properties.UserProperty


@pytest.mark.slow
def test_the_all_clear_is_retained_and_then_expires(own_mosquitto: LocalService) -> None:
    city = _city()
    first = flood_view(city=city)
    _send(_channel(own_mosquitto.port, resolved_expiry_s=2), first, resolved(first, 2))
    (seen,) = _subscribe(own_mosquitto.port, f"kota/{city}/alerts/#", wait_s=0.5)
    assert seen.retained and seen.payload["status"] == "resolved"
    assert 0 < seen.properties.MessageExpiryInterval <= 2
    time.sleep(2.5)
    assert _subscribe(own_mosquitto.port, f"kota/{city}/alerts/#", wait_s=0.5) == []


def test_a_drill_goes_only_to_the_exercise_topics(own_mosquitto: LocalService) -> None:
    city = _city()
    drill = flood_view(city=city, cap_status="Exercise")
    _send(_channel(own_mosquitto.port, exercises=True), drill)
    assert _subscribe(own_mosquitto.port, f"kota/{city}/alerts/flood/#", wait_s=0.5) == []
    (seen,) = _subscribe(own_mosquitto.port, f"kota/{city}/alerts/#", wait_s=0.5)
    assert seen.topic == f"kota/{city}/alerts/exercise/flood/flood-siaga/gauge:manggarai"
    assert seen.payload["cap_status"] == "Exercise"


def test_topic_levels_cannot_hold_separators_or_wildcards() -> None:
    view = flood_view(rule_id="a/b", scope="kecamatan:#+")
    assert alert_topic(view) == "kota/jakarta/alerts/flood/a_b/kecamatan:__"


def test_a_broker_that_is_away_is_retryable() -> None:
    started = time.monotonic()
    with pytest.raises(DeliveryError) as failure:
        _send(_channel(free_port(), connect_timeout_s=0.5), flood_view())
    assert failure.value.retryable
    assert "not connected" in str(failure.value)
    assert time.monotonic() - started < 10


def test_public_only_by_default() -> None:
    settings = MqttChannelSettings(name="boards")
    channel = MqttChannel(settings)
    assert channel.accepts(flood_view())
    assert not channel.accepts(flood_view(audience="operators", hazard="safety"))
    assert not channel.accepts(flood_view(cap_status="Exercise"))


@pytest.mark.slow
def test_the_connection_comes_back_after_the_broker_restarts(
        own_mosquitto: LocalService) -> None:
    city = _city()
    channel = _channel(own_mosquitto.port, connect_timeout_s=15)

    async def go() -> None:
        try:
            await channel.send(flood_view(city=city), "k1")
            client = channel._client
            await asyncio.to_thread(own_mosquitto.restart)
            await channel.send(flood_view(city=city, version=2), "k2")
            assert channel._client is client, "the same client, reconnected"
        finally:
            await channel.close()

    asyncio.run(go())
    (seen,) = _subscribe(own_mosquitto.port, f"kota/{city}/alerts/#", wait_s=0.5)
    assert seen.payload["version"] == 2
