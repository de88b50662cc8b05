"""``kota db`` (schema migrations), ``kota keys`` (API keys) and ``kota devices`` (the device
registry and its broker accounts), on ``api.database.url``."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from kota.registry import Device, Registry, RegistryError
from kota.service_cli import EXIT_FAILED, fail, load_or_exit
from store.db import current_revision, ensure_schema, head_revision, make_engine, upgrade
from store.devices import (
    DeviceStore,
    Provisioner,
    ProvisioningError,
    ProvisioningSettings,
    device_problems,
)
from store.keys import KeyStore, parse_duration
from store.models import ROLES
from store.settings import DatabaseSettings

__all__ = ["db", "devices", "keys"]

CONTEXT = {"max_content_width": 110, "help_option_names": ["-h", "--help"]}


class _Section(BaseModel):
    """The part of section ``api:`` these commands read (the API's own database)."""

    model_config = ConfigDict(extra="ignore")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)


def _engine(config_file: str | None, url: str | None) -> Engine:
    overrides: dict[str, Any] = {"database": {"url": url}} if url else {}
    settings = load_or_exit(_Section, "api", config_file, overrides)
    return make_engine(settings.database.url)


def _options(function: Any) -> Any:
    function = click.option("--database-url", "url",
                            help="Override api.database.url (default sqlite:///run/kota.db).")(
        function)
    return click.option("--config", "config_file", type=click.Path(dir_okay=False),
                        help="Configuration file (default: $KOTA_CONFIG or ./kota.yaml).")(
        function)


def _failed(exc: SQLAlchemyError) -> None:
    fail(f"database: {str(exc).splitlines()[0]}", EXIT_FAILED)


@click.group(context_settings=CONTEXT)
def db() -> None:
    """The relational database (API keys; the alert engine's state): schema migrations.

    \b
    Examples:
      kota db upgrade                    # create or bring up to date sqlite:///run/kota.db
      KOTA_API__DATABASE__URL=postgresql://kota@127.0.0.1:5432/kota kota db upgrade
      kota db current
    """


@db.command("upgrade", context_settings=CONTEXT)
@_options
def db_upgrade(config_file: str | None, url: str | None) -> None:
    """Apply every migration the database lacks (Alembic, store/migrations)."""
    engine = _engine(config_file, url)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    except SQLAlchemyError as exc:
        _failed(exc)
    click.echo(f"database schema {before or 'none'} -> {after}" if before != after
               else f"database schema {after}: up to date")


@db.command("current", context_settings=CONTEXT)
@_options
def db_current(config_file: str | None, url: str | None) -> None:
    """Print the schema revision of the database and the one this version needs."""
    engine = _engine(config_file, url)
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        _failed(exc)
    head = head_revision()
    state = "up to date" if current == head else "run `kota db upgrade`"
    click.echo(f"database schema {current or 'none'} (this version needs {head}: {state})")


def _store(config_file: str | None, url: str | None) -> KeyStore:
    engine = _engine(config_file, url)
    try:
        ensure_schema(engine, migrate=False)
    except Exception as exc:  # SchemaError or the database refusing us
        fail(str(exc).splitlines()[0], EXIT_FAILED)
    return KeyStore(engine)


@click.group(context_settings=CONTEXT)
def keys() -> None:
    """API keys: create (shown once), list, revoke. Roles: public, operator, admin.

    \b
    Examples:
      kota keys create --name "Pusdalops shift A" --role operator --expires 90d
      kota keys list
      kota keys revoke 3
    """


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


@keys.command("create", context_settings=CONTEXT)
@click.option("--name", required=True, help="Who or what uses it (shown in lists).")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What it may do.")
@click.option("--expires", default="90d", show_default=True,
              help="Lifetime: 12h, 90d, 8w, or 'never'.")
@click.option("--scope", "scopes", multiple=True,
              help="Limit the key to an API area (repeat): readings, indicators, stream, meta, "
                   "devices, alerts, subscriptions, keys; add :read for reading only "
                   "(alerts:read). None: everything its role may do.")
