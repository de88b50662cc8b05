"""Engines and migrations: Alembic run from Python (``kota db upgrade``, the API at start)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

# Alembic logs one INFO line per plugin it sets up: noise before a service's first real line
# (and it broke the one-line error of `kota indicators` with a broken registry).
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import Engine, create_engine, event  # noqa: E402

from store.settings import engine_url  # noqa: E402

__all__ = ["MIGRATIONS", "SchemaError", "current_revision", "ensure_schema", "head_revision",
           "make_engine", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"
_upgraded: set[str] = set()
_lock = threading.Lock()


class SchemaError(RuntimeError):
    """The database schema is not the one this code needs."""


def make_engine(url: str) -> Engine:
    """An engine for a ``database.url``; a SQLite file's folder is created."""
    parsed = engine_url(url)
    if parsed.drivername == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed)

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(parsed, pool_pre_ping=True)


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(_config(engine), revision)


def ensure_schema(engine: Engine, migrate: bool) -> None:
    """At the head revision: upgraded when ``migrate``, else :class:`SchemaError` saying what to
    run. Done once per database and process."""
    key = engine.url.render_as_string(hide_password=False)
    with _lock:
        if key in _upgraded:
            return
        current, head = current_revision(engine), head_revision()
        if current != head:
            if not migrate:
                raise SchemaError(
                    f"the database {engine.url.render_as_string(hide_password=True)} is at "
                    f"schema {current or 'none (empty)'}, this version needs {head}: run "
                    "`kota db upgrade` (or set database.migrate_on_start: true)")
            upgrade(engine)
        _upgraded.add(key)
