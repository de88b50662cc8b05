"""A simulated city: its kecamatan, its device registry (plus generated extra devices and the
heartbeat twins), and its signal parameters. Everything comes from ``simulators/cities/<city>/``."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from kota.registry import Device, Registry, RegistryError
from simulators.models.common import derive_rng
from simulators.profile import CityProfile, DataFileError, RiverModel, load_yaml_model

__all__ = ["STATUS_SUFFIX", "City", "District", "load_city", "load_districts", "status_twin_id"]

STATUS_SUFFIX = "-status"
# Zones an extra generated device is given, per kind (values from the kinds' registry_extras).
_EXTRA_ZONES = {"air": ("residential", "residential", "commercial", "roadside", "industrial"),
                "noise": ("residential", "residential", "commercial", "school", "hospital",
                          "industrial")}
_EXTRA_SAFETY_PROFILES = ("panic", "smoke", "crowd", "cctv")
_EXTRA_SPREAD_DEG = 0.012  # extra devices scatter ~1.3 km around the kecamatan centroid


@dataclass(frozen=True, slots=True)
class District:
    kecamatan: str
    kota_administrasi: str
    lat: float
    lon: float


def status_twin_id(device_id: str) -> str:
    return device_id + STATUS_SUFFIX


def load_districts(path: Path) -> list[District]:
    if not path.exists():
        raise DataFileError(f"{path}: file not found")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    districts = []
    for number, row in enumerate(rows, start=2):
        try:
            districts.append(District(row["kecamatan"], row["kota_administrasi"],
                                      float(row["lat"]), float(row["lon"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataFileError(f"{path}:{number}: bad row {row}: {exc}") from None
    return districts


@dataclass(frozen=True)
class City:
    name: str
    districts: list[District]
    devices: list[Device]          # measuring devices, in a stable order
    heartbeats: dict[str, Device]  # measuring device id -> its status twin
    profile: CityProfile
    rivers: RiverModel

    def registry(self) -> Registry:
        """Everything that publishes: for ``kota ingest`` (see ``--write-registry``)."""
        return Registry([*self.devices, *self.heartbeats.values()])


def load_city(city_dir: Path, registry_path: Path, *, devices: int | None = None,
              seed: int = 0) -> City:
    """Load a city folder; ``devices`` picks a subset of the registry or adds generated ones."""
    name = city_dir.name
    try:
        registry = Registry.load(registry_path)
    except RegistryError as exc:
        raise DataFileError(str(exc)) from None
    measuring = [d for d in registry if d.kind != "status"]
    by_id = {d.device_id: d for d in registry}
    districts = load_districts(city_dir / "districts.csv")
    if devices is not None and devices < len(measuring):
        measuring = _subset(measuring, devices)
    elif devices is not None and devices > len(measuring):
        measuring = measuring + _extras(measuring, districts, devices - len(measuring), name,
                                        seed)
    heartbeats = {}
    for device in measuring:
        twin = by_id.get(status_twin_id(device.device_id))
        if twin is None:
            twin = Device(device_id=status_twin_id(device.device_id), kind="status",
                          city=device.city, district=device.district,
                          kelurahan=device.kelurahan, lat=device.lat, lon=device.lon,
                          name=f"Heartbeat {device.name}".strip())
        heartbeats[device.device_id] = twin
    return City(name, districts, measuring, heartbeats,
                load_yaml_model(CityProfile, city_dir / "profile.yaml"),
                load_yaml_model(RiverModel, city_dir / "rivers.yaml"))


def _subset(devices: list[Device], count: int) -> list[Device]:
    """Round-robin over kinds, so a small city still has every kind."""
    by_kind: dict[str, list[Device]] = {}
    for device in devices:
        by_kind.setdefault(device.kind, []).append(device)
    chosen: list[Device] = []
    while len(chosen) < count:
        for group in by_kind.values():
            if group and len(chosen) < count:
                chosen.append(group.pop(0))
    return sorted(chosen, key=devices.index)


def _extras(existing: list[Device], districts: list[District], count: int, city: str,
            seed: int) -> list[Device]:
    """Extra devices in the same kind mix as the registry, scattered over the kecamatan."""
    rng = derive_rng(seed, "extra-devices")
    kinds = [d.kind for d in existing]
    gauges = [d for d in existing if d.kind == "water"]
    extras = []
    for number in range(1, count + 1):
        kind = kinds[(number - 1) % len(kinds)]
        district = rng.choice(districts)
        params: dict[str, float | str] = {}
        prefix = f"sim-{kind}"
        if kind in _EXTRA_ZONES:
            params["zone"] = rng.choice(_EXTRA_ZONES[kind])
        elif kind == "rain":
            params["mm_per_tip"] = rng.choice((0.2, 0.2794))
        elif kind == "safety":
            prefix = f"sim-{rng.choice(_EXTRA_SAFETY_PROFILES)}"
        elif kind == "water" and gauges:
            twin_of = rng.choice(gauges)  # a second sensor at an existing gauge
            params = dict(twin_of.params)
            extras.append(twin_of.model_copy(update={
                "device_id": f"sim-water-{number:05d}", "params": params,
                "name": f"{twin_of.name} (sensor {number})"}))
            continue
        extras.append(Device(
            device_id=f"{prefix}-{number:05d}", kind=kind, city=city,
            district=district.kecamatan,
            lat=round(district.lat + rng.uniform(-_EXTRA_SPREAD_DEG, _EXTRA_SPREAD_DEG), 5),
            lon=round(district.lon + rng.uniform(-_EXTRA_SPREAD_DEG, _EXTRA_SPREAD_DEG), 5),
            name=f"Simulated {kind} {district.kecamatan}", params=params))
    return extras