@_options
def keys_create(name: str, role: str, expires: str, scopes: tuple[str, ...],
                config_file: str | None, url: str | None) -> None:
    """Create a key and print it once: it is stored only as a hash."""
    try:
        lifetime = None if expires == "never" else parse_duration(expires)
    except ValueError as exc:
        fail(str(exc))
    store = _store(config_file, url)
    try:
        info, key = store.create(name, role, expires_in=lifetime, scopes=scopes,
                                 created_by=f"cli:{getpass.getuser()}")
    except ValueError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        _failed(exc)
    click.echo(key)
    click.echo(f"key {info.id} ({info.name}, {info.role}, expires {_when(info.expires_at)} UTC): "
               "shown once, store it now", err=True)


@keys.command("list", context_settings=CONTEXT)
@_options
def keys_list(config_file: str | None, url: str | None) -> None:
    """Every key: id, prefix, role, status, expiry, last use (never the key)."""
    now = datetime.now(UTC)
    click.echo(f"{'id':>4}  {'prefix':8}  {'role':8}  {'status':7}  {'expires (UTC)':16}  "
               f"{'last used':16}  name")
    for info in _store(config_file, url).list():
        click.echo(f"{info.id:>4}  {info.prefix:8}  {info.role:8}  {info.status(now):7}  "
                   f"{_when(info.expires_at):16}  {_when(info.last_used_at):16}  {info.name}")


@keys.command("revoke", context_settings=CONTEXT)
@click.argument("key_id", type=int)
@_options
def keys_revoke(key_id: int, config_file: str | None, url: str | None) -> None:
    """Revoke key KEY_ID now (see `kota keys list`)."""
    info = _store(config_file, url).revoke(key_id)
    if info is None:
        fail(f"no key {key_id} (kota keys list shows them)")
    click.echo(f"key {info.id} ({info.name}) revoked at {_when(info.revoked_at)} UTC")


class _DevicesSection(_Section):
    """What ``kota devices`` reads of section ``api:``: the database, the registry file the
    services read, and how to reach the broker's dynamic-security plugin."""

    registry_file: Path | None = None
    provisioning: ProvisioningSettings = Field(default_factory=ProvisioningSettings)


def _provisioner(config_file: str | None, url: str | None,
                 registry_file: str | None) -> Provisioner:
    overrides: dict[str, Any] = {"database": {"url": url}} if url else {}
    if registry_file:
        overrides["registry_file"] = registry_file
    settings = load_or_exit(_DevicesSection, "api", config_file, overrides)
    engine = make_engine(settings.database.url)
    try:
        ensure_schema(engine, migrate=False)
    except Exception as exc:  # SchemaError or the database refusing us
        fail(str(exc).splitlines()[0], EXIT_FAILED)
    return Provisioner(DeviceStore(engine), settings.registry_file, settings.provisioning)


def _device_options(function: Any) -> Any:
    function = click.option("--registry", "registry_file", type=click.Path(dir_okay=False),
                            help="Override api.registry_file (the file the services read).")(
        function)
    return _options(function)


def _who() -> str:
    return f"cli:{getpass.getuser()}"


@click.group(context_settings=CONTEXT)
def devices() -> None:
    """The device registry in the database; the registry file is exported from it.

    `add` also makes the device's broker account (Mosquitto's dynamic-security plugin, no
    restart) and prints its kota-agent config with a password shown once; `decommission`
    removes that account. Ingest, indicators and the API reload the registry file by themselves.

    \b
    Examples:
      kota devices import simulators/cities/jakarta/devices.yaml   # once, to start from a file
      kota devices add jkt-water-07 --kind water --city jakarta --district Tebet \\
          --lat -6.226 --lon 106.858 --name "Ciliwung, Kampung Melayu" \\
          --param gauge_id=manggarai --param mount_height_cm=420 > agent.toml
      kota devices list
      kota devices decommission jkt-water-07
      kota devices export --format csv > devices.csv
    """


def _param(text: str) -> tuple[str, float | str]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        fail(f"--param {text!r}: expected KEY=VALUE (e.g. gauge_id=manggarai)")
    try:
        return key, float(value)
    except ValueError:
        return key, value


@devices.command("add", context_settings=CONTEXT)
@click.argument("device_id")
@click.option("--kind", required=True, help="Its kind (kota/kinds: air, water, rain, ...).")
@click.option("--city", required=True, help="City part of its topic (jakarta).")
@click.option("--district", required=True, help="Kecamatan.")
@click.option("--district-code", default="",
              help="Its Kemendagri code (e.g. 32.71.02); default: kota/regions' for the district.")
