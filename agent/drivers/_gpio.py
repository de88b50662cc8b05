"""Shared by the GPIO drivers: an input pin whose edges arrive with the pin's own timestamps.

gpiozero is imported here, on first use, so config checks need no GPIO library. Callbacks get
``ticks`` from the pin factory (monotonic, comparable with ``ticks_diff``): debouncing and echo
timing use those, never the time the Python callback happened to run.

gpiozero picks its pin library on first use and, where none works (any machine but a Pi, or a
Pi without python3-lgpio), warns once per library it tried and then raises "Unable to load any
default pin factory!". :func:`gpio_unavailable` makes that choice with those warnings caught
and turns the outcome into one sentence that says what to do; the drivers raise it as
:class:`GpioUnavailable`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from agent.drivers.base import SensorError

__all__ = ["GPIO_ADVICE", "GpioUnavailable", "edge_input", "gpio_unavailable", "output",
           "ticks_diff"]

GPIO_ADVICE = ("on a Raspberry Pi: sudo apt install python3-lgpio (install.sh does, and makes "
               "the venv see it); to try without hardware: GPIOZERO_PIN_FACTORY=mock")

_reason: str | None = None  # why gpiozero found no pin library, once it was asked


class GpioUnavailable(SensorError):
    """No GPIO on this machine: gpiozero is missing or found no pin library."""


def gpio_unavailable() -> str | None:
    """None if gpiozero has a pin factory here; else why not, in a few words (asked once)."""
    global _reason
    try:
        from gpiozero import Device
        from gpiozero.exc import PinFactoryFallback
    except ImportError:
        return "gpiozero is not installed (pip install 'kota-cerdas[agent]')"
    if Device.pin_factory is not None:
        return None
    if _reason is not None:
        return _reason
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            Device.ensure_pin_factory()
        except Exception as exc:  # BadPinFactory, or a factory's own error when one is named
            tried = [str(w.message).removeprefix("Falling back from ") for w in caught
                     if issubclass(w.category, PinFactoryFallback)]
            if tried:  # lgpio's reason matters on a Pi; native's says whether this is one
                _reason = "; ".join(dict.fromkeys((tried[0], tried[-1])))
            else:
                _reason = f"gpiozero: {exc}"
            return _reason
    return None


def _require_gpio() -> None:
    reason = gpio_unavailable()
    if reason is not None:
        raise GpioUnavailable(f"GPIO is unavailable here ({reason}); {GPIO_ADVICE}")


def edge_input(pin: int | str, pull_up: bool | None, edges: str,
               callback: Callable[[Any, bool], None],
               active_state: bool | None = None) -> Any:
    """An InputDevice whose raw pin calls ``callback(ticks, level)`` on ``edges``.

    ``callback`` must stay referenced by its owner (a bound method of the driver).
    """
    _require_gpio()
    from gpiozero import InputDevice

    device = InputDevice(pin, pull_up=pull_up, active_state=active_state)
    device.pin.edges = edges
    # gpiozero keeps only a weak reference: hand it the driver's bound method, not a lambda
    device.pin.when_changed = callback
    return device


def output(pin: int | str) -> Any:
    _require_gpio()
    from gpiozero import DigitalOutputDevice

    return DigitalOutputDevice(pin, initial_value=False)


def ticks_diff(later: Any, earlier: Any) -> float:
    from gpiozero import Device

    return float(Device.pin_factory.ticks_diff(later, earlier))
