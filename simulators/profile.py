"""Typed models of a city's simulation data: ``profile.yaml`` (signal parameters) and
``rivers.yaml`` (gauge model). Loading validates; errors name the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kota.config import line_numbers, yaml_problem

__all__ = [
    "AirProfile",
    "CityProfile",
    "DataFileError",
    "GaugeModel",
    "NoiseProfile",
    "RainProfile",
    "RiverModel",
    "SafetyProfile",
    "StatusProfile",
    "load_yaml_model",
]

Range = tuple[float, float]


class DataFileError(ValueError):
    """A simulator data file (profile, rivers, scenario) is invalid; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AirProfile(_Strict):
    pm25_background_ugm3: float = Field(gt=0)
    pm25_noise_sigma: float = Field(ge=0)
    pm25_noise_memory: float = Field(ge=0, lt=1)
    pm10_per_pm25: Range
    pm1_per_pm25: float = Field(gt=0, le=1)
    zone_factor: dict[str, float]
    rush_hours_local: Range
    rush_width_h: Range
    rush_amplitude: Range
    traffic_base_factor: float = Field(gt=0)
    night_accumulation: float
    night_peak_hour_local: float
    night_width_h: float = Field(gt=0)
    midday_dip: float
    midday_dip_hour_local: float
    midday_dip_width_h: float = Field(gt=0)
    weekend_factor: float = Field(gt=0)
    rain_washout_per_mm_h: float = Field(ge=0)
    haze_episodes_per_day: float = Field(ge=0)
    haze_duration_h: Range
    haze_factor: Range
    no2_traffic_ugm3: float
    co_traffic_ugm3: float
    so2_background_ugm3: float
    o3_base_ugm3: float
    o3_photochemical_ugm3: float
    hc_background_ugm3: float
    temperature_min_degc: float
    temperature_max_degc: float
    temperature_min_hour_local: float
    temperature_max_hour_local: float
    rain_cooling_degc_per_mm_h: float
    humidity_max_pct: float
    humidity_min_pct: float
    humidity_rain_extra_max_pct: float = Field(ge=0)
    humidity_sigma_pct: float = Field(ge=0)
    pressure_mean_hpa: float
    pressure_semidiurnal_hpa: float
    pressure_peak_hour_local: float


class NoiseProfile(_Strict):
    day_laeq_dba: dict[str, float]
    night_laeq_dba: dict[str, float]
    day_start_hour_local: float
    day_end_hour_local: float
    ramp_h: float = Field(gt=0)
    rush_extra_dba: float
    weekend_offset_dba: float
    rain_extra_dba_per_mm_h: float
    sigma_dba: float = Field(ge=0)
    lamax_over_laeq_dba: Range


class RainProfile(_Strict):
    domain_lat: Range
    domain_lon: Range
    cells_per_day: float = Field(ge=0)
    month_factor: list[float] = Field(min_length=12, max_length=12)
    peak_hour_local: float
    hour_spread_h: float = Field(gt=0)
    south_bias: float = Field(ge=0, le=1)
    radius_km: Range
    peak_mm_h: Range
    lifetime_h: Range
    speed_kmh: Range
    heading_deg: Range


class StatusProfile(_Strict):
    interval_note: str = ""
    battery_start_pct: Range
    drain_pct_per_h: Range
    solar_charge_pct_per_h: float
    overcast_rain_mm_h: float = Field(gt=0)
    overcast_charge_loss: float = Field(ge=0, le=1)
    solar_powered_kinds: list[str]
    rssi_mean_dbm: Range
    rssi_sigma_dbm: float
    cpu_temp_over_air_degc: Range
    firmware: list[str] = Field(min_length=1)
    reboot_per_day: float = Field(ge=0)


class SafetyDeviceProfile(_Strict):
    rate_per_day: float = Field(ge=0)
    events: dict[str, float] = Field(min_length=1)


class SafetyProfile(_Strict):
    profiles: dict[str, SafetyDeviceProfile]
    hour_factor_night: float
    hour_factor_day: float
    hour_factor_evening: float
    night_end_hour_local: float = Field(ge=0, le=24)
    evening_hours_local: Range
    burst_probability: float = Field(ge=0, le=1)
    burst_size: Range
    burst_gap_min: Range


class CityProfile(_Strict):
    utc_offset_h: float
    air: AirProfile
    noise: NoiseProfile
    rain: RainProfile
    status: StatusProfile
    safety: SafetyProfile


class Contribution(_Strict):
    catchment: str
    lag_h: float = Field(ge=0)
    peak_h: float = Field(gt=0)
    gain_cm_per_mm_h: float


class GaugeModel(_Strict):
    base_level_cm: float
    tide_amplitude_cm: float = 0.0
    tide_period_h: float = 12.42
    contributions: list[Contribution] = Field(default_factory=list)


class RiverModel(_Strict):
    step_min: float = Field(gt=0, le=60)
    spin_up_h: float = Field(ge=0)
    catchments: dict[str, list[tuple[float, float]]]
    gauges: dict[str, GaugeModel]


Model = TypeVar("Model", bound=BaseModel)


def load_yaml_model(model: type[Model], path: Path, data: Any = None) -> Model:
    """Validate a YAML file (or already-parsed ``data`` from it) against ``model``.

    Errors become one DataFileError naming the file, the dotted key and, where known, the line.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if data is None:
        if not path.exists():
            raise DataFileError(f"{path}: file not found")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DataFileError(yaml_problem(path, exc)) from None
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        lines = _key_lines(text)
        problems = []
        for error in exc.errors():
            loc = tuple(str(part) for part in error["loc"])
            line = _nearest_line(lines, loc)
            where = f" (line {line})" if line else ""
            problems.append(f"  {'.'.join(loc) or '(top)'}{where}: {error['msg']}")
        raise DataFileError(f"{path}: invalid {model.__name__}:\n" + "\n".join(problems)) from None


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    if not text:
        return {}
    try:
        return line_numbers(text)
    except yaml.YAMLError:
        return {}


def _nearest_line(lines: dict[tuple[str, ...], int], loc: tuple[str, ...]) -> int | None:
    # A discriminated union adds the tag to the path (events.0.haze.factor): drop parts until found.
    for cut in range(len(loc), 0, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
        stripped = tuple(p for i, p in enumerate(loc[:cut]) if not (i and loc[i - 1].isdigit()))
        if stripped in lines:
            return lines[stripped]
    return None
