"""The MQTT channel: each alert's current state, retained, for siren controllers and boards.

Topic ``<prefix>/<city>/alerts/<hazard>/<rule_id>/<scope>`` (drills:
``<prefix>/<city>/alerts/exercise/<hazard>/<rule_id>/<scope>``, never the public topics), payload
``alert_view_to_json(view)``, QoS 1, retained: a subscriber gets the current state the moment it
subscribes. The resolved state is retained too (a board shows the all-clear) with an MQTT 5
message expiry, so the broker forgets it later. One persistent connection (paho's network
thread); ``send`` waits for the PUBACK, bounded.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import Field

from alerts.channels._contract import Channel, ChannelSettings, DeliveryError
from alerts.model import AlertView, Audience, alert_view_to_json
from kota.settings import MqttConnection

__all__ = ["AlertsMqttConnection", "MqttChannel", "MqttChannelSettings", "alert_topic"]

# Topic levels must not carry a level separator or wildcard (MQTT 5, 4.7.1).
_UNSAFE_LEVEL = re.compile(r"[/+#\x00]")


class AlertsMqttConnection(MqttConnection):
    """The shared connection settings (kota.settings.MqttConnection, TLS included)."""

    client_id: str = Field(default="kota-alerts", min_length=1, max_length=64,
                           description="MQTT client id of the alert publisher")


def _public_only() -> list[Audience]:
    return ["public"]


class MqttChannelSettings(ChannelSettings):
    """Publish every accepted alert version's state, retained, under ``<prefix>/<city>/alerts``."""

    type: Literal["mqtt"] = "mqtt"
    audiences: list[Audience] = Field(
        default_factory=_public_only,
        description="Which alerts it receives: the topics are for boards and sirens, so public "
                    "only unless the broker's ACL keeps operators' topics private")
    broker: AlertsMqttConnection = Field(default_factory=AlertsMqttConnection,
                                         description="The broker connection")
    topic_prefix: str = Field(default="kota", pattern=r"^[A-Za-z0-9_-]{1,32}$",
                              description="First topic level: <prefix>/<city>/alerts/...")
    resolved_expiry_s: int = Field(
        default=86_400, ge=1, le=4_294_967_295,
        description="MQTT 5 message expiry of the retained all-clear: the broker drops it after "
                    "this many seconds (default one day)")
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300,
                                     description="Wait at most this for the broker at a send")
    publish_timeout_s: float = Field(default=10.0, gt=0, le=300,
                                     description="Wait at most this for the PUBACK")


def _level(value: str) -> str:
    return _UNSAFE_LEVEL.sub("_", value) or "_"


def alert_topic(view: AlertView, prefix: str = "kota") -> str:
    """Where this alert's state is retained; drills (CAP Exercise/Test) under ``exercise/``."""
    levels = [prefix, view.city, "alerts"]
    if view.cap_status != "Actual":
        levels.append("exercise")
    levels += [view.hazard, view.rule_id, view.scope]
    return "/".join(levels[:3] + [_level(level) for level in levels[3:]])


class MqttChannel(Channel[MqttChannelSettings]):
    """One paho client, connected at the first send and kept (paho reconnects by itself)."""

    type = "mqtt"
    settings_model = MqttChannelSettings

    def __init__(self, settings: MqttChannelSettings) -> None:
        super().__init__(settings)
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._refused: str | None = None
        self._start_lock = threading.Lock()

    def _on_connect(self, _client: mqtt.Client, _userdata: object, _flags: object,
                    reason: ReasonCode, _properties: object) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        else:
            self._refused = None
            self._connected.set()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: object, _flags: object,
                       _reason: ReasonCode, _properties: object) -> None:
        self._connected.clear()

    def _start(self) -> mqtt.Client:
        with self._start_lock:
            if self._client is not None:
                return self._client
            broker = self.settings.broker
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=broker.client_id,
                                 protocol=mqtt.MQTTv5)
            if broker.username:
                client.username_pw_set(broker.username, broker.resolved_password())
            context = broker.ssl_context()
            if context is not None:
                client.tls_set_context(context)
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            client.reconnect_delay_set(min_delay=1, max_delay=30)
            # connect_async: the network thread connects, and reconnects after a drop, by itself.
            client.connect_async(broker.host, broker.port, keepalive=broker.keepalive_s)
            client.loop_start()
            self._client = client
            return client

    def _publish_blocking(self, topic: str, payload: bytes, key: str,
                          expiry_s: int | None) -> None:
        client = self._start()
        where = self.settings.broker.where()
        if not self._connected.wait(self.settings.connect_timeout_s):
            raise DeliveryError(f"MQTT broker {where} not connected after "
                                f"{self.settings.connect_timeout_s:g} s"
                                + (f": refused ({self._refused})" if self._refused else ""))
        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = [("idempotency-key", key)]   # subscribers may drop repeats
        if expiry_s is not None:
            properties.MessageExpiryInterval = expiry_s
        info = client.publish(topic, payload, qos=1, retain=True, properties=properties)
        try:
            info.wait_for_publish(self.settings.publish_timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise DeliveryError(f"MQTT publish to {topic} at {where}: {exc}") from None
        if not info.is_published():
            raise DeliveryError(f"MQTT broker {where} did not acknowledge {topic} within "
                                f"{self.settings.publish_timeout_s:g} s")

    async def send(self, view: AlertView, idempotency_key: str) -> None:
        # Retained state is idempotent by nature: a repeat publishes the same state again.
        payload = json.dumps(alert_view_to_json(view), ensure_ascii=False, sort_keys=True,
                             separators=(",", ":")).encode("utf-8")
        resolved = view.status == "resolved" or view.msg_type == "Cancel"
        expiry_s = self.settings.resolved_expiry_s if resolved else None
        await asyncio.to_thread(self._publish_blocking,
                                alert_topic(view, self.settings.topic_prefix), payload,
                                idempotency_key, expiry_s)

    def _stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
            self._connected.clear()

    async def close(self) -> None:
        await asyncio.to_thread(self._stop)
