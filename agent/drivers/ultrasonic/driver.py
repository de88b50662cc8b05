"""Ultrasonic distance (JSN-SR04T waterproof, HC-SR04) on two GPIO pins → river water level.

A ping: a 10 µs pulse on TRIG; the sensor raises ECHO for the sound's round trip. The echo's
duration comes from the pin's own edge timestamps; distance = duration × c / 2 with the speed
of sound corrected for air temperature, c = 331.3 · √(1 + T/273.15) m/s (≈ 349.0 m/s at
30 °C: assuming 20 °C instead would read 1.7 % short, 8 cm at 5 m). The reading is the median
of several pings (a single ping can hit a leaf, a wave crest or a multipath echo). The air
temperature is the latest one measured by an air sensor of the same agent when there is one
(the runner passes it in through ``set_air_temperature``), else ``air_temperature_c``.

With ``mount_height_cm`` set, ``level_cm = mount_height_cm − distance_cm`` is published too;
without it ingest derives the level from the registry's ``mount_height_cm`` (docs/protocol.md).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from agent.drivers._gpio import edge_input, output, ticks_diff
from agent.drivers.base import Limits, Reading, SensorConfig, SensorError

__all__ = ["RANGES_CM", "Config", "Ultrasonic", "distance_cm", "speed_of_sound"]

# Datasheet ranges (JSN-SR04T and HC-SR04 datasheets): JSN-SR04T 20–600 cm (25–450 on some batches),
# HC-SR04 2–400 cm.
RANGES_CM = {"jsn_sr04t": (20.0, 600.0), "hc_sr04": (2.0, 400.0)}


class Config(SensorConfig):
    driver: Literal["ultrasonic"]
    model: Literal["jsn_sr04t", "hc_sr04"] = Field(default="jsn_sr04t")
    trigger_pin: int | str = Field(description="GPIO of TRIG, e.g. 23 or 'GPIO23'")
    echo_pin: int | str = Field(description="GPIO of ECHO (through a 5 V → 3.3 V divider)")
    mount_height_cm: float | None = Field(
        default=None, description="Sensor height above the gauge datum; None = let ingest "
        "use the registry's")
    air_temperature_c: float = Field(default=28.0, ge=-40, le=60,
                                     description="For the speed of sound (Jakarta: ~28) when "
                                     "no sensor of this agent measures air temperature")
    use_measured_temperature: bool = Field(
        default=True, description="Use the latest temperature (≤ 15 min old) from an air "
        "sensor of this agent (BME280, DHT22) instead of air_temperature_c")
    pings: int = Field(default=7, ge=1, le=51, description="Median of this many pings")
    ping_gap_s: float = Field(default=0.07, ge=0.0, le=1.0,
                              description="Pause between pings (let echoes die; ≥ 60 ms)")
    echo_timeout_s: float = Field(default=0.06, gt=0, le=0.5)
    interval_s: float = Field(default=60.0, gt=0, le=86400)


def speed_of_sound(air_temperature_c: float) -> float:
    """m/s in dry air."""
    return 331.3 * math.sqrt(1.0 + air_temperature_c / 273.15)


def distance_cm(echo_s: float, air_temperature_c: float) -> float:
    return echo_s * speed_of_sound(air_temperature_c) * 100.0 / 2.0


class Ultrasonic:
    kind: ClassVar[str] = "water"

    @staticmethod
    def published_fields(config: Config) -> set[str]:
        return {"distance_cm"} | ({"level_cm"} if config.mount_height_cm is not None else set())

    def __init__(self, config: Config) -> None:
        self.config = config
        self.limits: Limits = {"distance_cm": RANGES_CM[config.model]}
        self._trigger: Any = None
        self._echo: Any = None
        self._rise: Any = None
        self._duration: float | None = None
        self._done = threading.Event()
        self.air_temperature_c = config.air_temperature_c

    def set_air_temperature(self, celsius: float) -> None:
        """Called by the runner with a measured air temperature before each read."""
        if self.config.use_measured_temperature and -40.0 <= celsius <= 60.0:
            self.air_temperature_c = celsius

    def open(self) -> None:
        self._trigger = output(self.config.trigger_pin)
        self._echo = edge_input(self.config.echo_pin, pull_up=False, edges="both",
                                callback=self._edge)

    def _edge(self, ticks: Any, level: bool) -> None:
        if level:
            self._rise = ticks
        elif self._rise is not None:
            self._duration = ticks_diff(ticks, self._rise)
            self._rise = None
            self._done.set()

    def ping(self) -> float | None:
        """One echo's duration in seconds, or None when no echo came back in time."""
        self._rise, self._duration = None, None
        self._done.clear()
        self._trigger.on()
        time.sleep(0.00001)
        self._trigger.off()
        if not self._done.wait(self.config.echo_timeout_s):
            return None
        return self._duration

    def read(self) -> list[Reading]:
        if self._trigger is None:
            raise SensorError("not open")
        echoes: list[float] = []
        for index in range(self.config.pings):
            if index and self.config.ping_gap_s:
                time.sleep(self.config.ping_gap_s)
            echo = self.ping()
            if echo is not None and echo > 0:
                echoes.append(echo)
        if len(echoes) * 2 < self.config.pings:
            raise SensorError(f"only {len(echoes)} of {self.config.pings} pings echoed")
        distance = round(distance_cm(statistics.median(echoes), self.air_temperature_c), 1)
        fields: dict[str, float | bool | str] = {"distance_cm": distance}
        low, high = self.limits["distance_cm"]
        if self.config.mount_height_cm is not None and low <= distance <= high:
            fields["level_cm"] = round(self.config.mount_height_cm - distance, 1)
        return [Reading(self.kind, fields)]

    def close(self) -> None:
        for device in (self._trigger, self._echo):
            if device is not None:
                device.close()
        self._trigger = self._echo = None
