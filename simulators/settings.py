"""The simulator's settings: section ``simulate:`` of kota.yaml, env ``KOTA_SIMULATE__...``.

Built with ``kota.config.load_settings(SimulateSettings, "simulate", config_file, overrides)``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kota.settings import CityName, MqttConnection

__all__ = ["FAULT_TYPES", "FaultSettings", "IntervalSettings", "MqttPublishSettings",
           "SimulateSettings"]

CITIES_DIR = Path(__file__).parent / "cities"
SCENARIOS_DIR = Path(__file__).parent / "scenarios"

# Every fault the simulator can inject; README.md "Fault types" says what each looks like.
FAULT_TYPES = ("dropout", "stuck", "spike", "out_of_range", "clock_skew", "malformed")


class MqttPublishSettings(MqttConnection):
    """The shared connection settings (kota.settings.MqttConnection, TLS included) plus the
    publisher's."""

    client_id: str = Field(default="kota-simulate", min_length=1, max_length=64,
                           description="MQTT client id of the publisher")
    qos: int = Field(default=1, ge=0, le=2, description="QoS of every publish")
    topic_prefix: str = Field(default="kota", pattern=r"^[A-Za-z0-9_-]{1,32}$",
                              description="First topic level: <prefix>/<city>/<kind>/<device>")
    max_inflight: int = Field(default=1000, ge=1, le=65535,
                              description="Unacknowledged QoS>0 messages in flight")
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Give up connecting after")
    drain_timeout_s: float = Field(default=30.0, gt=0,
                                   description="At the end, wait at most this for acknowledgements")


class IntervalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    air: float = Field(default=300, gt=0, description="Simulated seconds between air reports")
    water: float = Field(default=300, gt=0, description="... between water-level reports")
    rain: float = Field(default=300, gt=0, description="... between rain-gauge reports")
    noise: float = Field(default=300, gt=0, description="... between noise (LAeq) reports")
    status: float = Field(default=600, gt=0, description="... between heartbeats")


class FaultSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    share: float = Field(default=0.0, ge=0, le=1,
                         description="Share of messages given a fault (0.02 = 2 %)")
    types: list[str] = Field(default=list(FAULT_TYPES), min_length=1,
                             description="Fault types to draw from: " + ", ".join(FAULT_TYPES))

    @model_validator(mode="after")
    def _known_types(self) -> FaultSettings:
        unknown = sorted(set(self.types) - set(FAULT_TYPES))
        if unknown:
            raise ValueError(f"unknown fault type(s) {', '.join(unknown)}; "
                             f"known: {', '.join(FAULT_TYPES)}")
        return self


class SimulateSettings(BaseModel):
    """Everything ``kota simulate`` needs. Every setting can come from the file or environment."""

    model_config = ConfigDict(extra="forbid")

    mqtt: MqttPublishSettings = Field(default_factory=MqttPublishSettings)
    city: CityName = Field(default="jakarta",
                           description="City folder under simulators/cities/ and the topic's city")
    registry_file: Path | None = Field(
        default=None, description="Device registry; default the city's devices.yaml")
    devices: int | None = Field(
        default=None, ge=1, le=100_000,
        description="Measuring devices (heartbeat twins not counted): fewer than the registry "
                    "takes a subset, more generates extra devices; unset = the registry")
    seed: int = Field(default=1, ge=0, description="Same seed + same start = same messages")
    start: datetime | None = Field(
        default=None, description="Simulated start (RFC 3339 with zone); default: chosen so the "
                                  "simulated window ends when the run ends (never in the future)")
    duration_s: float | None = Field(
        default=None, gt=0, le=366 * 86400,
        description="Simulated seconds to cover; default the scenario's, else 86400")
    speed: float = Field(
        default=60.0, ge=0, le=1_000_000,
        description="Simulated seconds per real second (60: a day in 24 min); 0 = as fast as "
                    "possible, a window ending now")
    live_s: float = Field(
        default=0.0, ge=0, le=366 * 86400,
        description="After the window catches up with the real clock, carry on in real time "
                    "for this many seconds (0 = stop at the end of the window)")
    max_messages: int | None = Field(default=None, ge=1, description="Stop after this many")
    max_rate_per_s: float | None = Field(default=None, gt=0,
                                         description="Cap on published messages per real second")
    intervals_s: IntervalSettings = Field(default_factory=IntervalSettings)
    faults: FaultSettings = Field(default_factory=FaultSettings)
    scenario: str | None = Field(
        default=None, description="Scenario name (simulators/scenarios/<name>.yaml) or file")
    progress_interval_s: float = Field(default=5.0, gt=0,
                                       description="Real seconds between progress lines")

    @model_validator(mode="after")
    def _timezone(self) -> SimulateSettings:
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError("start needs a time zone, e.g. 2026-01-15T00:00:00+07:00")
        return self

    def city_dir(self) -> Path:
        return CITIES_DIR / self.city

    def registry_path(self) -> Path:
        return self.registry_file or self.city_dir() / "devices.yaml"
