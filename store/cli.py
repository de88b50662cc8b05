"""``kota db`` (schema migrations) and ``kota keys`` (API keys), on ``api.database.url``."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Any

import click
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from kota.service_cli import EXIT_FAILED, fail, load_or_exit
from store.db import current_revision, ensure_schema, head_revision, make_engine, upgrade
from store.keys import KeyStore, parse_duration
from store.models import ROLES
from store.settings import DatabaseSettings

__all__ = ["db", "keys"]

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
@click.option("--scope", "scopes", multiple=True, help="A scope (repeat); none: the whole role.")
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
