"""The device registry in the database, and provisioning a device without a restart (issue 10).

The rows in ``devices`` are the registry; the YAML/CSV registry file the services read
(``registry_file``) is exported from them atomically after every change, and ingest, indicators
and the API reload it within seconds (kota.registry.RegistryWatcher). Ingest stays free of SQL.

A device added here gets its broker identity from Mosquitto's dynamic-security plugin, through
its control topic, as ``kota-provisioner`` (no broker restart): a client whose user name and
client id are the device id, a random password returned once (the plugin keeps only its hash)
and a role that may publish only to the device's own topics (kota.broker.device_topics).
Decommissioning disables and deletes that client (the broker disconnects it at once) and leaves
the row, marked decommissioned, out of the exported file.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kota.broker import (
    DYNSEC_RESPONSE_TOPIC,
    DYNSEC_TOPIC,
    PROVISIONER_USER,
    SERVICE_PREFIX,
    device_topics,
    dynsec_create_commands,
    dynsec_remove_commands,
)
from kota.registry import Device, Registry, RegistryError
from kota.settings.mqtt import MqttConnection
from store.models import DeviceRecord, utc

__all__ = ["DeviceInfo", "DeviceStore", "Dynsec", "DynsecError", "Provisioned", "Provisioner",
           "ProvisioningError", "ProvisioningSettings", "agent_snippet", "device_problems"]


def device_problems(exc: ValidationError) -> str:
    """A device's validation errors in one line: ``lat: Input should be ...; kind: ...``."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'device'}: "
                     f"{err['msg'].removeprefix('Value error, ')}" for err in exc.errors())


class ProvisioningError(Exception):
    """A device cannot be added or removed; the message is one line, safe to show."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status the API answers with


class DynsecError(ProvisioningError):
    """The broker refused or did not answer a dynamic-security command."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 502)


class ProvisionerConnection(MqttConnection):
    """The broker account allowed to send dynamic-security commands (and nothing else)."""

    username: str | None = Field(default=PROVISIONER_USER,
                                 description="The dynamic-security admin account")
    client_id: str = Field(default=PROVISIONER_USER, min_length=1, max_length=64,
                           description="MQTT client id (the broker uses the user name anyway)")


class ProvisioningSettings(BaseModel):
    """How ``kota devices`` and ``POST /api/v1/devices`` reach the broker, and what the agent
    config they hand out says."""

    model_config = ConfigDict(extra="forbid")

    broker: ProvisionerConnection = Field(default_factory=ProvisionerConnection)
    timeout_s: float = Field(default=10, gt=0, le=120,
                             description="Longest wait for the broker to answer a command")
    device_host: str | None = Field(
        default=None, description="Broker host name devices connect to (the agent config's "
                                  "mqtt.host); default: broker.host")
    device_port: int = Field(default=8883, ge=1, le=65535,
                             description="Broker port devices connect to (TLS: 8883)")
    device_tls: bool = Field(default=True, description="Devices connect with TLS")
    device_ca_file: str | None = Field(
        default=None, description="CA file on the device (mqtt.tls.ca_file), e.g. "
                                  "/etc/kota-agent/ca.crt; unset: the system CAs")


@dataclass(frozen=True)
class DeviceInfo:
    device: Device
    status: str
    provisioned: bool
    created_at: datetime
    created_by: str
    decommissioned_at: datetime | None

    @classmethod
    def of(cls, row: DeviceRecord) -> DeviceInfo:
        created = utc(row.created_at)
        assert created is not None
        return cls(device=_device_of(row), status=row.status, provisioned=row.provisioned,
                   created_at=created, created_by=row.created_by,
                   decommissioned_at=utc(row.decommissioned_at))


def _device_of(row: DeviceRecord) -> Device:
    return Device(device_id=row.device_id, kind=row.kind, city=row.city, district=row.district,
                  district_code=row.district_code or "", kelurahan=row.kelurahan, lat=row.lat,
                  lon=row.lon, name=row.name, params=json.loads(row.params or "{}"))


