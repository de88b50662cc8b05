"""The driver registry: one line per driver folder. To add a driver, copy a sibling folder
(``driver.py``, ``__init__.py``, ``README.md``, ``sample.conf``) and add it to ``DRIVERS``.

``sample.conf`` is TOML (one ``[[sensor]]`` table); the ``.conf`` name is what the package data
of pyproject.toml ships, so ``kota-agent sample-config`` works from an installed wheel too.

Each entry maps the ``driver = "…"`` value of a ``[[sensor]]`` table to the folder's module,
which exports ``Config`` (its pydantic model, ``driver: Literal["<name>"]``) and ``DRIVER``
(the class built from that config; see ``base.Driver`` for the contract).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

from pydantic import Field

from agent.drivers import (
    bme280,
    command,
    dht22,
    gpio_event,
    pms5003,
    rain_gauge,
    sds011,
    sound,
    ultrasonic,
)
from agent.drivers.base import Driver, Reading, SensorConfig, SensorError

__all__ = ["DRIVERS", "DRIVERS_DIR", "GPIO_DRIVERS", "Driver", "Reading", "SensorConfig",
           "SensorConfigs", "SensorError", "build", "kind_of", "published_fields"]

DRIVERS_DIR = Path(__file__).parent

DRIVERS: dict[str, ModuleType] = {
    "sds011": sds011,
    "pms5003": pms5003,
    "bme280": bme280,
    "dht22": dht22,
    "ultrasonic": ultrasonic,
    "rain_gauge": rain_gauge,
    "sound": sound,
    "gpio_event": gpio_event,
    "command": command,
}

# The drivers that need gpiozero and a pin library (lgpio on the Pi): without them, these
# sensors cannot be read (`kota-agent check` says so in one line).
GPIO_DRIVERS = frozenset({"gpio_event", "rain_gauge", "ultrasonic"})

SensorConfigs = Annotated[
    sds011.Config | pms5003.Config | bme280.Config | dht22.Config | ultrasonic.Config
    | rain_gauge.Config | sound.Config | gpio_event.Config | command.Config,
    Field(discriminator="driver"),
]


def build(config: SensorConfig) -> Driver:
    """The driver object for one validated ``[[sensor]]`` table (not opened yet)."""
    driver: Driver = DRIVERS[config.driver].DRIVER(config)
    return driver


def kind_of(config: Any) -> str:
    """The platform kind a sensor's readings go to."""
    explicit = getattr(config, "kind", None)
    if isinstance(explicit, str):
        return explicit
    kind: str = DRIVERS[config.driver].DRIVER.kind
    return kind


def published_fields(config: Any) -> set[str]:
    """The fields a sensor writes into its device's series: its driver's ``published_fields``
    if it has one (fields depend on the config, or readings are separate events), else the
    keys of the driver's ``limits``. Two sensors of one device must not share one."""
    driver = DRIVERS[config.driver].DRIVER
    custom = getattr(driver, "published_fields", None)
    if custom is not None:
        return set(custom(config))
    return set(getattr(driver, "limits", {}))
