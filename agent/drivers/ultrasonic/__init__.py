"""Ultrasonic water level (JSN-SR04T, HC-SR04) on GPIO. See README.md."""

from agent.drivers.ultrasonic.driver import Config, Ultrasonic

DRIVER = Ultrasonic
__all__ = ["DRIVER", "Config", "Ultrasonic"]
