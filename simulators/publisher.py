"""The thin MQTT edge: publish bytes with paho-mqtt 2.x, bounded in flight, count and time.

The generator never sees paho; this module never computes a reading.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from simulators.settings import MqttPublishSettings

__all__ = ["MqttPublisher", "PublishError"]

_POLL_S = 0.05


class PublishError(RuntimeError):
    """The broker cannot be reached or refused us; the message says which and where."""


class MqttPublisher:
    """Connect, ``publish(topic, payload)`` many times, ``close()``. Usable as a context manager.

    At most ``max_inflight`` messages wait for their acknowledgement; ``publish`` blocks (each
    wait bounded by ``drain_timeout_s``) rather than buffering without limit.
    """

    def __init__(self, settings: MqttPublishSettings) -> None:
        self.settings = settings
        self.acknowledged = 0
        self.failed = 0
        self._pending: deque[mqtt.MQTTMessageInfo] = deque()
        self._connected = threading.Event()
        self._refused: str | None = None
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                   client_id=settings.client_id, protocol=mqtt.MQTTv5)
        self._client.max_inflight_messages_set(settings.max_inflight)
        self._client.max_queued_messages_set(0)
        if settings.username:
            self._client.username_pw_set(settings.username, settings.resolved_password())
        context = settings.ssl_context()
        if context is not None:
            self._client.tls_set_context(context)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect

    def _on_connect(self, _client: mqtt.Client, _userdata: object, _flags: object,
                    reason: ReasonCode, _properties: object) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        else:
            self._connected.set()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: object, _flags: object,
                       _reason: ReasonCode, _properties: object) -> None:
        self._connected.clear()

    def connect(self) -> MqttPublisher:
        where = self.settings.where()
        try:
            self._client.connect(self.settings.host, self.settings.port,
                                 keepalive=self.settings.keepalive_s)
        except OSError as exc:  # ssl.SSLError included: a certificate the broker refuses
            raise PublishError(f"cannot connect to MQTT broker {where}: {exc}") from None
        self._client.loop_start()
        if not self._connected.wait(self.settings.connect_timeout_s):
            self.close()
            raise PublishError(f"MQTT broker {where} did not accept the connection within "
                               f"{self.settings.connect_timeout_s:g} s"
                               + (f": {self._refused}" if self._refused else ""))
        return self

    def publish(self, topic: str, payload: bytes) -> None:
        self._pending.append(self._client.publish(topic, payload, qos=self.settings.qos))
        self._settle(block_above=self.settings.max_inflight)

    def _settle(self, block_above: int) -> None:
        """Count finished publishes; wait for the oldest while more than ``block_above`` wait."""
        while self._pending:
            info = self._pending[0]
            if _waiting(info):
                if len(self._pending) <= block_above:
                    return
                deadline = time.monotonic() + self.settings.drain_timeout_s
                while _waiting(info) and time.monotonic() < deadline:
                    _wait(info, _POLL_S)
            self._pending.popleft()
            if info.is_published():
                self.acknowledged += 1
            else:
                self.failed += 1

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait (bounded) until every message is acknowledged or given up."""
        deadline = time.monotonic() + (self.settings.drain_timeout_s if timeout_s is None
                                       else timeout_s)
        while self._pending and time.monotonic() < deadline:
            _wait(self._pending[0], _POLL_S)
            self._settle(block_above=len(self._pending))
        self.failed += len(self._pending)
        self._pending.clear()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> MqttPublisher:
        return self.connect()

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _waiting(info: mqtt.MQTTMessageInfo) -> bool:
    """Not yet acknowledged, and still able to be (queued, or waiting for a reconnect)."""
    return not info.is_published() and info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)


def _wait(info: mqtt.MQTTMessageInfo, timeout_s: float) -> None:
    if info.rc == mqtt.MQTT_ERR_SUCCESS:
        try:
            info.wait_for_publish(timeout_s)
        except (ValueError, RuntimeError):
            return
    else:
        time.sleep(timeout_s)  # queued while disconnected: paho sends it after reconnecting
