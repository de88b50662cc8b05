"""The device registry: which device is where, of which kind (public); adding and
decommissioning devices (admin, ``admin_router``)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.deps import PrincipalDep, RegistryDep, StateDep
from api.params import CityQuery, DeviceIdPath, DistrictQuery, KindQuery
from api.problems import (
    PROBLEM_RESPONSES,
    TYPE_BASE,
    ProblemError,
    ResponsesDoc,
    problem_responses,
)
from api.schemas import DevicePublic
from api.services.snapshot import respond, role_class
from kota.registry import DEVICE_ID_PATTERN, Device
from store.devices import DeviceInfo, Provisioned, ProvisioningError, device_problems

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("", response_model=list[DevicePublic], summary="Registered devices",
            responses={422: PROBLEM_RESPONSES[422],
                       304: {"description": "Not modified (If-None-Match)"}})
async def list_devices(request: Request, state: StateDep, kind: KindQuery = None,
                       city: CityQuery = None, district: DistrictQuery = None) -> Response:
    """Devices of the registry, optionally of one kind, city or district (kecamatan); encoded
    once per registry change, with an ETag and `Cache-Control`."""
    role = role_class(request)
    encoded = state.snapshot.devices(state.registry, kind, city, district, role)
    return respond(request, encoded, role, state.settings.snapshot_interval_s,
                   state.settings.stale_while_revalidate_s)


@router.get("/{device_id}", response_model=DevicePublic, summary="One device",
            responses={404: PROBLEM_RESPONSES[404], 422: PROBLEM_RESPONSES[422]})
async def get_device(device_id: DeviceIdPath, registry: RegistryDep) -> DevicePublic:
    device = registry.get(device_id)
    if device is None:
        raise ProblemError(404, f"no device {device_id!r} in the registry",
                           type_=TYPE_BASE + "unknown-device", title="Unknown device")
    return DevicePublic.of(device)


# -- provisioning, for admins (the same as `kota devices`; docs/security.md) ------------------
admin_router = APIRouter(prefix="/devices", tags=["devices"])
# 409 (already registered) and 502 (the broker refused) are problems too.
_PROVISIONING_RESPONSES: ResponsesDoc = {status: {**PROBLEM_RESPONSES[404],
                                    "description": HTTPStatus(status).phrase}
                           for status in (409, 502)}


class Provisioner(Protocol):
    """What the routes need of store.devices.Provisioner (app.state.provisioner)."""

    def add(self, device: Device, created_by: str) -> Provisioned: ...
    def decommission(self, device_id: str) -> DeviceInfo: ...


def get_provisioner(request: Request) -> Provisioner:
    provisioner: Provisioner | None = getattr(request.app.state, "provisioner", None)
    if provisioner is None:
        raise ProblemError(503, "device provisioning is off: api.registry_file is not set",
                           type_=TYPE_BASE + "no-provisioning")
    return provisioner


ProvisionerDep = Annotated[Provisioner, Depends(get_provisioner)]


class DeviceCreate(BaseModel):
    """A registry entry (docs/protocol.md); ``params`` are those of its kind."""

    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    kind: str
    city: str
    district: str = Field(description="Kecamatan")
    district_code: str = Field(default="", description="Its Kemendagri code (kode wilayah, "
                                                       "e.g. 32.71.02); default: the one "
                                                       "kota/regions gives the district")
    kelurahan: str = ""
    lat: float
    lon: float
    name: str = ""
    params: dict[str, float | str] = Field(default_factory=dict)


class DeviceProvisioned(BaseModel):
    device: DevicePublic
    password: str = Field(description="The device's broker password: shown this once, the "
                                      "broker keeps only its hash")
    topics: list[str] = Field(description="What the device may publish to")
    agent_config: str = Field(description="kota-agent config (TOML) with the password")


class DeviceDecommissioned(BaseModel):
    device_id: str
    status: str
    decommissioned_at: datetime | None


def _problem(exc: ProvisioningError) -> ProblemError:
    return ProblemError(exc.status, str(exc), type_=TYPE_BASE + "provisioning",
                        title="Device not provisioned")


@admin_router.post("", response_model=DeviceProvisioned, status_code=201,
                   summary="Register a device and make its broker account",
                   responses={**problem_responses(422, 503),
                                              **_PROVISIONING_RESPONSES})
async def add_device(body: DeviceCreate, request: Request, provisioner: ProvisionerDep,
                     principal: PrincipalDep) -> DeviceProvisioned:
    """Adds the device to the registry (the services see it within seconds) and creates its
    broker account through the dynamic-security plugin; answers its password once and the
    kota-agent config."""
    try:
        device = Device.model_validate(body.model_dump())
    except ValidationError as exc:
        raise ProblemError(422, device_problems(exc), title="Invalid device") from None
    try:
        done = await asyncio.to_thread(provisioner.add, device, f"api:{principal.label}")
    except ProvisioningError as exc:
        raise _problem(exc) from None
    _reload(request)
    return DeviceProvisioned(device=DevicePublic.of(done.info.device), password=done.password,
                             topics=list(done.topics), agent_config=done.agent_config)


@admin_router.delete("/{device_id}", response_model=DeviceDecommissioned,
                     summary="Decommission a device: its broker account is removed",
                     responses={**problem_responses(404, 503),
                                                **_PROVISIONING_RESPONSES})
async def decommission_device(device_id: DeviceIdPath, request: Request,
                              provisioner: ProvisionerDep) -> DeviceDecommissioned:
    try:
        info = await asyncio.to_thread(provisioner.decommission, device_id)
    except ProvisioningError as exc:
        raise _problem(exc) from None
    _reload(request)
    return DeviceDecommissioned(device_id=device_id, status=info.status,
                                decommissioned_at=info.decommissioned_at)


def _reload(request: Request) -> None:
    """This process sees its own change now, not at the next check."""
    watcher = getattr(request.app.state, "registry_watcher", None)
    if watcher is not None:
        watcher.check()
