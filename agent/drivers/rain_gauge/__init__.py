"""Tipping-bucket rain gauge on a GPIO interrupt. See README.md."""

from agent.drivers.rain_gauge.driver import Config, RainGauge

DRIVER = RainGauge
__all__ = ["DRIVER", "Config", "RainGauge"]
