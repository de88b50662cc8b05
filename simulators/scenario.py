"""Scenario files: scripted weather, haze and incidents on top of the city's normal life.

A scenario is YAML with ``name``, ``description``, an optional ``duration_h`` and a list of
``events``, each with a ``type`` and times in hours after the simulated start (see README.md).
Validated by :class:`Scenario`; errors name the file, the key and its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from kota.kinds import KINDS
from simulators.profile import DataFileError, load_yaml_model
from simulators.settings import SCENARIOS_DIR

__all__ = ["HazeEvent", "OutageEvent", "RainCellEvent", "RainRateEvent", "SafetyBurstEvent",
           "Scenario", "ScenarioEvent", "load_scenario", "scenario_names"]

SAFETY_EVENTS = tuple(KINDS["safety"].spec.tags["event"].values)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at_h: float = Field(ge=0, description="Start, hours after the simulated start")
    duration_h: float = Field(gt=0, description="How long it lasts, hours")

    def active(self, hours: float) -> bool:
        return self.at_h <= hours < self.at_h + self.duration_h


class RainCellEvent(_Event):
    """One storm cell: a Gaussian blob of rain that drifts across the map."""

    type: Literal["rain_cell"]
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_km: float = Field(gt=0, le=200)
    peak_mm_h: float = Field(gt=0, le=300)
    heading_deg: float = Field(default=0, ge=0, lt=360, description="Direction of motion")
    speed_kmh: float = Field(default=0, ge=0, le=150)


class RainRateEvent(_Event):
    """Scale how often random storm cells form (0 = a dry spell)."""

    type: Literal["rain_rate"]
    factor: float = Field(ge=0, le=20)


class HazeEvent(_Event):
    """A haze episode: PM (and gases) multiplied by ``pm_factor`` with ``ramp_h`` at each end."""

    type: Literal["haze"]
    pm_factor: float = Field(gt=0, le=20)
    ramp_h: float = Field(default=6, ge=0)


class SafetyBurstEvent(_Event):
    """Extra safety events of one category from devices in the listed districts (all if empty)."""

    type: Literal["safety_burst"]
    event: Literal[SAFETY_EVENTS]  # type: ignore[valid-type]
    rate_per_h: float = Field(gt=0, le=3600, description="Events per hour over all devices")
    districts: list[str] = Field(default_factory=list)


class OutageEvent(_Event):
    """Devices go silent (power or network cut): their messages are dropped, seq keeps counting."""

    type: Literal["outage"]
    districts: list[str] = Field(default_factory=list, description="Empty = every district")
    kinds: list[str] = Field(default_factory=list, description="Empty = every kind")


ScenarioEvent = Annotated[
    RainCellEvent | RainRateEvent | HazeEvent | SafetyBurstEvent | OutageEvent,
    Field(discriminator="type"),
]


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    description: str = ""
    duration_h: float | None = Field(default=None, gt=0, le=366 * 24,
                                     description="Simulated hours the scenario is written for")
    events: list[ScenarioEvent] = Field(default_factory=list)

    def of_type(self, event_type: type[_Event]) -> list[_Event]:
        return [event for event in self.events if isinstance(event, event_type)]


def scenario_names() -> list[str]:
    """Names of the scenarios shipped in simulators/scenarios/."""
    return sorted(path.stem for path in SCENARIOS_DIR.glob("*.yaml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name (``banjir-ciliwung``) or any YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = SCENARIOS_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise DataFileError(f"no scenario {name_or_path!r}; shipped: "
                                f"{', '.join(scenario_names())} (or give a file path)")
    return load_yaml_model(Scenario, path)
