"""The contract every driver keeps, and what a reading is.

A driver is a class with ``kind`` (the platform kind its readings belong to), ``limits`` (the
sensor's physical range per field, from its datasheet) and three methods: ``open()``,
``read() -> list[Reading]`` and ``close()``. It is built from its own pydantic config model,
which subclasses :class:`SensorConfig`. Drivers never see MQTT, the queue or the clock policy:
the runner schedules ``read()``, screens the values against ``limits`` and queues them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Driver", "FieldValue", "Limits", "Reading", "SensorConfig", "SensorError", "screen"]

FieldValue = float | bool | str
Limits = Mapping[str, tuple[float, float]]

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class SensorError(RuntimeError):
    """The sensor did not answer, or answered nothing usable, this time."""


@dataclass
class Reading:
    """One set of values read at one moment.

    ``ts`` is left ``None`` by polled drivers (the runner stamps the time of the read); event
    drivers (rain tips, buttons) set it to when the event happened. ``flags`` maps a field that
    was taken out of ``fields`` to why (e.g. outside the sensor's range): flagged values are
    never published, they go to the local flagged log.
    """

    kind: str
    fields: dict[str, FieldValue]
    ts: float | None = None
    flags: dict[str, str] = field(default_factory=dict)
    raw: dict[str, FieldValue] = field(default_factory=dict)


class SensorConfig(BaseModel):
    """What every ``[[sensor]]`` table may say, whatever its driver."""

    model_config = ConfigDict(extra="forbid")

    driver: str = Field(description="Driver name: the folder under agent/drivers/")
    name: str | None = Field(default=None, description="Label for logs and `kota-agent check`")
    interval_s: float = Field(default=60.0, gt=0, le=86400,
                              description="Seconds between reads (reports, for event drivers)")
    device_id: str | None = Field(
        default=None, pattern=DEVICE_ID_PATTERN,
        description="Device id on the platform; default `<agent.id>-<kind>`")


class Driver(Protocol):
    @property
    def kind(self) -> str: ...

    limits: Limits

    def open(self) -> None: ...

    def read(self) -> list[Reading]: ...

    def close(self) -> None: ...


def screen(reading: Reading, limits: Limits, kind_ranges: Limits | None = None) -> Reading:
    """Move every value outside the sensor's range (or the kind's plausible range) to ``flags``.

    The remaining ``fields`` are what may be published; ``raw`` keeps everything as read.
    """
    reading.raw = dict(reading.fields)
    kept: dict[str, FieldValue] = {}
    for name, value in reading.fields.items():
        problem = None
        if isinstance(value, float | int) and not isinstance(value, bool):
            if not math.isfinite(float(value)):
                problem = "not a finite number"
            elif name in limits and not limits[name][0] <= value <= limits[name][1]:
                low, high = limits[name]
                problem = f"{value:g} outside the sensor's range {low:g}..{high:g}"
            elif kind_ranges and name in kind_ranges and not (
                    kind_ranges[name][0] <= value <= kind_ranges[name][1]):
                low, high = kind_ranges[name]
                problem = f"{value:g} outside the kind's plausible range {low:g}..{high:g}"
        if problem:
            reading.flags[name] = problem
        else:
            kept[name] = value
    reading.fields = kept
    return reading