def _fill(row: DeviceRecord, device: Device) -> None:
    row.kind, row.city, row.district = device.kind, device.city, device.district
    row.district_code = device.district_code
    row.kelurahan, row.lat, row.lon, row.name = (device.kelurahan, device.lat, device.lon,
                                                 device.name)
    row.params = json.dumps(device.params, sort_keys=True)


class DeviceStore:
    """The ``devices`` table: no broker, no file (see :class:`Provisioner`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list(self, include_decommissioned: bool = False) -> list[DeviceInfo]:
        query = select(DeviceRecord).order_by(DeviceRecord.device_id)
        if not include_decommissioned:
            query = query.where(DeviceRecord.status == "active")
        with Session(self.engine) as session:
            return [DeviceInfo.of(row) for row in session.scalars(query)]

    def get(self, device_id: str) -> DeviceInfo | None:
        with Session(self.engine) as session:
            row = session.get(DeviceRecord, device_id)
            return DeviceInfo.of(row) if row else None

    def known_ids(self) -> set[str]:
        """Every id the table has, decommissioned ones included."""
        with Session(self.engine) as session:
            return set(session.scalars(select(DeviceRecord.device_id)))

    def registry(self) -> Registry:
        return Registry(info.device for info in self.list())

    def add(self, device: Device, created_by: str, provisioned: bool) -> DeviceInfo:
        """A new active row; a decommissioned id is taken again. ProvisioningError if active."""
        now = datetime.now(UTC)
        taken = ProvisioningError(f"device {device.device_id!r} is already registered "
                                  "(kota devices list)")
        try:
            with Session(self.engine) as session, session.begin():
                row = session.get(DeviceRecord, device.device_id, with_for_update=True)
                if row is not None and row.status == "active":
                    raise taken
                if row is None:
                    row = DeviceRecord(device_id=device.device_id)
                    session.add(row)
                _fill(row, device)
                row.status, row.provisioned, row.created_at = "active", provisioned, now
                row.created_by, row.decommissioned_at = created_by[:100], None
                session.flush()
                return DeviceInfo.of(row)
        except IntegrityError:  # added by someone else between our read and our insert
            raise taken from None

    def forget(self, device_id: str, previous: DeviceInfo | None = None) -> None:
        """Undo :meth:`add` of a device whose broker identity could not be made: the row goes,
        or becomes ``previous`` again (a decommissioned device keeps its history)."""
        with Session(self.engine) as session, session.begin():
            row = session.get(DeviceRecord, device_id)
            if row is None:
                return
            if previous is None:
                session.delete(row)
                return
            _fill(row, previous.device)
            row.status, row.provisioned = previous.status, previous.provisioned
            row.created_at, row.created_by = previous.created_at, previous.created_by
            row.decommissioned_at = previous.decommissioned_at

    def decommission(self, device_id: str) -> DeviceInfo:
        with Session(self.engine) as session, session.begin():
            row = session.get(DeviceRecord, device_id)
            if row is None or row.status != "active":
                raise ProvisioningError(f"no active device {device_id!r} (kota devices list)",
                                        404)
            row.status, row.decommissioned_at = "decommissioned", datetime.now(UTC)
            session.flush()
            return DeviceInfo.of(row)

    def upsert(self, devices: Iterable[Device], created_by: str) -> tuple[int, int]:
        """Rows for ``devices`` (added, or updated and active again): (added, updated). Their
        broker accounts stay what they were (make-secrets.sh's password file)."""
        added = updated = 0
        now = datetime.now(UTC)
        with Session(self.engine) as session, session.begin():
            for device in devices:
                row = session.get(DeviceRecord, device.device_id)
                if row is None:
                    row = DeviceRecord(device_id=device.device_id, provisioned=False,
                                       created_at=now, created_by=created_by[:100])
                    session.add(row)
                    added += 1
                else:
                    updated += 1
                _fill(row, device)
                row.status, row.decommissioned_at = "active", None
        return added, updated


class Dynsec:
    """Sends dynamic-security commands on ``$CONTROL/dynamic-security/v1`` and waits for the
    answers (paho, one short connection per call)."""

    def __init__(self, connection: MqttConnection, timeout_s: float) -> None:
        self.connection = connection
        self.timeout_s = timeout_s

    def run(self, commands: list[dict[str, Any]],
            tolerate: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Send ``commands`` as one request; DynsecError naming the first refused command
        unless its error message contains one of ``tolerate``."""
        conn = self.connection
        correlation = uuid.uuid4().hex
        for number, command in enumerate(commands):
            command["correlationData"] = f"{correlation}-{number}"
        connected, answered = threading.Event(), threading.Event()
        outcome: dict[str, Any] = {}
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=conn.client_id,
                             protocol=mqtt.MQTTv5)
        client.username_pw_set(conn.username, conn.resolved_password())
        context = conn.ssl_context()
        if context is not None:
            client.tls_set_context(context)

        def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            outcome["connack"] = reason
            if not reason.is_failure:
                client.subscribe(DYNSEC_RESPONSE_TOPIC, qos=1)
            else:
                connected.set()

        def on_subscribe(_c: Any, _u: Any, _m: Any, reasons: Any, _p: Any) -> None:
            outcome["suback"] = reasons[0]
            connected.set()

        def on_message(_c: Any, _u: Any, message: Any) -> None:
            try:
                responses = json.loads(message.payload)["responses"]
            except (ValueError, KeyError, TypeError):
                return
            mine = [r for r in responses
                    if str(r.get("correlationData", "")).startswith(correlation)]
            if mine:
                outcome["responses"] = mine
                answered.set()

        client.on_connect, client.on_subscribe = on_connect, on_subscribe
        client.on_message = on_message
        where = f"the broker {conn.where()} as {conn.username}"
        try:
            client.connect(conn.host, conn.port, keepalive=conn.keepalive_s)
        except (OSError, ValueError) as exc:
            raise DynsecError(f"cannot reach {where}: {exc}") from None
        client.loop_start()
        try:
            if not connected.wait(self.timeout_s):
                raise DynsecError(f"no answer from {where} within {self.timeout_s:g} s")
            reason = outcome["connack"]
            if reason.is_failure:
                raise DynsecError(f"{where}: login refused ({reason}); is the dynamic-security "
                                  "plugin loaded and the provisioner's password right?")
            if outcome["suback"].is_failure:
                raise DynsecError(f"{where}: may not read {DYNSEC_RESPONSE_TOPIC} "
                                  f"({outcome['suback']}): not the dynamic-security admin")
            client.publish(DYNSEC_TOPIC, json.dumps({"commands": commands}), qos=1)
            if not answered.wait(self.timeout_s):
                raise DynsecError(f"{where}: no answer to the dynamic-security commands within "
                                  f"{self.timeout_s:g} s (is the plugin loaded, and is this its "
                                  "admin account?)")
        finally:
            client.disconnect()
            client.loop_stop()
        responses: list[dict[str, Any]] = outcome["responses"]
        for response in responses:
            error = response.get("error")
            if error and not any(text in str(error) for text in tolerate):
                raise DynsecError(f"the broker refused {response.get('command')}: {error}")
        return responses


@dataclass(frozen=True)
class Provisioned:
    """A device just added: its record, its broker password (shown once) and agent config."""

    info: DeviceInfo
    password: str
    topics: tuple[str, ...]
    agent_config: str


def _toml(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string


def agent_snippet(device: Device, password: str, settings: ProvisioningSettings) -> str:
    """The kota-agent config (TOML, agent/config.py) for ``device``: [agent], [mqtt] with the
    one-time password, [mqtt.tls] if devices use TLS, and how to add its sensor."""
    host = settings.device_host or settings.broker.host
    lines = [
        f"# kota-agent config for device {device.device_id} ({device.kind}, {device.city}),",
        "# made by `kota devices add`. The password is shown once: better move it to",
        "# /etc/kota-agent/mqtt.password (mode 0640, group kota-agent) and use password_file.",
        "[agent]",
        f"id = {_toml(device.device_id)}",
        f"city = {_toml(device.city)}",
        "",
        "[mqtt]",
        f"host = {_toml(host)}",
        f"port = {settings.device_port}",
        f"username = {_toml(device.device_id)}",
        f"password = {_toml(password)}",
    ]
    if settings.device_tls:
        lines += ["", "[mqtt.tls]"]
        if settings.device_ca_file:
            lines.append(f"ca_file = {_toml(settings.device_ca_file)}")
    lines += [
        "",
        f"# Add the [[sensor]] table of its {device.kind} driver (agent/drivers/*/README.md) with",
        f"#   device_id = {_toml(device.device_id)}",
        f"# so it publishes to kota/{device.city}/{device.kind}/{device.device_id}; the heartbeat",
        f"# goes to kota/{device.city}/status/{device.device_id}-status. Nothing else is allowed.",
    ]
    return "\n".join(lines) + "\n"


class Provisioner:
    """Adds and decommissions devices: the database row, the broker identity, the registry
    file. The broker is asked first on removal and last on addition, so a broker that fails
    leaves the database and the file as they were."""

    def __init__(self, store: DeviceStore, registry_file: Path | None,
                 settings: ProvisioningSettings, dynsec: Dynsec | None = None) -> None:
        self.store = store
        self.registry_file = registry_file
        self.settings = settings
        self.dynsec = dynsec or Dynsec(settings.broker, settings.timeout_s)

    def _check_file(self, also_known: Iterable[str] = ()) -> None:
        """Refuse to overwrite a registry file that has devices the database does not know (a
        hand edit, or a registry never imported): they would silently vanish."""
        if self.registry_file is None:
            raise ProvisioningError("registry_file is not set: the services would not see the "
                                    "device (set api.registry_file)", 503)
        if not self.registry_file.exists():
            return
        try:
            on_file = {device.device_id for device in Registry.load(self.registry_file)}
        except RegistryError as exc:
            raise ProvisioningError(f"{exc} (fix it, or `kota devices import` a good copy)",
                                    503) from None
        unknown = sorted(on_file - self.store.known_ids() - set(also_known))
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more"
                                              if len(unknown) > 5 else "")
            raise ProvisioningError(
                f"{self.registry_file} has devices the database does not ({shown}): run "
                f"`kota devices import {self.registry_file}` first, or they would be dropped",
                503)

    def export(self) -> Registry:
        """Write the active devices to the registry file (atomic) and return them."""
        registry = self.store.registry()
        if self.registry_file is not None:
            registry.save(self.registry_file)
        return registry

    def add(self, device: Device, created_by: str) -> Provisioned:
        if device.device_id.startswith(SERVICE_PREFIX):
            raise ProvisioningError(f"device id {device.device_id!r}: ids starting with "
                                    f"{SERVICE_PREFIX!r} are kept for the service accounts", 422)
        self._check_file()
        previous = self.store.get(device.device_id)
        info = self.store.add(device, created_by, provisioned=True)
        password = secrets.token_urlsafe(24)
        topics = device_topics(device.device_id, device.city, device.kind)
        try:
            # A client left over from an earlier identity of this id goes first.
            self.dynsec.run(dynsec_remove_commands(device.device_id), tolerate=("not found",))
            self.dynsec.run(dynsec_create_commands(device.device_id, password, topics,
                                                   device.name or device.device_id))
        except ProvisioningError:
            self.store.forget(device.device_id, previous)
            raise
        self.export()
        return Provisioned(info, password, topics,
                           agent_snippet(device, password, self.settings))

    def decommission(self, device_id: str) -> DeviceInfo:
        info = self.store.get(device_id)
        if info is None or info.status != "active":
            raise ProvisioningError(f"no active device {device_id!r} (kota devices list)", 404)
        self._check_file()
        # Every device, provisioned here or imported: a client of that name must not remain.
        self.dynsec.run(dynsec_remove_commands(device_id), tolerate=("not found",))
        info = self.store.decommission(device_id)
        self.export()
        return info

    def import_devices(self, registry: Registry, created_by: str) -> tuple[int, int]:
        """Rows for every device of ``registry`` (no broker identity: those devices keep their
        make-secrets.sh accounts), then the file."""
        self._check_file(also_known=(device.device_id for device in registry))
        counts = self.store.upsert(registry, created_by)
        self.export()
        return counts