@click.option("--kelurahan", default="", help="Kelurahan.")
@click.option("--lat", type=float, required=True, help="Latitude, degrees.")
@click.option("--lon", type=float, required=True, help="Longitude, degrees.")
@click.option("--name", default="", help="What people call it.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A parameter of its kind (gauge_id=..., mount_height_cm=..., zone=...).")
@_device_options
def devices_add(device_id: str, kind: str, city: str, district: str, district_code: str,
                kelurahan: str, lat: float, lon: float, name: str, params: tuple[str, ...],
                registry_file: str | None, config_file: str | None, url: str | None) -> None:
    """Register DEVICE_ID, make its broker account, print its agent config (password once)."""
    try:
        device = Device(device_id=device_id, kind=kind, city=city, district=district,
                        district_code=district_code, kelurahan=kelurahan, lat=lat, lon=lon,
                        name=name, params=dict(_param(text) for text in params))
    except ValidationError as exc:
        fail(device_problems(exc))
    provisioner = _provisioner(config_file, url, registry_file)
    try:
        done = provisioner.add(device, _who())
    except ProvisioningError as exc:
        fail(str(exc), EXIT_FAILED)
    except SQLAlchemyError as exc:
        _failed(exc)
    click.echo(done.agent_config, nl=False)
    click.echo(f"device {device_id} added; it may publish to {', '.join(done.topics)}; its "
               f"password is in the config above, shown once", err=True)


@devices.command("decommission", context_settings=CONTEXT)
@click.argument("device_id")
@_device_options
def devices_decommission(device_id: str, registry_file: str | None, config_file: str | None,
                         url: str | None) -> None:
    """Remove DEVICE_ID's broker account (it is disconnected now) and take it out of the
    registry file; its row stays, marked decommissioned."""
    provisioner = _provisioner(config_file, url, registry_file)
    try:
        info = provisioner.decommission(device_id)
    except ProvisioningError as exc:
        fail(str(exc), EXIT_FAILED)
    except SQLAlchemyError as exc:
        _failed(exc)
    click.echo(f"device {device_id} decommissioned at {_when(info.decommissioned_at)} UTC")


@devices.command("list", context_settings=CONTEXT)
@click.option("--all", "include_all", is_flag=True, help="Decommissioned devices too.")
@_options
def devices_list(include_all: bool, config_file: str | None, url: str | None) -> None:
    """Devices in the database: id, kind, city, district and its Kemendagri code, status,
    broker account, added."""
    provisioner = _provisioner(config_file, url, None)
    click.echo(f"{'device_id':24}  {'kind':8}  {'city':10}  {'district':16}  {'code':8}  "
               f"{'status':14}  {'account':10}  added (UTC)")
    for info in provisioner.store.list(include_all):
        d = info.device
        account = "dynsec" if info.provisioned else "passwd"
        click.echo(f"{d.device_id:24}  {d.kind:8}  {d.city:10}  {d.district:16}  "
                   f"{d.district_code or '-':8}  {info.status:14}  {account:10}  "
                   f"{_when(info.created_at)}")


@devices.command("import", context_settings=CONTEXT)
@click.argument("file", type=click.Path(dir_okay=False))
@_device_options
def devices_import(file: str, registry_file: str | None, config_file: str | None,
                   url: str | None) -> None:
    """Add or update the devices of FILE (.yaml or .csv, the registry format), then export the
    registry file. Their broker accounts stay make-secrets.sh's."""
    try:
        registry = Registry.load(file)
    except RegistryError as exc:
        fail(str(exc))
    provisioner = _provisioner(config_file, url, registry_file)
    try:
        added, updated = provisioner.import_devices(registry, _who())
    except ProvisioningError as exc:
        fail(str(exc), EXIT_FAILED)
    except SQLAlchemyError as exc:
        _failed(exc)
    click.echo(f"{file}: {added} devices added, {updated} updated; {provisioner.registry_file} "
               "written")


@devices.command("export", context_settings=CONTEXT)
@click.option("--format", "format_", type=click.Choice(["yaml", "csv"]), default="yaml",
              show_default=True, help="The registry file format.")
@_options
def devices_export(format_: str, config_file: str | None, url: str | None) -> None:
    """Print the active devices as a registry file (what the services read)."""
    registry = _provisioner(config_file, url, None).store.registry()
    click.echo(registry.dump_csv() if format_ == "csv" else registry.dump_yaml(), nl=False)
