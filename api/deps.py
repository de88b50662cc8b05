"""What routes receive: the settings and services, as ``Annotated`` aliases.

``create_app`` puts one :class:`ApiState` on ``app.state.kota``; routes never build clients.
The dependencies are async: FastAPI runs a sync one in a thread, a hand-off per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from api.auth import Principal, principal_of
from api.params import CityQuery, DeviceQuery, DistrictQuery
from api.problems import TYPE_BASE, ProblemError
from api.services.indicators import IndicatorsService
from api.services.live import LiveCache
from api.services.readings import Filters, ReadingsService
from api.services.snapshot import Snapshot
from api.settings import ApiSettings
from kota.influx import InfluxClient
from kota.registry import Registry
from store.keys import KeyStore

__all__ = [
    "UNREGISTERED",
    "ApiState",
    "FiltersDep",
    "IndicatorsDep",
    "KeysDep",
    "PrincipalDep",
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
    snapshot: Snapshot
    open_streams: int = 0
    districts: frozenset[str] = field(default_factory=frozenset)
    keys: KeyStore | None = None


async def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.kota
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


async def get_settings(state: StateDep) -> ApiSettings:
    return state.settings


async def get_registry(state: StateDep) -> Registry:
    return state.registry


async def get_readings(state: StateDep) -> ReadingsService:
    return state.readings


async def get_indicators(state: StateDep) -> IndicatorsService:
    return state.indicators


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
ReadingsDep = Annotated[ReadingsService, Depends(get_readings)]
IndicatorsDep = Annotated[IndicatorsService, Depends(get_indicators)]


async def get_filters(state: StateDep, city: CityQuery = None, district: DistrictQuery = None,
                device: DeviceQuery = None) -> Filters:
    """City / district / device filters; a district must be one the registry knows."""
    if (district is not None and state.districts and district not in state.districts
            and district != UNREGISTERED):
        raise ProblemError(404, f"unknown district {district!r}; GET /api/v1/devices lists the "
                                "districts of the registered devices",
                           type_=TYPE_BASE + "unknown-district", title="Unknown district")
    return Filters(city=city, district=district, device=device)


FiltersDep = Annotated[Filters, Depends(get_filters)]


async def get_keys(state: StateDep) -> KeyStore:
    if state.keys is None:
        raise ProblemError(503, "the key store is not open", type_=TYPE_BASE + "no-key-store")
    return state.keys


KeysDep = Annotated[KeyStore, Depends(get_keys)]
# Who asks (api/auth.py): the role of their key, or public.
PrincipalDep = Annotated[Principal, Depends(principal_of)]
