"""SDS011 particulate sensor (PM2.5, PM10) over serial. See README.md."""

from agent.drivers.sds011.driver import Config, Sds011

DRIVER = Sds011
__all__ = ["DRIVER", "Config", "Sds011"]
