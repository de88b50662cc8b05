"""Panic button, PIR and other contact events on GPIO → safety events. See README.md."""

from agent.drivers.gpio_event.driver import Config, GpioEvent

DRIVER = GpioEvent
__all__ = ["DRIVER", "Config", "GpioEvent"]
