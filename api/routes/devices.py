"""The device registry: which device is where, of which kind."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import RegistryDep
from api.params import CityQuery, DeviceIdPath, DistrictQuery, KindQuery
from api.problems import PROBLEM_RESPONSES, TYPE_BASE, ProblemError
from api.schemas import DevicePublic

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("", response_model=list[DevicePublic], summary="Registered devices",
            responses={422: PROBLEM_RESPONSES[422]})
async def list_devices(registry: RegistryDep, kind: KindQuery = None, city: CityQuery = None,
                       district: DistrictQuery = None) -> list[DevicePublic]:
    """Devices of the registry, optionally of one kind, city or district (kecamatan)."""
    return [DevicePublic.of(d) for d in registry
            if (kind is None or d.kind == kind) and (city is None or d.city == city)
            and (district is None or d.district == district)]


@router.get("/{device_id}", response_model=DevicePublic, summary="One device",
            responses={404: PROBLEM_RESPONSES[404], 422: PROBLEM_RESPONSES[422]})
async def get_device(device_id: DeviceIdPath, registry: RegistryDep) -> DevicePublic:
    device = registry.get(device_id)
    if device is None:
        raise ProblemError(404, f"no device {device_id!r} in the registry",
                           type_=TYPE_BASE + "unknown-device", title="Unknown device")
    return DevicePublic.of(device)
