"""Reference tables as data: ISPU, US AQI, BMKG rain, Siaga gauges, noise limits, air standards.

Each ``*.yaml`` file in this folder is loaded into a typed model (``_models.py``); every number
carries its source and a confidence (✅/⚠️/❌, see :class:`Confidence`). The loaders take an
optional path so a deployment can ship its own copy (a revised gauge threshold, another city's
gauges); without one they read the copy shipped here, once. Errors name the file, the key and
its line.

Top-level keys that start with ``_`` are ignored: they hold YAML anchors shared by entries.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from kota.config import line_numbers, yaml_problem
from kota.standards._models import (
    AirQualityStandard,
    AirQualityStandards,
    AqiBand,
    AqiCategory,
    AqiCombine,
    AqiConversion,
    AqiNowcast,
    AqiPollutant,
    AqiTables,
    AveragingRule,
    Confidence,
    GaugeTable,
    GaugeThresholds,
    IspuCategory,
    IspuHealth,
    IspuParameter,
    IspuRounding,
    IspuTable,
    NoiseStandard,
    NoiseZone,
    ObservationDay,
    RainCategorySpec,
    RainScale,
    RainTables,
    ReachedAtEqual,
    SiagaThreshold,
    TravelTime,
)

__all__ = [
    "STANDARDS_DIR",
    "AirQualityStandard",
    "AirQualityStandards",
    "AqiBand",
    "AqiCategory",
    "AqiCombine",
    "AqiConversion",
    "AqiNowcast",
    "AqiPollutant",
    "AqiTables",
    "AveragingRule",
    "Confidence",
    "GaugeTable",
    "GaugeThresholds",
    "IspuCategory",
    "IspuHealth",
    "IspuParameter",
    "IspuRounding",
    "IspuTable",
    "NoiseStandard",
    "NoiseZone",
    "ObservationDay",
    "RainCategorySpec",
    "RainScale",
    "RainTables",
    "ReachedAtEqual",
    "SiagaThreshold",
    "StandardsError",
    "TravelTime",
    "load_air_quality_standards",
    "load_aqi_tables",
    "load_gauges_table",
    "load_ispu_table",
    "load_noise_standard",
    "load_rain_tables",
    "load_standard",
]

STANDARDS_DIR = Path(__file__).parent

Model = TypeVar("Model", bound=BaseModel)


class StandardsError(ValueError):
    """A reference table that cannot be used. The message names the file, the key and the line."""


def load_standard(model: type[Model], path: str | Path) -> Model:
    """Load and validate one reference file into ``model``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StandardsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
        lines = line_numbers(text)
    except yaml.YAMLError as exc:
        raise StandardsError(yaml_problem(path, exc)) from None
    if not isinstance(document, dict):
        raise StandardsError(f"{path}: expected a mapping at the top level")
    document = {key: value for key, value in document.items() if not str(key).startswith("_")}
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(str(part) for part in error["loc"])
            # Pydantic appends the union member or validator name to some locations; find the
            # longest prefix that is a real key so the line number points at it.
            line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines),
                        None)
            where = f"{path}:{line}" if line else str(path)
            problems.append(f"  {'.'.join(loc) or '(top level)'} ({where}): {error['msg']}")
        raise StandardsError(f"{path}: invalid {model.__name__}:\n" + "\n".join(problems)) from None


def _default(name: str) -> Path:
    return STANDARDS_DIR / name


@lru_cache(maxsize=8)
def _cached(model: type[BaseModel], path: Path) -> BaseModel:
    return load_standard(model, path)


def _load(model: type[Model], name: str, path: str | Path | None) -> Model:
    if path is not None:
        return load_standard(model, path)
    loaded = _cached(model, _default(name))
    assert isinstance(loaded, model)
    return loaded


def load_ispu_table(path: str | Path | None = None) -> IspuTable:
    """ISPU breakpoints, categories and averaging rules (``ispu.yaml``)."""
    return _load(IspuTable, "ispu.yaml", path)


def load_aqi_tables(path: str | Path | None = None) -> AqiTables:
    """US EPA AQI tables (PM2.5 2024, PM10, O3, CO, NO2, SO2), the ppm/ppb conversion, the
    NowCast and the EPA colours (``aqi_us.yaml``)."""
    return _load(AqiTables, "aqi_us.yaml", path)


def load_rain_tables(path: str | Path | None = None) -> RainTables:
    """BMKG hourly and daily rainfall categories (``bmkg_rain.yaml``)."""
    return _load(RainTables, "bmkg_rain.yaml", path)


def load_gauges_table(path: str | Path | None = None) -> GaugeTable:
    """Siaga thresholds of the Jakarta gauges, the status names and the travel times between
    gauges (``gauges.yaml``)."""
    return _load(GaugeTable, "gauges.yaml", path)


def load_noise_standard(path: str | Path | None = None) -> NoiseStandard:
    """Noise limits per zone and the day/night periods, Kepmen LH 48/1996 (``noise.yaml``)."""
    return _load(NoiseStandard, "noise.yaml", path)


def load_air_quality_standards(path: str | Path | None = None) -> AirQualityStandards:
    """National standard and WHO guideline concentrations (``air_quality_standards.yaml``)."""
    return _load(AirQualityStandards, "air_quality_standards.yaml", path)
