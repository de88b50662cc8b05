"""BME280 temperature, humidity and pressure over I2C. See README.md."""

from agent.drivers.bme280.driver import Bme280, Config

DRIVER = Bme280
__all__ = ["DRIVER", "Bme280", "Config"]
