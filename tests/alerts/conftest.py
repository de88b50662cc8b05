"""Fixtures the alert tests share: a migrated engine on the session's database (SQLite or
PostgreSQL, by ``database_url``) and a local webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alert_samples import WebhookReceiver
from sqlalchemy import Engine

from store.db import ensure_schema, make_engine


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = make_engine(database_url)
    ensure_schema(made, migrate=True)
    yield made
    made.dispose()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()
