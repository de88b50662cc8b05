"""Shared by the serial drivers: a frame scanner that resynchronises after garbage, and the port.

A scanner is fed whatever bytes arrived and yields only frames whose checksum holds. On a
header whose frame fails its checksum it drops one byte and searches again, so a corrupted or
truncated frame costs that frame only: the next good one is found wherever it starts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, ClassVar

__all__ = ["FrameScanner", "SerialDriver", "open_serial", "read_frames"]


class FrameScanner:
    """Subclasses set ``header`` and implement ``frame_length`` and ``is_valid``."""

    header: bytes = b""
    max_buffer = 4096

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.bad_frames = 0  # header found, checksum or trailer wrong
        self.skipped_bytes = 0  # bytes outside any valid frame

    def frame_length(self, buffer: bytearray) -> int | None:
        """Length of the frame starting at ``buffer[0]``; None = need more bytes; 0 = invalid."""
        raise NotImplementedError

    def is_valid(self, frame: bytes) -> bool:
        raise NotImplementedError

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._buffer += data
        buffer = self._buffer
        while buffer:
            start = buffer.find(self.header)
            if start < 0:
                keep = len(self.header) - 1
                # keep a possible partial header at the end
                cut = len(buffer) - keep if keep and buffer.endswith(
                    self.header[:keep]) else len(buffer)
                self.skipped_bytes += cut
                del buffer[:cut]
                break
            if start:
                self.skipped_bytes += start
                del buffer[:start]
            length = self.frame_length(buffer)
            if length is None or len(buffer) < (length or 1):
                break
            if length == 0:
                self.skipped_bytes += 1
                del buffer[:1]
                continue
            frame = bytes(buffer[:length])
            if self.is_valid(frame):
                del buffer[:length]
                yield frame
            else:
                self.bad_frames += 1
                self.skipped_bytes += 1
                del buffer[:1]
        if len(buffer) > self.max_buffer:
            self.skipped_bytes += len(buffer) - self.max_buffer
            del buffer[:len(buffer) - self.max_buffer]

    def reset(self) -> None:
        self._buffer.clear()


def open_serial(port: str, baudrate: int) -> Any:
    """8N1, short read timeout; pyserial is imported here so config checks need no hardware."""
    import serial

    return serial.Serial(port, baudrate=baudrate, bytesize=8, parity="N", stopbits=1,
                         timeout=0.1, write_timeout=2)


class SerialDriver:
    """Port handling of the duty-cycled UART drivers: send a command; on close, put the sensor
    to sleep (``sleep_command``) when duty cycling, then release the port."""

    config: Any  # the driver's Config, with ``duty_cycle``
    sleep_command: ClassVar[bytes]
    _port: Any

    def _send(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def close(self) -> None:
        if self._port is not None:
            try:
                if self.config.duty_cycle:
                    self._send(self.sleep_command)
            finally:
                self._port.close()
                self._port = None


def read_frames(port: Any, scanner: FrameScanner, wanted: int, timeout_s: float,
                accept: Any = None) -> list[bytes]:
    """Read until ``wanted`` frames (that ``accept(frame)`` returns true for) or the timeout."""
    frames: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(frames) < wanted and time.monotonic() < deadline:
        data = port.read(max(1, min(256, port.in_waiting)))
        if not data:
            continue
        for frame in scanner.feed(data):
            if accept is None or accept(frame):
                frames.append(frame)
                if len(frames) >= wanted:
                    break
    return frames
