"""Shared by the GPIO drivers: an input pin whose edges arrive with the pin's own timestamps.

gpiozero is imported here, on first use, so config checks need no GPIO library. Callbacks get
``ticks`` from the pin factory (monotonic, comparable with ``ticks_diff``): debouncing and echo
timing use those, never the time the Python callback happened to run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["edge_input", "output", "ticks_diff"]


def edge_input(pin: int | str, pull_up: bool | None, edges: str,
               callback: Callable[[Any, bool], None],
               active_state: bool | None = None) -> Any:
    """An InputDevice whose raw pin calls ``callback(ticks, level)`` on ``edges``.

    ``callback`` must stay referenced by its owner (a bound method of the driver).
    """
    from gpiozero import InputDevice

    device = InputDevice(pin, pull_up=pull_up, active_state=active_state)
    device.pin.edges = edges
    # gpiozero keeps only a weak reference: hand it the driver's bound method, not a lambda
    device.pin.when_changed = callback
    return device


def output(pin: int | str) -> Any:
    from gpiozero import DigitalOutputDevice

    return DigitalOutputDevice(pin, initial_value=False)


def ticks_diff(later: Any, earlier: Any) -> float:
    from gpiozero import Device

    return float(Device.pin_factory.ticks_diff(later, earlier))
