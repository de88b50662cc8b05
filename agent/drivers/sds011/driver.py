"""Nova Fitness SDS011 particulate sensor over UART (9600 8N1).

Data frame (10 bytes, Nova Fitness SDS011 datasheet): ``AA C0 D1 D2 D3 D4 D5 D6 CS AB``;
PM2.5 = (D2·256 + D1)/10, PM10 = (D4·256 + D3)/10 µg/m³, D5 D6 device id,
CS = (D1 + … + D6) & 0xFF. Replies to commands are ``AA C5 …`` frames of the same shape.
Commands are 19 bytes: ``AA B4 <cmd> <data 12 bytes> FF FF CS AB`` with CS the sum of bytes
2–16. Duty cycling (default on): the fan and laser sleep between reads (command 6, "set
sleep/work"), which is what makes the laser last (rated ~8000 h of operation) — a 5-minute
interval with 30 s warm-up runs it 10 % of the time.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from agent.drivers._serial import FrameScanner, SerialDriver, open_serial, read_frames
from agent.drivers.base import Limits, Reading, SensorConfig, SensorError

__all__ = ["Config", "Sds011", "Sds011Frames", "command", "decode"]

SLEEP, WORK = 0, 1


class Config(SensorConfig):
    driver: Literal["sds011"]
    port: str = Field(default="/dev/ttyUSB0", description="Serial device (USB adapter or "
                      "/dev/serial0 on the GPIO UART)")
    interval_s: float = Field(default=300.0, gt=0, le=86400)
    duty_cycle: bool = Field(default=True, description="Sleep fan and laser between reads")
    warmup_s: float = Field(default=30.0, ge=0, le=120,
                            description="Run this long after waking before reading")
    samples: int = Field(default=3, ge=1, le=30, description="Frames averaged per reading")
    timeout_s: float = Field(default=10.0, gt=0, le=120,
                             description="Give up a read after this long without frames")


class Sds011Frames(FrameScanner):
    header = b"\xaa"

    def frame_length(self, buffer: bytearray) -> int | None:
        if len(buffer) < 2:
            return None
        return 10 if buffer[1] in (0xC0, 0xC5) else 0

    def is_valid(self, frame: bytes) -> bool:
        return frame[9] == 0xAB and sum(frame[2:8]) & 0xFF == frame[8]


def decode(frame: bytes) -> dict[str, float]:
    """A validated ``AA C0`` frame → pm25, pm10 in µg/m³."""
    return {"pm25": (frame[3] * 256 + frame[2]) / 10.0,
            "pm10": (frame[5] * 256 + frame[4]) / 10.0}


def command(cmd: int, data: bytes = b"", device_id: bytes = b"\xff\xff") -> bytes:
    body = bytes([cmd]) + data.ljust(12, b"\x00") + device_id
    return b"\xaa\xb4" + body + bytes([sum(body) & 0xFF]) + b"\xab"


def work_command(mode: int) -> bytes:
    """Command 6: data byte 1 = 1 (set), byte 2 = 0 sleep / 1 work."""
    return command(0x06, bytes([0x01, mode]))


class Sds011(SerialDriver):
    kind: ClassVar[str] = "air"
    sleep_command: ClassVar[bytes] = work_command(SLEEP)
    # Datasheet output range 0.0–999.9 µg/m³ (SDS011 datasheet); frames can carry up to 6553.5.
    limits: ClassVar[Limits] = {"pm25": (0.0, 999.9), "pm10": (0.0, 999.9)}

    def __init__(self, config: Config) -> None:
        self.config = config
        self.scanner = Sds011Frames()
        self._port: Any = None

    def open(self) -> None:
        self._port = open_serial(self.config.port, 9600)
        if self.config.duty_cycle:
            self._send(work_command(SLEEP))

    def read(self) -> list[Reading]:
        if self._port is None:
            raise SensorError("not open")
        self._port.reset_input_buffer()
        self.scanner.reset()
        if self.config.duty_cycle:
            self._send(work_command(WORK))
            if self.config.warmup_s:
                time.sleep(self.config.warmup_s)
                self._port.reset_input_buffer()  # frames from the warm-up are not air
        try:
            frames = read_frames(self._port, self.scanner, self.config.samples,
                                 self.config.timeout_s, accept=lambda f: f[1] == 0xC0)
        finally:
            if self.config.duty_cycle:
                self._send(work_command(SLEEP))
        if not frames:
            raise SensorError(f"no valid SDS011 frame in {self.config.timeout_s:g} s "
                              f"({self.scanner.bad_frames} bad, "
                              f"{self.scanner.skipped_bytes} bytes skipped)")
        values = [decode(f) for f in frames]
        return [Reading(self.kind, {
            name: round(sum(v[name] for v in values) / len(values), 1)
            for name in ("pm25", "pm10")})]
