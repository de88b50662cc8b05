"""The key store and its commands against SQLite and a real PostgreSQL 15: migrations, keys
created, listed, revoked, expired; the key itself is stored nowhere, only its hash."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from store.cli import db, keys
from store.db import SchemaError, current_revision, ensure_schema, head_revision, make_engine
from store.keys import KeyProblem, KeyStore, parse_duration
from store.settings import DatabaseSettings

KEY = re.compile(r"^kota_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$")


def _store(url: str) -> KeyStore:
    engine = make_engine(url)
    ensure_schema(engine, migrate=True)
    return KeyStore(engine)


@pytest.mark.slow
def test_schema_is_refused_until_upgraded(database_url: str) -> None:
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    with pytest.raises(SchemaError, match="kota db upgrade"):
        ensure_schema(engine, migrate=False)
    ensure_schema(engine, migrate=True)
    assert current_revision(engine) == head_revision()


@pytest.mark.slow
def test_keys_authenticate_until_revoked_or_expired(database_url: str) -> None:
    store = _store(database_url)
    info, key = store.create("Pusdalops", "operator", expires_in=timedelta(days=90),
                             created_by="test", scopes=["alerts"])
    assert KEY.match(key) and key.split("_")[1] == info.prefix
    assert store.authenticate(key).id == info.id
    assert store.list()[0].last_used_at is not None
    with pytest.raises(KeyProblem, match="unknown"):
        store.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B"))
    with pytest.raises(KeyProblem, match="not a Kota"):
        store.authenticate("hunter2")
    assert store.revoke(info.id) is not None
    with pytest.raises(KeyProblem, match="revoked"):
        store.authenticate(key)
    assert store.revoke(999) is None
    _short, short_key = store.create("short", "public", expires_in=timedelta(seconds=0.2),
                                     created_by="test")
    time.sleep(0.3)
    with pytest.raises(KeyProblem, match="expired"):
        store.authenticate(short_key)
    with pytest.raises(ValueError, match="unknown role"):
        store.create("x", "root", expires_in=None, created_by="test")


def test_only_the_hash_is_stored(database_url: str) -> None:
    store = _store(database_url)
    _info, key = store.create("hashed", "admin", expires_in=None, created_by="test")
    with store.engine.connect() as connection:
        rows = [tuple(str(v) for v in row)
                for row in connection.execute(text("SELECT * FROM api_keys"))]
    flat = " ".join(" ".join(row) for row in rows)
    assert key not in flat and key.split("_", 2)[2] not in flat
    assert hashlib.sha256(key.encode()).hexdigest() in flat
    if database_url.startswith("sqlite:///"):
        # The write-ahead log holds the newest pages until a checkpoint: read it too.
        database = Path(database_url.removeprefix("sqlite:///"))
        files = [path for path in (database, Path(f"{database}-wal")) if path.exists()]
        assert len(files) == 2   # journal_mode=WAL (store/db.py)
        assert all(key.encode() not in path.read_bytes() for path in files)


@pytest.mark.slow
def test_cli_creates_lists_revokes(database_url: str) -> None:
    runner = CliRunner()
    url = ["--database-url", database_url]
    refused = runner.invoke(keys, ["list", *url])
    assert refused.exit_code == 1 and "kota db upgrade" in refused.output
    assert "none" in runner.invoke(db, ["current", *url]).output
    upgraded = runner.invoke(db, ["upgrade", *url])
    assert upgraded.exit_code == 0 and f"-> {head_revision()}" in upgraded.output
    assert "up to date" in runner.invoke(db, ["current", *url]).output
    created = runner.invoke(keys, ["create", "--name", "shift A", "--role", "operator",
                                   "--expires", "90d", *url])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[0]
    assert KEY.match(key)
    listing = runner.invoke(keys, ["list", *url]).output
    assert "shift A" in listing and "active" in listing and key not in listing
    assert runner.invoke(keys, ["revoke", "1", *url]).exit_code == 0
    assert "revoked" in runner.invoke(keys, ["list", *url]).output
    missing = runner.invoke(keys, ["revoke", "42", *url])
    assert missing.exit_code == 2 and "no key 42" in missing.output
    bad = runner.invoke(keys, ["create", "--name", "x", "--role", "operator", "--expires",
                               "soon", *url])
    assert bad.exit_code == 2 and "not a duration" in bad.output


@pytest.mark.slow
def test_settings_refuse_unknown_databases_in_one_line() -> None:
    for url, words in (("mysql://x@y/z", "unsupported database"), ("nonsense", "not a database"),
                       ("sqlite://", "needs a file")):
        with pytest.raises(ValueError, match=words) as caught:
            DatabaseSettings(url=url)
        assert words in str(caught.value)
    assert parse_duration("12h") == timedelta(hours=12)
    with pytest.raises(ValueError):
        parse_duration("0d")


def test_the_head_read_from_the_scripts_is_alembics() -> None:
    # ensure_schema trusts it to skip Alembic on a database already at the head.
    from store.db import head_revision_from_files

    assert head_revision_from_files() == head_revision()


def test_a_database_one_migration_behind_is_not_taken_for_current(tmp_path: Path) -> None:
    from store.db import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'behind.db'}")
    upgrade(engine, "0004_subscriptions")
    assert current_revision(engine) == "0004_subscriptions"
    with pytest.raises(SchemaError, match="0004_subscriptions"):
        ensure_schema(engine, migrate=False)
    ensure_schema(engine, migrate=True)
    assert current_revision(engine) == head_revision()


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    # Readers (API, claims) do not wait for writers; a commit survives a power cut.
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2   # FULL
