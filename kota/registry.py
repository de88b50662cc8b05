"""The device registry: which device is where, of which kind, with what per-kind parameters.

Kept as a data file (YAML or CSV) so field teams edit it without touching code; with the
relational store, ``kota devices`` and the API keep it in the database and export this file
(:meth:`Registry.save`, atomic). Services read the file and pick up changes without a restart
(:class:`RegistryWatcher`). Points carry the registry's city, district, its Kemendagri code
(``district_code``, from :mod:`kota.regions` unless the device gives its own) and kelurahan as
tags.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kota.aio import sleep_or_stop
from kota.config import yaml_problem
from kota.kinds import KINDS
from kota.regions import CODE_PATTERN, default_codes

__all__ = [
    "CITY_PATTERN",
    "DEVICE_ID_PATTERN",
    "POINT_TAGS",
    "Device",
    "Registry",
    "RegistryError",
    "RegistryWatcher",
]

log = logging.getLogger("kota.registry")

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
CITY_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
# A place name becomes a tag value: no newline, tab or backslash (see kota.lineproto).
PLACE_PATTERN = r"^[^\n\r\t\\]{1,64}$"

ParamValue = float | str


class RegistryError(ValueError):
    """The registry file cannot be read; the message names the file, row and key."""


# Tags ingest puts on a registered device's raw points (docs/protocol.md, "Tags");
# district_code and kelurahan only when known.
POINT_TAGS = ("city", "district", "district_code", "kind", "device", "kelurahan")


class Device(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    kind: str
    city: Annotated[str, Field(pattern=CITY_PATTERN)]
    district: Annotated[str, Field(pattern=PLACE_PATTERN, description="Kecamatan")]
    district_code: Annotated[str, Field(
        pattern=f"(?:{CODE_PATTERN})|^$",
        description="Kemendagri kecamatan code (kode wilayah, e.g. 31.71.01); default: the "
                    "one kota/regions gives the city and district, empty if it has none")] = ""
    kelurahan: Annotated[str, Field(pattern=r"^[^\n\r\t\\]{0,64}$")] = ""
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    name: str = ""
    params: dict[str, ParamValue] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _code_from_table(cls, data: object) -> object:
        # Not given (or empty): the table's code for this city and district, if it has one.
        if isinstance(data, dict) and not data.get("district_code"):
            city, district = data.get("city"), data.get("district")
            if isinstance(city, str) and isinstance(district, str):
                code = default_codes().code(city, district)
                if code is not None:
                    return {**data, "district_code": code}
        return data

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; known kinds: {', '.join(KINDS)}")
        return kind

    @model_validator(mode="after")
    def _params_belong_to_kind(self) -> Device:
        allowed = KINDS[self.kind].spec.registry_extras
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            raise ValueError(
                f"parameter(s) {', '.join(unknown)} do not apply to kind {self.kind!r}; "
                f"it takes: {', '.join(allowed) or 'none'}"
            )
        return self

    def table_code(self) -> str | None:
        """The code kota/regions gives this device's city and district (None: none)."""
        return default_codes().code(self.city, self.district)

    def tags(self) -> dict[str, str]:
        """The tags of this device's points (names: POINT_TAGS; the optional ones only when
        set)."""
        tags = {"city": self.city, "district": self.district, "kind": self.kind,
                "device": self.device_id}
        if self.district_code:
            tags["district_code"] = self.district_code
        if self.kelurahan:
            tags["kelurahan"] = self.kelurahan
        return tags


