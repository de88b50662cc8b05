"""PMS5003 / PMS7003 particulate sensor (PM1, PM2.5, PM10) over serial. See README.md."""

from agent.drivers.pms5003.driver import Config, Pms5003

DRIVER = Pms5003
__all__ = ["DRIVER", "Config", "Pms5003"]
