"""A QoS 1 MQTT 5 subscriber with manual acknowledgement, persistent session and reconnect.

Why not paho or aiomqtt: ingest must acknowledge a message only once its point is stored, and
must sustain tens of thousands of messages per second on one core. See docs/decisions.md for the
measurements. Messages are handed over in bursts (one call per TCP read), acknowledged in bulk.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from kota.aio import sleep_or_stop
from kota.backoff import Backoff
from kota.mqtt._packets import (
    CONNACK,
    DISCONNECT,
    DISCONNECT_PACKET,
    PINGREQ_PACKET,
    PINGRESP,
    SUBACK,
    Message,
    ProtocolError,
    connect_packet,
    decode_connack,
    puback_packets,
    split_packets,
    subscribe_packet,
)

__all__ = ["Backoff", "ConnectRefused", "Subscriber"]

log = logging.getLogger("kota.mqtt")

OnMessages = Callable[[int, list[Message]], None]


class ConnectRefused(Exception):
    """The broker answered CONNACK with a failure reason."""


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: Subscriber, generation: int) -> None:
        self.owner, self.generation = owner, generation
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[bytes] = loop.create_future()
        self.suback: asyncio.Future[bytes] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.last_received = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.last_received = time.monotonic()
        messages: list[Message] = []
        control: list[tuple[int, int, bytes]] = []
        try:
            consumed = split_packets(self.buffer, messages, control)
        except ProtocolError as exc:
            log.error("broker sent a malformed packet (%s); reconnecting", exc)
            if self.transport:
                self.transport.close()
            return
        del self.buffer[:consumed]
        if messages:
            self.owner.on_messages(self.generation, messages)
        for packet_type, _flags, body in control:
            if packet_type == CONNACK and not self.connack.done():
                self.connack.set_result(body)
            elif packet_type == SUBACK and not self.suback.done():
                self.suback.set_result(body)
            elif packet_type == DISCONNECT:
                reason = body[0] if body else 0
                log.warning("broker sent DISCONNECT (reason 0x%02x); reconnecting", reason)
            elif packet_type != PINGRESP:
                log.debug("ignoring MQTT packet type %d", packet_type)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.connack, self.suback):
            if not future.done():
                future.set_exception(ConnectionError("connection closed by broker"))
                future.exception()  # whoever awaits it still gets it; nobody else must
        if not self.closed.done():
            self.closed.set_result(None)


class Subscriber:
    """Subscribe at QoS 1 and keep subscribed until ``stop`` is set.

    ``on_messages(generation, messages)`` receives bursts of (packet_id, topic, payload).
    Acknowledge with ``ack(generation, packet_ids)``; acknowledgements for an older connection are
    dropped, because packet ids start over and the broker redelivers what was not acknowledged.
    """

    def __init__(self, *, host: str, port: int, client_id: str, topics: list[str],
                 on_messages: OnMessages, username: str | None = None,
                 password: str | None = None, tls: ssl.SSLContext | None = None,
                 keepalive_s: int = 30, session_expiry_s: int = 7 * 24 * 3600,
                 clean_start: bool = False, receive_maximum: int = 65535,
                 connect_timeout_s: float = 10.0,
                 backoff: Backoff | None = None,
                 on_state: Callable[[bool], None] | None = None) -> None:
        self.host, self.port, self.client_id, self.topics = host, port, client_id, topics
        self.on_messages = on_messages
        self.username, self.password, self.tls = username, password, tls
        self.keepalive_s, self.session_expiry_s = keepalive_s, session_expiry_s
        self.clean_start, self.receive_maximum = clean_start, receive_maximum
        self.connect_timeout_s = connect_timeout_s
        self.backoff = backoff or Backoff()
        self.on_state = on_state
        self.generation = 0
        self._protocol: _Protocol | None = None
        self.connected = False
        self.connects = 0
        self.paused = False

    def ack(self, generation: int, packet_ids: list[int]) -> bool:
        protocol = self._protocol
        if (generation != self.generation or protocol is None or protocol.transport is None
                or protocol.transport.is_closing()):
            return False
        ids = [pid for pid in packet_ids if pid]
        if ids:
            protocol.transport.write(puback_packets(ids))
        return True

    def pause(self) -> None:
        """Stop reading from the broker (TCP backpressure) until ``resume``.

        Needed because a broker may deliver a resumed session's whole backlog at once,
        beyond the Receive Maximum we announced (seen with Mosquitto 2.0.11).
        """
        protocol = self._protocol
        self.paused = True
        if protocol and protocol.transport and not protocol.transport.is_closing():
            protocol.transport.pause_reading()

    def resume(self) -> None:
        protocol = self._protocol
        self.paused = False
        if protocol and protocol.transport and not protocol.transport.is_closing():
            protocol.transport.resume_reading()

    def reconnect(self) -> None:
        """Drop the connection; ``run`` connects again and the broker redelivers unacked."""
        protocol = self._protocol
        if protocol and protocol.transport and not protocol.transport.is_closing():
            protocol.transport.close()

    def _set_connected(self, value: bool) -> None:
        self.connected = value
        if self.on_state:
            self.on_state(value)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._session(stop)
            except ConnectRefused as exc:
                log.error("MQTT broker %s:%d refused the connection: %s. Check mqtt.username, "
                          "mqtt.password and the broker's ACL", self.host, self.port, exc)
            except (TimeoutError, OSError, ConnectionError, ProtocolError) as exc:
                log.warning("MQTT broker %s:%d unreachable or connection lost (%s)",
                            self.host, self.port, exc or type(exc).__name__)
            finally:
                self._close()
            if stop.is_set():
                break
            delay = self.backoff.next_delay()
            log.info("reconnecting to MQTT broker in %.1f s", delay,
                     extra={"delay_s": round(delay, 3), "attempt": self.backoff.attempt})
            await sleep_or_stop(stop, delay)

    def _close(self) -> None:
        protocol = self._protocol
        self._protocol = None
        self.generation += 1
        # Tell the owner on every close, also one between CONNACK and SUBACK: messages a
        # resumed session delivered meanwhile can no longer be acknowledged.
        self._set_connected(False)
        if protocol and protocol.transport and not protocol.transport.is_closing():
            protocol.transport.close()

    async def _session(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.generation += 1
        generation = self.generation
        _, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: _Protocol(self, generation), self.host, self.port,
                                   ssl=self.tls,
                                   server_hostname=self.host if self.tls else None),
            timeout=self.connect_timeout_s)
        self._protocol = protocol
        self.paused = False
        assert protocol.transport is not None
        protocol.transport.write(connect_packet(
            client_id=self.client_id, keepalive_s=self.keepalive_s,
            clean_start=self.clean_start, session_expiry_s=self.session_expiry_s,
            receive_maximum=self.receive_maximum, username=self.username,
            password=self.password))
        connack = decode_connack(await asyncio.wait_for(protocol.connack,
                                                        self.connect_timeout_s))
        if connack.reason_code >= 0x80:
            raise ConnectRefused(connack.reason)
        protocol.transport.write(subscribe_packet(1, self.topics, qos=1))
        suback = await asyncio.wait_for(protocol.suback, self.connect_timeout_s)
        refused = [code for code in _suback_codes(suback) if code >= 0x80]
        if refused:
            raise ConnectRefused(f"subscription to {self.topics} refused "
                                 f"(reason 0x{refused[0]:02x}); check the broker ACL")
        self.connects += 1
        self.backoff.reset()
        self._set_connected(True)
        log.info("connected to MQTT broker %s:%d as %s (session %s), subscribed to %s",
                 self.host, self.port, self.client_id,
                 "resumed" if connack.session_present else "new", ", ".join(self.topics))
        await self._keepalive(protocol, stop)

    async def _keepalive(self, protocol: _Protocol, stop: asyncio.Event) -> None:
        interval = max(1.0, self.keepalive_s / 2)
        stop_wait: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        waiters: set[asyncio.Future[Any]] = {stop_wait, protocol.closed}
        try:
            while not stop.is_set() and not protocol.closed.done():
                await asyncio.wait(waiters, timeout=interval,
                                   return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set() or protocol.closed.done():
                    break
                if self.paused:
                    protocol.last_received = time.monotonic()  # silence is ours, not theirs
                elif time.monotonic() - protocol.last_received > self.keepalive_s * 1.5:
                    raise ConnectionError("no traffic from broker within 1.5 x keepalive")
                assert protocol.transport is not None
                protocol.transport.write(PINGREQ_PACKET)
            if stop.is_set() and protocol.transport and not protocol.transport.is_closing():
                protocol.transport.write(DISCONNECT_PACKET)
            elif protocol.closed.done():
                raise ConnectionError("connection closed")
        finally:
            stop_wait.cancel()


def _suback_codes(body: bytes) -> list[int]:
    # packet id (2), properties (varint length + bytes), then one reason code per filter
    from kota.mqtt._packets import decode_varint

    decoded = decode_varint(body, 2)
    if decoded is None:
        raise ProtocolError("SUBACK too short")
    length, pos = decoded
    return list(body[pos + length:])