class Registry:
    """Devices by id. ``Registry.load(path)`` reads ``.yaml``/``.yml`` or ``.csv``."""

    def __init__(self, devices: Iterable[Device] = ()) -> None:
        self._devices: dict[str, Device] = {}
        for device in devices:
            if device.device_id in self._devices:
                raise RegistryError(f"device_id {device.device_id!r} appears twice")
            self._devices[device.device_id] = device

    def __len__(self) -> int:
        return len(self._devices)

    def __iter__(self) -> Iterator[Device]:
        return iter(self._devices.values())

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._devices

    def get(self, device_id: str) -> Device | None:
        return self._devices.get(device_id)

    def of_kind(self, kind: str) -> list[Device]:
        return [d for d in self._devices.values() if d.kind == kind]

    def replace(self, other: Registry) -> None:
        """Take ``other``'s devices, in place: whoever holds this registry sees them at once
        (one assignment, so a reader never sees half of each)."""
        self._devices = dict(other._devices)

    @classmethod
    def load(cls, path: Path | str) -> Registry:
        path = Path(path)
        if not path.exists():
            raise RegistryError(f"{path}: registry file not found")
        rows = _read_rows(path)
        devices = []
        for number, row in enumerate(rows, start=1):
            try:
                devices.append(Device.model_validate(row))
            except ValidationError as exc:
                where = f"{path}{_line_of(path, number)}: device #{number} " \
                        f"({row.get('device_id', '?')})"
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or 'row'}: {err['msg']}"
                    for err in exc.errors()
                )
                raise RegistryError(f"{where}: {problems}") from None
            # The line is looked up only for a warning: composing the file is slow (O(n) each).
            _warn_about_code(devices[-1], functools.partial(_where, path, number))
        return cls(devices)

    def dump_yaml(self) -> str:
        rows = [d.model_dump(exclude_defaults=True) for d in self]
        return yaml.safe_dump({"devices": rows}, sort_keys=False, allow_unicode=True)

    def dump_csv(self) -> str:
        """The CSV form :meth:`load` reads: the base columns, then one column per parameter."""
        extras = sorted({key for device in self for key in device.params})
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=[*_CSV_COLUMNS, *extras], lineterminator="\n")
        writer.writeheader()
        for device in self:
            row = device.model_dump(exclude={"params"})
            writer.writerow({**row, **device.params})
        return out.getvalue()

    def save(self, path: Path | str) -> None:
        """Write the file (CSV for ``.csv``, else YAML) atomically: a temporary file in the same
        folder, fsynced, then renamed over it, so a reader sees the old file or the new one."""
        path = Path(path)
        text = self.dump_csv() if path.suffix.lower() == ".csv" else self.dump_yaml()
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)  # mkstemp makes 0600; services may run as other users
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class RegistryWatcher:
    """Reloads a registry file into ``registry`` when the file's mtime, size or inode changes.

    :meth:`check` is cheap (one ``stat``) and never raises on a bad file: the last good registry
    stays, and the problem is logged once per version of the file (one line naming file and
    line). ``on_change`` runs after each successful reload (e.g. to drop caches).
    """

    def __init__(self, path: Path | str, registry: Registry, interval_s: float,
                 on_change: Callable[[Registry], None] | None = None) -> None:
        self.path = Path(path)
        self.registry = registry
        self.interval_s = interval_s
        self.on_change = on_change
        self._seen = self._signature()
        self.reloads = 0

    def _signature(self) -> tuple[int, int, int] | None:
        # The inode too: an export renames a new file over the old one, so even a rewrite of
        # the same size within one mtime tick is seen.
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size, stat.st_ino

    def check(self) -> bool:
        """Reload if the file changed since the last check; True when the registry changed."""
        signature = self._signature()
        if signature is None or signature == self._seen:
            return False  # a missing file (mid-rename, or removed) keeps the last registry
        self._seen = signature
        try:
            fresh = Registry.load(self.path)
        except RegistryError as exc:
            log.error("registry not reloaded, keeping the last good one (%d devices): %s",
                      len(self.registry), exc)
            return False
        self.registry.replace(fresh)
        self.reloads += 1
        log.info("registry %s reloaded: %d devices", self.path, len(fresh))
        if self.on_change is not None:
            self.on_change(self.registry)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Check every ``interval_s`` until ``stop``; 0 or less: never."""
        if self.interval_s <= 0:
            return
        while not await sleep_or_stop(stop, self.interval_s):
            try:
                self.check()  # one stat; a load only on change (a registry is small)
            except Exception:  # a reload bug must not end the service
                log.exception("unexpected error while reloading the registry %s", self.path)


_CSV_COLUMNS = ("device_id", "kind", "city", "district", "district_code", "kelurahan", "lat",
                "lon", "name")
_BASE_COLUMNS = set(_CSV_COLUMNS)


def _warn_about_code(device: Device, where_of: Callable[[], str]) -> None:
    """One line when a device has no region code, or one that differs from the table's: the
    device still loads (its points then carry no ``district_code`` tag, or its own)."""
    table = device.table_code()
    if not device.district_code:
        log.warning("%s: device %s: no Kemendagri code for district %r of city %r; add the "
                    "kecamatan to kota/regions/kecamatan_codes.csv or give the device a "
                    "district_code", where_of(), device.device_id, device.district, device.city)
    elif table is not None and device.district_code != table:
        log.warning("%s: device %s: district_code %s differs from %s, the code of %s in "
                    "kota/regions; the device's own is used", where_of(), device.device_id,
                    device.district_code, table, device.district)


def _where(path: Path, number: int) -> str:
    return f"{path}{_line_of(path, number)}"


def _line_of(path: Path, number: int) -> str:
    """``:<line>`` of the ``number``-th device (from 1) in a registry file, or "" if unknown."""
    try:
        if path.suffix.lower() == ".csv":
            return f":{number + 1}"  # the header is line 1 (no quoted newlines in a registry)
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return ""
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "devices" and isinstance(value, yaml.SequenceNode) \
                    and len(value.value) >= number:
                return f":{value.value[number - 1].start_mark.line + 1}"
    return ""


def _read_rows(path: Path) -> list[dict[str, object]]:
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            rows: list[dict[str, object]] = []
            for raw in csv.DictReader(handle):
                row: dict[str, object] = {}
                params: dict[str, object] = {}
                for key, value in raw.items():
                    if key is None or value in (None, ""):
                        continue
                    if key in _BASE_COLUMNS:  # text stays text: device_id 1042 is not 1042.0
                        row[key] = value
                    else:
                        params[key] = _number_or_text(value)
                row["params"] = params
                rows.append(row)
            return rows
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RegistryError(yaml_problem(path, exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("devices"), list):
        raise RegistryError(f"{path}: expected a mapping with a 'devices:' list")
    return [dict(item) if isinstance(item, dict) else {"device_id": item}
            for item in data["devices"]]


def _number_or_text(value: str) -> object:
    try:
        return float(value)
    except ValueError:
        return value
