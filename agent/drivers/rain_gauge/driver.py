"""Tipping-bucket rain gauge: a reed switch that closes once per bucket tip, on a GPIO input.

Wiring: one lead to the GPIO, the other to GND; the internal pull-up holds the pin high and a
tip pulls it low. Each falling edge counts, unless it comes within ``debounce_s`` of the
previous counted one (a reed contact bounces for a few ms; a bucket cannot tip twice within
0.1 s even in a cloudburst — 200 mm/h at 0.2794 mm/tip is one tip every 5 s). Every interval
the driver reports ``tips`` and ``rain_mm = tips × mm_per_tip`` since the previous report,
zero included (no rain is a measurement too).
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Literal

from pydantic import Field

from agent.drivers._gpio import edge_input, ticks_diff
from agent.drivers.base import Limits, Reading, SensorConfig, SensorError

__all__ = ["Config", "RainGauge"]


class Config(SensorConfig):
    driver: Literal["rain_gauge"]
    pin: int | str = Field(description="GPIO of the reed switch (other lead to GND)")
    mm_per_tip: float = Field(default=0.2794, gt=0, le=10,
                              description="0.2794 (SparkFun/Argent), 0.2 (Davis)")
    debounce_s: float = Field(default=0.1, ge=0, le=2)
    interval_s: float = Field(default=300.0, gt=0, le=3600)


class RainGauge:
    kind: ClassVar[str] = "rain"
    # At most an hour per report (rain kind): 500 mm is beyond any recorded hourly rain.
    limits: ClassVar[Limits] = {"rain_mm": (0.0, 500.0), "tips": (0.0, 5000.0)}

    def __init__(self, config: Config) -> None:
        self.config = config
        self._pin: Any = None
        self._tips = 0
        self._last: Any = None
        self._lock = threading.Lock()
        self.bounces = 0

    def open(self) -> None:
        self._pin = edge_input(self.config.pin, pull_up=True, edges="falling",
                               callback=self._edge)

    def _edge(self, ticks: Any, level: bool) -> None:
        if level:
            return
        with self._lock:
            if self._last is not None and ticks_diff(ticks, self._last) < self.config.debounce_s:
                self.bounces += 1
                return
            self._last = ticks
            self._tips += 1

    def read(self) -> list[Reading]:
        if self._pin is None:
            raise SensorError("not open")
        with self._lock:
            tips, self._tips = self._tips, 0
        return [Reading(self.kind, {"rain_mm": round(tips * self.config.mm_per_tip, 4),
                                    "tips": float(tips)})]

    def close(self) -> None:
        if self._pin is not None:
            self._pin.close()
            self._pin = None
