"""Sound level meter with an analogue output (DFRobot SEN0232: dBA = V × 50, 30–130 dBA)
read through a TI ADS1115 16-bit ADC on I2C (smbus2).

A background thread samples the level ``sample_hz`` times a second; each ``read()`` reports
the interval since the previous one as LAeq (the energy mean, 10·log10(mean(10^(L/10))), not
the arithmetic mean of decibels) and LAmax (the highest sample). ADS1115: single-shot
conversions (config register 0x01, OS bit starts one and reads 1 when done; result in the
conversion register 0x00, big-endian two's complement, ±FSR over ±32768).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from agent.drivers.base import Limits, Reading, SensorConfig, SensorError

__all__ = ["Config", "SoundLevel", "ads1115_config", "laeq"]

CONVERSION, CONFIG = 0x00, 0x01
PGA_BITS = {6.144: 0b000, 4.096: 0b001, 2.048: 0b010, 1.024: 0b011, 0.512: 0b100,
            0.256: 0b101}


class Config(SensorConfig):
    driver: Literal["sound"]
    bus: int = Field(default=1, ge=0, description="I2C bus number")
    address: int = Field(default=0x48, description="ADS1115 address: 0x48 (ADDR to GND) … 0x4B")
    channel: Literal[0, 1, 2, 3] = Field(default=0, description="ADS1115 input AIN0..AIN3")
    full_scale_v: float = Field(default=4.096, description="ADC range: 6.144, 4.096, 2.048, "
                                "1.024, 0.512 or 0.256 V; SEN0232 gives 0.6–2.6 V")
    db_per_volt: float = Field(default=50.0, gt=0, description="SEN0232: dBA = V × 50")
    sample_hz: float = Field(default=4.0, gt=0, le=100, description="Samples per second")
    interval_s: float = Field(default=60.0, gt=0, le=3600)

    @field_validator("full_scale_v")
    @classmethod
    def _known_range(cls, value: float) -> float:
        if value not in PGA_BITS:
            raise ValueError(f"must be one of {', '.join(map(str, PGA_BITS))}")
        return value


def ads1115_config(channel: int, full_scale_v: float) -> int:
    """Single-shot, AINx against GND, 128 samples/s, comparator off."""
    return (1 << 15 | (0b100 | channel) << 12 | PGA_BITS[full_scale_v] << 9 | 1 << 8
            | 0b100 << 5 | 0b11)


def laeq(levels: list[float]) -> float:
    """Equivalent continuous level of equally spaced samples (dB)."""
    return 10.0 * math.log10(sum(10.0 ** (level / 10.0) for level in levels) / len(levels))


class SoundLevel:
    kind: ClassVar[str] = "noise"
    # SEN0232 measuring range 30–130 dBA (DFRobot SEN0232 datasheet).
    limits: ClassVar[Limits] = {"laeq_db": (30.0, 130.0), "lamax_db": (30.0, 130.0)}
    max_samples = 100_000

    def __init__(self, config: Config, bus: Any = None) -> None:
        self.config = config
        self._bus = bus
        self._owns_bus = bus is None
        self._levels: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    def open(self) -> None:
        if self._bus is None:
            from smbus2 import SMBus

            self._bus = SMBus(self.config.bus)
        self.sample()  # fail here, not in the thread, if the ADC is not there
        self._stop.clear()
        self._thread = threading.Thread(target=self._sampler, daemon=True, name="sound-sampler")
        self._thread.start()

    def sample(self) -> float:
        """One conversion → dBA."""
        bus, address = self._bus, self.config.address
        word = ads1115_config(self.config.channel, self.config.full_scale_v)
        bus.write_i2c_block_data(address, CONFIG, [word >> 8, word & 0xFF])
        deadline = time.monotonic() + 0.1  # 128 SPS: 7.8 ms per conversion
        while True:
            status = bus.read_i2c_block_data(address, CONFIG, 2)
            if status[0] & 0x80:
                break
            if time.monotonic() > deadline:
                raise SensorError("ADS1115 conversion did not finish")
            time.sleep(0.001)
        high, low = bus.read_i2c_block_data(address, CONVERSION, 2)
        raw = high << 8 | low
        raw = raw - 0x10000 if raw & 0x8000 else raw
        volts = raw * self.config.full_scale_v / 32768.0
        return volts * self.config.db_per_volt

    def _sampler(self) -> None:
        period = 1.0 / self.config.sample_hz
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                level = self.sample()
                with self._lock:
                    if len(self._levels) < self.max_samples:
                        self._levels.append(level)
            except (OSError, SensorError):
                self.errors += 1
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def read(self) -> list[Reading]:
        with self._lock:
            levels, self._levels = self._levels, []
        if not levels:
            if self._thread is None:
                raise SensorError("not open")
            levels = [self.sample()]  # `kota-agent check`: right after open
        return [Reading(self.kind, {"laeq_db": round(laeq(levels), 1),
                                    "lamax_db": round(max(levels), 1)})]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        if self._bus is not None and self._owns_bus:
            self._bus.close()
            self._bus = None
