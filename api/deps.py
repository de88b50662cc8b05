"""What routes receive: the settings and services, as ``Annotated`` aliases.

``create_app`` puts one :class:`ApiState` on ``app.state.kota``; routes never build clients.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from api.params import CityQuery, DeviceQuery, DistrictQuery
from api.problems import TYPE_BASE, ProblemError
from api.services.indicators import IndicatorsService
from api.services.live import LiveCache
from api.services.readings import Filters, ReadingsService
from api.settings import ApiSettings
from kota.influx import InfluxClient
from kota.registry import Registry

__all__ = [
    "UNREGISTERED",
    "ApiState",
    "FiltersDep",
    "IndicatorsDep",
    "ReadingsDep",
    "RegistryDep",
    "SettingsDep",
    "StateDep",
]


# The district ingest gives a device missing from the registry (docs/protocol.md).
UNREGISTERED = "unregistered"


@dataclass
class ApiState:
    settings: ApiSettings
    influx: InfluxClient
    registry: Registry
    readings: ReadingsService
    indicators: IndicatorsService
    live: LiveCache
    open_streams: int = 0
    # Admissions not yet started (monotonic times): a stream is admitted in the route but
    # counted as open only once its generator runs, so simultaneous connects could overshoot
    # the limit without these. One that never starts (the client left) expires.
    stream_admissions: deque[float] = field(default_factory=deque)
    districts: frozenset[str] = field(default_factory=frozenset)

    def admit_stream(self, max_streams: int, now: float, expiry_s: float = 10.0) -> bool:
        """Reserve a place for a new stream; False when ``max_streams`` are open or admitted."""
        while self.stream_admissions and now - self.stream_admissions[0] > expiry_s:
            self.stream_admissions.popleft()
        if self.open_streams + len(self.stream_admissions) >= max_streams:
            return False
        self.stream_admissions.append(now)
        return True

    def stream_started(self) -> None:
        """An admitted stream runs: its reservation becomes an open stream."""
        if self.stream_admissions:
            self.stream_admissions.popleft()
        self.open_streams += 1


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.kota
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


def get_settings(state: StateDep) -> ApiSettings:
    return state.settings


def get_registry(state: StateDep) -> Registry:
    return state.registry


def get_readings(state: StateDep) -> ReadingsService:
    return state.readings


def get_indicators(state: StateDep) -> IndicatorsService:
    return state.indicators


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
ReadingsDep = Annotated[ReadingsService, Depends(get_readings)]
IndicatorsDep = Annotated[IndicatorsService, Depends(get_indicators)]


def get_filters(state: StateDep, city: CityQuery = None, district: DistrictQuery = None,
                device: DeviceQuery = None) -> Filters:
    """City / district / device filters; a district must be one the registry knows."""
    if (district is not None and state.districts and district not in state.districts
            and district != UNREGISTERED):
        raise ProblemError(404, f"unknown district {district!r}; GET /api/v1/devices lists the "
                                "districts of the registered devices",
                           type_=TYPE_BASE + "unknown-district", title="Unknown district")
    return Filters(city=city, district=district, device=device)


FiltersDep = Annotated[Filters, Depends(get_filters)]
