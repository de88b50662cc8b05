"""MQTT 5 packet encoding and the incremental decoder ingest needs (OASIS MQTT 5.0, §2-3).

Only what a QoS 1 subscriber uses: CONNECT, SUBSCRIBE, PUBACK, PINGREQ, DISCONNECT out;
CONNACK, SUBACK, PUBLISH, PINGRESP, DISCONNECT in. Decoding works on a bytearray in bulk so
that a burst of thousands of PUBLISH packets costs one Python call per packet and no copies
beyond the payload itself.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"

# Property identifiers (MQTT 5 §2.2.2.2)
PROP_SESSION_EXPIRY = 0x11
PROP_RECEIVE_MAXIMUM = 0x21
PROP_MAXIMUM_PACKET_SIZE = 0x27
PROP_REASON_STRING = 0x1F
PROP_ASSIGNED_CLIENT_ID = 0x12

CONNACK_REASONS = {
    0x00: "success",
    0x80: "unspecified error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8C: "bad authentication method",
    0x95: "packet too large",
    0x9F: "connection rate exceeded",
}


class ProtocolError(Exception):
    """The peer sent something that is not MQTT 5."""


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value % 128
        value //= 128
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _utf8(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("!H", len(data)) + data


def _binary(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + encode_varint(len(body)) + body


def connect_packet(*, client_id: str, keepalive_s: int, clean_start: bool,
                   session_expiry_s: int, receive_maximum: int,
                   username: str | None = None, password: str | None = None,
                   maximum_packet_size: int | None = None) -> bytes:
    flags = 0x02 if clean_start else 0
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    props = bytes([PROP_SESSION_EXPIRY]) + struct.pack("!I", session_expiry_s)
    props += bytes([PROP_RECEIVE_MAXIMUM]) + struct.pack("!H", receive_maximum)
    if maximum_packet_size:
        props += bytes([PROP_MAXIMUM_PACKET_SIZE]) + struct.pack("!I", maximum_packet_size)
    body = _utf8("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive_s)
    body += encode_varint(len(props)) + props + _utf8(client_id)
    if username is not None:
        body += _utf8(username)
    if password is not None:
        body += _binary(password.encode("utf-8"))
    return _packet(CONNECT << 4, body)


def subscribe_packet(packet_id: int, topic_filters: list[str], qos: int = 1) -> bytes:
    body = struct.pack("!H", packet_id) + b"\x00"
    for topic_filter in topic_filters:
        body += _utf8(topic_filter) + bytes([qos & 0x03])
    return _packet((SUBSCRIBE << 4) | 0x02, body)


def puback_packets(packet_ids: list[int]) -> bytes:
    """Many PUBACKs in one buffer: remaining length 2 means reason 'success' (§3.4.2.1)."""
    return b"".join(b"\x40\x02" + pid.to_bytes(2, "big") for pid in packet_ids)


@dataclass(slots=True)
class Connack:
    session_present: bool
    reason_code: int
    reason: str


def decode_connack(body: bytes) -> Connack:
    if len(body) < 2:
        raise ProtocolError("CONNACK too short")
    code = body[1]
    return Connack(bool(body[0] & 0x01), code, CONNACK_REASONS.get(code, f"reason 0x{code:02x}"))


def decode_varint(buffer: bytes | bytearray | memoryview, pos: int) -> tuple[int, int] | None:
    """(value, next position), or None when the buffer ends inside the integer."""
    multiplier, value = 1, 0
    for offset in range(4):
        if pos + offset >= len(buffer):
            return None
        byte = buffer[pos + offset]
        value += (byte & 0x7F) * multiplier
        if not byte & 0x80:
            return value, pos + offset + 1
        multiplier *= 128
    raise ProtocolError("malformed variable byte integer")


Message = tuple[int, str, bytes]  # (packet id or 0 for QoS 0, topic, payload)


def split_packets(buffer: bytearray, messages: list[Message],
                  control: list[tuple[int, int, bytes]]) -> int:
    """Decode every complete packet at the start of ``buffer``.

    PUBLISH packets go to ``messages``; anything else to ``control`` as (type, flags, body).
    Returns how many bytes were consumed; the caller deletes them.
    """
    pos, size = 0, len(buffer)
    view = memoryview(buffer)
    try:
        while pos + 2 <= size:
            first = buffer[pos]
            # Inline varint: most packets here are short PUBLISH with 1-2 length bytes.
            length, mult, cursor = 0, 1, pos + 1
            while True:
                if cursor >= size:
                    return pos
                byte = buffer[cursor]
                length += (byte & 0x7F) * mult
                cursor += 1
                if not byte & 0x80:
                    break
                mult *= 128
                if mult > 128**3:
                    raise ProtocolError("malformed remaining length")
            end = cursor + length
            if end > size:
                return pos
            packet_type = first >> 4
            if packet_type == PUBLISH:
                topic_len = (buffer[cursor] << 8) | buffer[cursor + 1]
                cursor += 2
                topic = bytes(view[cursor:cursor + topic_len]).decode("utf-8", "replace")
                cursor += topic_len
                packet_id = 0
                if first & 0x06:
                    packet_id = (buffer[cursor] << 8) | buffer[cursor + 1]
                    cursor += 2
                props = buffer[cursor]
                if props < 0x80:
                    cursor += 1 + props
                else:
                    decoded = decode_varint(buffer, cursor)
                    assert decoded is not None  # the whole packet is in the buffer
                    cursor = decoded[1] + decoded[0]
                if cursor > end:  # lengths inside the packet point past its end
                    raise ProtocolError("malformed PUBLISH: topic or properties overrun")
                messages.append((packet_id, topic, bytes(view[cursor:end])))
            else:
                control.append((packet_type, first & 0x0F, bytes(view[cursor:end])))
            pos = end
        return pos
    except IndexError:
        raise ProtocolError("malformed packet: shorter than its own fields") from None
    finally:
        view.release()
