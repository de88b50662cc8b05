"""Plantower PMS5003 / PMS7003 particulate sensor over UART (9600 8N1), in passive mode.

Data frame (32 bytes, big-endian, Plantower PMS5003 datasheet): ``42 4D``, frame length 28,
13 data words (PM1.0/2.5/10 at CF=1; PM1.0/2.5/10 "atmospheric environment"; particle counts;
reserved), checksum = 16-bit sum of bytes 0–29. Command replies are 8-byte frames (length 4),
skipped.

Passive mode (``42 4D E1 00 00 01 70``) makes the sensor answer only when asked
(``42 4D E2 00 00 01 71``), so a read never gets a stale frame. Duty cycling (default on) puts
the fan and laser to sleep between reads (``42 4D E4 00 00 01 73``; wake ``… E4 00 01 01 74``);
Plantower asks for 30 s after waking before the values are stable.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from agent.drivers._serial import FrameScanner, SerialDriver, open_serial, read_frames
from agent.drivers.base import Limits, Reading, SensorConfig, SensorError

__all__ = ["PASSIVE", "READ", "SLEEP", "WAKE", "Config", "Pms5003", "PmsFrames", "decode"]


def _command(cmd: int, data_high: int, data_low: int) -> bytes:
    body = bytes([0x42, 0x4D, cmd, data_high, data_low])
    return body + (sum(body) & 0xFFFF).to_bytes(2, "big")


PASSIVE = _command(0xE1, 0x00, 0x00)  # 42 4D E1 00 00 01 70
READ = _command(0xE2, 0x00, 0x00)  # 42 4D E2 00 00 01 71
SLEEP = _command(0xE4, 0x00, 0x00)  # 42 4D E4 00 00 01 73
WAKE = _command(0xE4, 0x00, 0x01)  # 42 4D E4 00 01 01 74


class Config(SensorConfig):
    driver: Literal["pms5003"]
    model: Literal["pms5003", "pms7003"] = Field(default="pms5003",
                                                 description="Same protocol; wiring differs")
    port: str = Field(default="/dev/serial0", description="Serial device")
    interval_s: float = Field(default=300.0, gt=0, le=86400)
    values: Literal["atmospheric", "cf1"] = Field(
        default="atmospheric", description="Which of the two PM sets to publish "
        "(atmospheric = ambient air; cf1 = factory calibration particle)")
    duty_cycle: bool = Field(default=True, description="Sleep fan and laser between reads")
    warmup_s: float = Field(default=30.0, ge=0, le=120)
    samples: int = Field(default=3, ge=1, le=30, description="Frames averaged per reading")
    sample_gap_s: float = Field(default=1.0, ge=0, le=10, description="Pause between samples")
    timeout_s: float = Field(default=3.0, gt=0, le=60, description="Wait per requested frame")


class PmsFrames(FrameScanner):
    header = b"\x42\x4d"

    def frame_length(self, buffer: bytearray) -> int | None:
        if len(buffer) < 4:
            return None
        length = int.from_bytes(buffer[2:4], "big")
        return length + 4 if length in (4, 28) else 0

    def is_valid(self, frame: bytes) -> bool:
        return sum(frame[:-2]) & 0xFFFF == int.from_bytes(frame[-2:], "big")


def decode(frame: bytes, values: str = "atmospheric") -> dict[str, float]:
    """A validated 32-byte data frame → pm1, pm25, pm10 in µg/m³."""
    words = [int.from_bytes(frame[i:i + 2], "big") for i in range(4, 30, 2)]
    first = 3 if values == "atmospheric" else 0
    return {"pm1": float(words[first]), "pm25": float(words[first + 1]),
            "pm10": float(words[first + 2])}


class Pms5003(SerialDriver):
    kind: ClassVar[str] = "air"
    sleep_command: ClassVar[bytes] = SLEEP
    # Plantower: range 0–500 µg/m³ effective, ≥ 1000 maximum (Plantower datasheet); beyond 1000 the
    # value is a fault.
    limits: ClassVar[Limits] = {"pm1": (0.0, 1000.0), "pm25": (0.0, 1000.0),
                                "pm10": (0.0, 1000.0)}

    def __init__(self, config: Config) -> None:
        self.config = config
        self.scanner = PmsFrames()
        self._port: Any = None

    def open(self) -> None:
        self._port = open_serial(self.config.port, 9600)
        self._send(PASSIVE)
        if self.config.duty_cycle:
            self._send(SLEEP)

    def read(self) -> list[Reading]:
        if self._port is None:
            raise SensorError("not open")
        self._port.reset_input_buffer()
        self.scanner.reset()
        try:
            if self.config.duty_cycle:
                self._send(WAKE)
                time.sleep(self.config.warmup_s)
                self._send(PASSIVE)  # some units come back from sleep in active mode
            values: list[dict[str, float]] = []
            for index in range(self.config.samples):
                if index and self.config.sample_gap_s:
                    time.sleep(self.config.sample_gap_s)
                self._port.reset_input_buffer()
                self._send(READ)
                frames = read_frames(self._port, self.scanner, 1, self.config.timeout_s,
                                     accept=lambda f: len(f) == 32)
                values.extend(decode(f, self.config.values) for f in frames)
        finally:
            if self.config.duty_cycle:
                self._send(SLEEP)
        if not values:
            raise SensorError(f"no valid {self.config.model.upper()} frame "
                              f"({self.scanner.bad_frames} bad, "
                              f"{self.scanner.skipped_bytes} bytes skipped)")
        return [Reading(self.kind, {
            name: round(sum(v[name] for v in values) / len(values), 1)
            for name in ("pm1", "pm25", "pm10")})]
