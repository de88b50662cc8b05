"""DHT22 / AM2302 through the kernel's dht11 IIO driver. See README.md."""

from agent.drivers.dht22.driver import Config, Dht22

DRIVER = Dht22
__all__ = ["DRIVER", "Config", "Dht22"]
