"""Engines and migrations: Alembic run from Python (``kota db upgrade``, the API at start).

Alembic (about 11 MB of imports) is loaded only to migrate or to answer ``kota db``: a service
whose database is already at the head revision checks that with one query and a look at the
migration files (``ensure_schema``), which matters for the small ``kota alerts deliver``
processes (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import re
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text

from store.settings import engine_url

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MIGRATIONS", "SchemaError", "current_revision", "ensure_schema", "head_revision",
           "make_engine", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*(None|\"[^\"]*\"|'[^']*')", re.MULTILINE)
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
            # Write-ahead log: readers (the API, claims) no longer wait for a writer (the
            # fan-out, marks) and a commit is one fsync; still synchronous=FULL, so a commit
            # survives a power cut. It stays set in the file (docs/decisions.md).
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(parsed, pool_pre_ping=True)


def _alembic() -> None:
    # Alembic logs one INFO line per plugin it sets up: noise before a service's first real
    # line (and it broke the one-line error of `kota indicators` with a broken registry).
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _config(engine: Engine) -> Config:
    _alembic()
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The newest migration, as Alembic reads the scripts."""
    _alembic()
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


@cache
def head_revision_from_files() -> str | None:
    """The newest migration read from the scripts' ``revision``/``down_revision`` lines without
    Alembic; None when they do not name exactly one head (then Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in sorted((MIGRATIONS / "versions").glob("*.py")):
        found = dict((name, value.strip("\"'")) for name, value
                     in _REVISION.findall(script.read_text(encoding="utf-8")))
        if "revision" not in found:
            return None
        revisions.add(found["revision"])
        if found.get("down_revision") not in (None, "None"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def current_revision(engine: Engine) -> str | None:
    """The database's revision (None: never migrated), with one query."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return rows[0] if len(rows) == 1 else None


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = _config(engine)
    from alembic import command

    command.upgrade(config, revision)


def ensure_schema(engine: Engine, migrate: bool) -> None:
    """At the head revision: upgraded when ``migrate``, else :class:`SchemaError` saying what to
    run. Done once per database and process."""
    key = engine.url.render_as_string(hide_password=False)
    with _lock:
        if key in _upgraded:
            return
        current = current_revision(engine)
        if current is not None and current == head_revision_from_files():
            _upgraded.add(key)
            return
        head = head_revision()
        if current != head:
            if not migrate:
                raise SchemaError(
                    f"the database {engine.url.render_as_string(hide_password=True)} is at "
                    f"schema {current or 'none (empty)'}, this version needs {head}: run "
                    "`kota db upgrade` (or set database.migrate_on_start: true)")
            upgrade(engine)
        _upgraded.add(key)
