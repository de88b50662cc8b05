"""The indicator service's settings: section ``indicators:`` of kota.yaml, env
``KOTA_INDICATORS__...``.

Index tables, averaging periods, noise periods and ambient standards are kota/standards' (with
their sources); here are only the service's own rules: windows, completeness of a day, catch-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kota.influx import InfluxSettings
from kota.settings import CityName, LoggingSettings
from store.settings import DatabaseSettings

WindowName = Literal["1m", "1h", "1d"]

DATA_DIR = Path(__file__).resolve().parent / "data"

class AirSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_hours_per_day: int = Field(
        default=18, ge=1, le=24,
        description="Hourly means needed for a valid daily mean (75 %, a common convention)")
    live_min_hours: int = Field(
        default=18, ge=1, le=24,
        description="Hours with data for a station or gauge to count as live for a day")
    annual_days: int = Field(
        default=365, ge=2, le=366,
        description="Days the annual means of city_indicators average over (the local day and "
                    "the days before it); ISO 37120 reports a year's mean of daily means")
    annual_min_valid_share: float = Field(
        default=0.75, gt=0, le=1,
        description="Share of annual_days with a valid daily mean for a complete annual mean "
                    "(75 %, the same convention as min_hours_per_day; ISO 37120 sets none)")


class SiagaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_age_s: float = Field(default=900, gt=0,
                             description="Oldest reading a 1-minute status may use")
    rise_window_s: float = Field(default=3600, gt=0,
                                 description="Span of readings the rate of rise is fitted over")


class RainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_hours_per_day: int = Field(default=18, ge=1, le=24,
                                   description="Hours with reports for a valid daily category")


class NoiseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_hours_per_day: int = Field(default=18, ge=1, le=24,
                                   description="Hours with readings for a complete day")


class UptimeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slot_s: int = Field(default=900, ge=60, le=86400,
                        description="A device is up in a slot with at least one heartbeat; "
                                    "longer than the heartbeat interval (600 s in the simulator)")
    status_suffix: str = Field(default="-status",
                               description="Heartbeat device id = measuring device id + suffix")


class SafetySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    incident_open_horizon_h: float = Field(
        default=24, gt=0, le=24 * 31,
        description="An unresolved incident counts as open for this long after its first "
                    "event, then as stale (an event without incident_id can never be resolved)")
    incident_lookback_h: float = Field(
        default=168, gt=0, le=24 * 92,
        description="How far back from a window end safety events are read to find incidents "
                    "(stale ones older than this are no longer counted); >= the open horizon")
    response_target_min: float = Field(
        default=15, gt=0, le=24 * 60,
        description="Target for the time from an incident's first event to its resolution: "
                    "15 min is the fire service's SPM (Permendagri 114/2018: response to a fire "
                    "report within 15 minutes)")


_DURATION = r"^[1-9][0-9]{0,5}(s|m|h|d|w)$"


class RollupSettings(BaseModel):
    """``kota indicators rollup``: hourly roll-ups kept by InfluxDB 1.x continuous queries."""

    model_config = ConfigDict(extra="forbid")

    file: Path = Field(default=Path(__file__).resolve().parent / "rollups.yaml",
                       description="Measurement -> field -> aggregates (YAML)")
    retention_policy: str = Field(default="kota_1h", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
                                  description="Retention policy the roll-ups are written to")
    retention: str = Field(default="INF", pattern=r"^(INF|[1-9][0-9]{0,5}(m|h|d|w))$",
                           description="How long roll-ups are kept (e.g. 520w); INF: forever")
    interval: str = Field(default="1h", pattern=_DURATION, description="Roll-up bucket")
    every: str = Field(default="15m", pattern=_DURATION,
                       description="How often each continuous query runs (RESAMPLE EVERY)")
    resample_for: str = Field(default="3h", pattern=_DURATION,
                              description="Span each run recomputes (RESAMPLE FOR): late "
                                          "readings within it are rolled up too")


class IndicatorSettings(LoggingSettings):
    """Everything ``kota indicators`` needs. Every setting can come from the file or environment."""

    model_config = ConfigDict(extra="forbid")

    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    windows: list[WindowName] = Field(default=["1m", "1h", "1d"], min_length=1,
                                      description="Window lengths to compute")
    timezone: str = Field(default="Asia/Jakarta",
                          description="Local time for day windows and day/night noise periods")
    lateness_s: float = Field(default=120, ge=0, le=3600,
                              description="A window is computed this long after it closes")
    interval_s: float = Field(default=15, gt=0, le=3600,
                              description="How often the service looks for closed windows")
    catch_up_horizon_h: float = Field(default=48, gt=0, le=24 * 31,
                                      description="Furthest back missed windows are recomputed")
    minute_catch_up: int = Field(default=180, ge=1, le=10_000,
                                 description="Most 1-minute windows recomputed after downtime")
    refresh_h: float = Field(
        default=0, ge=0, le=24 * 7,
        description="Also recompute hour and day windows that started in the last refresh_h "
                    "hours, for readings that arrive late (device backlogs); 0: off")
    refresh_interval_s: float = Field(default=300, gt=0,
                                      description="How often that refresh runs")
    registry_file: Path | None = Field(default=None,
                                       description="Device registry (gauge ids, zones, kinds)")
    registry_reload_s: float = Field(
        default=2.0, ge=0, le=3600,
        description="Seconds between checks of registry_file for changes (kota devices "
                    "rewrites it); a changed file is reloaded without a restart; 0: never")
    gauges_file: Path | None = Field(
        default=None, description="Siaga thresholds per gauge; empty: kota.indices.siaga's own")
    districts_file: Path = Field(default=DATA_DIR / "jakarta" / "districts.csv",
                                 description="District areas and populations (CSV)")
    city: CityName | None = Field(default=None,
                                  description="Only this city's points; empty: every city")
    air: AirSettings = Field(default_factory=AirSettings)
    siaga: SiagaSettings = Field(default_factory=SiagaSettings)
    rain: RainSettings = Field(default_factory=RainSettings)
    noise: NoiseSettings = Field(default_factory=NoiseSettings)
    uptime: UptimeSettings = Field(default_factory=UptimeSettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    rollup: RollupSettings = Field(default_factory=RollupSettings)
    database: DatabaseSettings | None = Field(
        default=None,
        description="The alert service's database (alerts.database), read for the alert "
                    "coverage of city_indicators (confirmed subscriptions); empty: no coverage")
    write_batch_points: int = Field(default=5000, ge=1, le=100_000,
                                    description="Points per InfluxDB write")
    metrics_host: str = Field(default="127.0.0.1", description="Prometheus /metrics address")
    metrics_port: int = Field(default=9110, ge=0, le=65535, description="0 turns /metrics off")

    @field_validator("influx")
    @classmethod
    def _no_placeholders(cls, influx: InfluxSettings) -> InfluxSettings:
        # .env.example's "change-me" values must not reach a running service (issue 10).
        for name, secret in (("token", influx.token), ("password", influx.password)):
            if secret is not None and "change-me" in secret.get_secret_value():
                raise ValueError(f"influx.{name} is still the change-me placeholder: set a "
                                 f"real one")
        return influx

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _incident_lookback(self) -> IndicatorSettings:
        if self.safety.incident_lookback_h < self.safety.incident_open_horizon_h:
            raise ValueError("safety.incident_lookback_h must be >= "
                             "safety.incident_open_horizon_h")
        return self

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
