"""DHT22 / AM2302 temperature and humidity, through the Linux kernel's dht11 IIO driver.

The DHT22's one-wire protocol encodes bits in 26–70 µs pulses; user-space Python on a
multitasking Pi misses them often. The kernel driver (``dtoverlay=dht11,gpiopin=4`` in
/boot/firmware/config.txt — it handles DHT22 too) times them in interrupt context and exposes
``in_temp_input`` (m°C) and ``in_humidityrelative_input`` (m%RH) under
/sys/bus/iio/devices/iio:deviceN/. A read can still fail with EIO (checksum) or ETIMEDOUT; the
driver retries, at most every 2 s (the sensor's 0.5 Hz limit).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from agent.drivers.base import Limits, Reading, SensorConfig, SensorError

__all__ = ["Config", "Dht22"]


class Config(SensorConfig):
    driver: Literal["dht22"]
    iio_device: Path = Field(default=Path("/sys/bus/iio/devices/iio:device0"),
                             description="The IIO folder the dht11 overlay created")
    retries: int = Field(default=3, ge=1, le=10)
    retry_gap_s: float = Field(default=2.0, ge=0, le=10)
    interval_s: float = Field(default=60.0, ge=2, le=86400)


class Dht22:
    kind: ClassVar[str] = "air"
    # Datasheet: -40..80 °C, 0..100 %RH (AM2302/DHT22 datasheet: ±0.5 °C, ±2 %RH).
    limits: ClassVar[Limits] = {"temperature": (-40.0, 80.0), "humidity": (0.0, 100.0)}

    def __init__(self, config: Config) -> None:
        self.config = config

    def open(self) -> None:
        if not (self.config.iio_device / "in_temp_input").exists():
            raise SensorError(f"{self.config.iio_device}/in_temp_input missing: is "
                              "dtoverlay=dht11,gpiopin=<n> in config.txt?")

    def _milli(self, name: str) -> float:
        return int((self.config.iio_device / name).read_text().strip()) / 1000.0

    def read(self) -> list[Reading]:
        error: Exception | None = None
        for attempt in range(self.config.retries):
            if attempt:
                time.sleep(self.config.retry_gap_s)
            try:
                return [Reading(self.kind, {
                    "temperature": round(self._milli("in_temp_input"), 1),
                    "humidity": round(self._milli("in_humidityrelative_input"), 1)})]
            except (OSError, ValueError) as exc:
                error = exc
        raise SensorError(f"no reading after {self.config.retries} tries: {error}")

    def close(self) -> None:
        pass
