"""The registry of indicator computations: each indicator module adds its steps here
(``steps.add(...)``, at the end of the module, like Telegraf's ``inputs.Add``), and
``IndicatorService.points_for`` runs the steps of a window's length in their ``order``.

A step queries what it needs through the ``Span`` (the service's query, cached hourly air means
and open incidents), computes with its module's pure functions and returns its points; what a
later step needs (the day's city indicators read the others' results) it leaves on the span.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from indicators.points import Point
from indicators.settings import IndicatorSettings, WindowName
from indicators.windows import Window

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from indicators.air import Hourly
    from indicators.city import Limits
    from indicators.context import Context
    from indicators.coverage import Coverage
    from indicators.safety import EventCounts, Responses
    from indicators.uptime import Uptime

__all__ = ["STEPS", "Span", "Step", "add", "registered"]


@dataclass
class Span:
    """One window being computed: what steps read, and what they leave for later steps."""

    window: Window
    settings: IndicatorSettings
    context: Context
    gauges: Mapping[str, Any]
    zone: ZoneInfo
    limits: Limits
    query: Callable[[str], Awaitable[list[dict[str, Any]]]]
    air_hourly: Callable[[int, int], Awaitable[Hourly]]
    open_incidents: Callable[[Window, set[tuple[str, str]]], Awaitable[list[Point]]]
    ispu_ranks: Callable[[Window], Awaitable[dict[tuple[str, str], dict[int, float]]]]
    # left by the steps for the city indicators
    hourly: Hourly = field(default_factory=dict)
    siaga: list[Point] = field(default_factory=list)
    noise: list[Point] = field(default_factory=list)
    safety_counts: EventCounts = field(default_factory=dict)
    responses: Responses = field(default_factory=dict)
    uptime: Uptime | None = None
    # the confirmed subscriptions as of a time (ms), for alert coverage; None: no database
    coverage: Callable[[int], Awaitable[Coverage | None]] | None = None

    @property
    def city(self) -> str | None:
        return self.settings.city


@dataclass(frozen=True)
class Step:
    name: str
    windows: frozenset[WindowName]
    order: int  # lower first; a step reading another's results comes after it
    compute: Callable[[Span], Awaitable[list[Point]]]


STEPS: dict[str, Step] = {}


def add(name: str, windows: tuple[WindowName, ...], order: int,
        compute: Callable[[Span], Awaitable[list[Point]]]) -> None:
    if name in STEPS:
        raise ValueError(f"indicator step {name!r} is registered twice")
    STEPS[name] = Step(name, frozenset(windows), order, compute)


def registered(window: WindowName) -> list[Step]:
    """The steps of a window length, in order."""
    return sorted((s for s in STEPS.values() if window in s.windows), key=lambda s: s.order)
