"""Events from a GPIO input: a panic button, a PIR motion sensor, a smoke detector's relay.

Each activation becomes one ``safety`` reading, ``{"event": <event>, "count": 1}``, stamped
with the time of the edge (not of the next report). After an event the input is ignored for
``hold_s``: a held or bouncing button is one alarm, and a PIR that keeps re-triggering while
someone walks by is one intrusion. Run it with a short ``interval_s`` (default 1 s): events
are collected continuously and handed over at each read.

- Panic button (normally open, to GND): ``pull_up = true`` (active when low).
- PIR (HC-SR501, AM312: 3.3 V output, high on motion): ``pull_up = false``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from agent.drivers._gpio import edge_input, ticks_diff
from agent.drivers.base import Limits, Reading, SensorConfig, SensorError

__all__ = ["Config", "GpioEvent"]

Event = Literal["panic", "fire", "smoke", "intrusion", "flood_report", "test"]


class Config(SensorConfig):
    driver: Literal["gpio_event"]
    pin: int | str = Field(description="GPIO of the button or the PIR output")
    event: Event = Field(description="Event category of the safety kind: panic for a button, "
                         "intrusion for a PIR")
    pull_up: bool = Field(default=True, description="true: active when pulled to GND (button); "
                          "false: active when driven high (PIR)")
    hold_s: float = Field(default=10.0, ge=0, le=3600,
                          description="Ignore the input this long after an event")
    message: str | None = Field(default=None, max_length=280,
                                description="Text sent with each event, e.g. the location")
    interval_s: float = Field(default=1.0, gt=0, le=60)


class GpioEvent:
    kind: ClassVar[str] = "safety"
    limits: ClassVar[Limits] = {"count": (0.0, 1.0)}
    max_pending = 1000

    @staticmethod
    def published_fields(config: Config) -> set[str]:
        """None shared: each event is a point of its own (the event category is a tag), so two
        buttons on one device are two streams of events, not two writers of one value."""
        return set()

    def __init__(self, config: Config) -> None:
        self.config = config
        self._input: Any = None
        self._events: list[list[float]] = []  # [time s, count]
        self._last: Any = None
        self._lock = threading.Lock()
        self.ignored = 0

    def open(self) -> None:
        active_low = self.config.pull_up
        self._input = edge_input(self.config.pin, pull_up=self.config.pull_up,
                                 edges="falling" if active_low else "rising",
                                 callback=self._edge)

    def _edge(self, ticks: Any, level: bool) -> None:
        if level == self.config.pull_up:  # the inactive edge
            return
        with self._lock:
            if self._last is not None and ticks_diff(ticks, self._last) < self.config.hold_s:
                self.ignored += 1
                return
            self._last = ticks
            if len(self._events) < self.max_pending:
                self._events.append([time.time(), 1.0])
            else:  # never lose a press: a flood of events is folded into the last one's count
                self._events[-1][1] += 1.0

    def read(self) -> list[Reading]:
        if self._input is None:
            raise SensorError("not open")
        with self._lock:
            events, self._events = self._events, []
        extra: dict[str, float | bool | str] = (
            {"message": self.config.message} if self.config.message else {})
        return [Reading(self.kind, {"event": self.config.event, "count": count, **extra}, ts=ts)
                for ts, count in events]

    def close(self) -> None:
        if self._input is not None:
            self._input.close()
            self._input = None
