"""The only module that talks MQTT: drains the queue to the broker, oldest first.

One thread runs ``Publisher.run``. Each connection gets a fresh paho client (so no message is
retried behind our back by a client object that outlived its connection); within it the thread
alternates ``client.loop()`` with sending: the oldest rows not yet sent on this connection,
grouped per topic into one message (a single reading as an object, several as a JSON array:
the batch form of docs/protocol.md), published at QoS 1. A row is deleted from the queue only
in ``on_publish`` for the message that carried it, i.e. after the broker's PUBACK. When the
connection drops, everything unacknowledged is simply sent again on the next one, with the
same ``seq`` and ``ts`` — the platform stores it once.

The Last Will is ``{"online": false}`` on the agent's status topic (QoS 1, not retained:
ingest keeps a persistent session, and a retained will would be stored again on every
re-subscribe). A clean stop publishes the same, with ``ts``, before disconnecting.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from agent.config import MqttSection
from agent.queue import QueuedRow, ReadingQueue
from kota.backoff import Backoff

__all__ = ["Publisher", "PublisherStats", "group_messages"]

log = logging.getLogger("kota_agent.publisher")

OFFLINE = json.dumps({"online": False})


@dataclass
class PublisherStats:
    connected: bool = False
    connections: int = 0
    messages_sent: int = 0
    messages_acked: int = 0
    readings_acked: int = 0
    last_error: str = ""
    batch_sizes: list[int] = field(default_factory=list)  # last 100, for tests and logs


def group_messages(rows: list[QueuedRow]) -> list[tuple[str, str, list[int]]]:
    """Rows (oldest first) → (topic, payload, row ids) per topic, in order of first row."""
    groups: dict[str, list[QueuedRow]] = {}
    for row in rows:
        groups.setdefault(row.topic, []).append(row)
    messages = []
    for topic, members in groups.items():
        if len(members) == 1:
            payload = members[0].payload
        else:
            payload = "[" + ",".join(m.payload for m in members) + "]"
        messages.append((topic, payload, [m.id for m in members]))
    return messages


class Publisher:
    def __init__(self, queue: ReadingQueue, mqtt_config: MqttSection, *, client_id: str,
                 status_topic: str, batch_max: int = 100, max_inflight: int = 10,
                 clock: Callable[[], float] = time.time, connack_timeout_s: float = 10.0) -> None:
        self.queue = queue
        self.connack_timeout_s = connack_timeout_s
        self.config = mqtt_config
        self.client_id = client_id
        self.status_topic = status_topic
        self.batch_max = batch_max
        self.max_inflight = max_inflight
        self.clock = clock
        self.stats = PublisherStats()
        self._acked: list[tuple[int, bool]] = []
        self._connected = False
        self._refused: str | None = None
        self._warned_plain = False

    # -- paho callbacks (run in our own thread, inside client.loop) -------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
        else:
            self._connected = True

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason_code: Any, properties: Any) -> None:
        self._connected = False

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int,
                    reason_code: Any, properties: Any) -> None:
        self._acked.append((mid, not reason_code.is_failure))

    # -- the loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Connect, drain, reconnect with jittered exponential backoff, until ``stop``."""
        cap_s = self.config.reconnect_max_s
        backoff = Backoff(min(0.5, cap_s), cap_s, jitter=0.5)
        while not stop.is_set():
            started = time.monotonic()
            try:
                self._session(stop)
            except (OSError, ssl.SSLError, ValueError) as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("MQTT %s:%s: %s", self.config.host, self.config.port,
                            self.stats.last_error)
            except Exception as exc:  # e.g. sqlite3.Error from the queue: retry, never end
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("publisher session failed")
            self.stats.connected = False
            if stop.is_set():
                break
            if time.monotonic() - started > 30:
                backoff.reset()  # the connection had worked for a while: retry soon
            stop.wait(backoff.next_delay())

    def _client(self) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv311, clean_session=True)
        client.max_inflight_messages_set(self.max_inflight)
        client.max_queued_messages_set(0)
        if self.config.username is not None:
            password = self.config.resolved_password()
            if password is not None and self.config.tls is None and not self._warned_plain:
                self._warned_plain = True
                log.warning("MQTT %s:%s: the password is sent in clear text (plain MQTT); "
                            "add [mqtt.tls] and use port 8883", self.config.host,
                            self.config.port)
            client.username_pw_set(self.config.username, password)
        if self.config.tls is not None:
            tls = self.config.tls
            client.tls_set(ca_certs=str(tls.ca_file) if tls.ca_file else None,
                           certfile=str(tls.cert_file) if tls.cert_file else None,
                           keyfile=str(tls.key_file) if tls.key_file else None)
        client.will_set(self.status_topic, OFFLINE, qos=1, retain=False)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _session(self, stop: threading.Event) -> None:
        self._connected, self._refused, self._acked = False, None, []
        client = self._client()
        client.connect(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        try:
            deadline = time.monotonic() + self.connack_timeout_s
            while not self._connected:
                if stop.is_set():
                    return
                if time.monotonic() > deadline:  # a broker that accepts TCP but never answers
                    raise TimeoutError(f"no CONNACK within {self.connack_timeout_s:g} s")
                rc = client.loop(0.1)
                if self._refused is not None:  # the broker closes right after a refusal
                    raise ValueError(f"broker refused the connection: {self._refused}")
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    raise OSError("connection lost before CONNACK")
            self.stats.connected = True
            self.stats.connections += 1
            log.info("connected to %s:%s as %s", self.config.host, self.config.port,
                     self.client_id)
            self._drain(client, stop)
        finally:
            if self._connected and stop.is_set():
                self._say_goodbye(client)
            client.disconnect()

    def _drain(self, client: mqtt.Client, stop: threading.Event) -> None:
        inflight: dict[int, list[int]] = {}
        last_sent_id = 0
        rate = self.config.max_messages_per_s
        next_send = time.monotonic()
        while self._connected:
            if stop.is_set():
                self._finish_inflight(client, inflight, timeout_s=2.0)
                return
            room = self.max_inflight - len(inflight)
            if room > 0 and (not rate or time.monotonic() >= next_send):
                rows = self.queue.after(last_sent_id, self.batch_max)
                # All groups of one chunk go together (rows of several topics interleave),
                # so `last_sent_id` never passes a row that was not sent.
                messages = group_messages(rows)
                for topic, payload, ids in messages:
                    info = client.publish(topic, payload, qos=1)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        raise OSError(f"publish failed: {mqtt.error_string(info.rc)}")
                    inflight[info.mid] = ids
                    last_sent_id = max(last_sent_id, *ids)
                    self.stats.messages_sent += 1
                    self.stats.batch_sizes = [*self.stats.batch_sizes[-99:], len(ids)]
                if rate and messages:
                    next_send = max(next_send, time.monotonic() - 1) + len(messages) / rate
            # Waiting for nothing: a new reading is picked up within 0.2 s.
            if client.loop(0.01 if inflight else 0.2) != mqtt.MQTT_ERR_SUCCESS:
                return
            self._settle(inflight)

    def _settle(self, inflight: dict[int, list[int]]) -> None:
        acked, self._acked = self._acked, []
        for mid, ok in acked:
            ids = inflight.pop(mid, None)
            if ids is None:
                continue
            if ok:
                self.queue.delete(ids)
                self.stats.messages_acked += 1
                self.stats.readings_acked += len(ids)
            else:
                log.error("broker refused a message of %d readings; it stays queued", len(ids))

    def _finish_inflight(self, client: mqtt.Client, inflight: dict[int, list[int]],
                         timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while inflight and self._connected and time.monotonic() < deadline:
            client.loop(0.05)
            self._settle(inflight)

    def _say_goodbye(self, client: mqtt.Client) -> None:
        payload = json.dumps({"ts": round(self.clock(), 3), "online": False})
        info = client.publish(self.status_topic, payload, qos=1)
        deadline = time.monotonic() + 2.0
        while not info.is_published() and self._connected and time.monotonic() < deadline:
            client.loop(0.05)
