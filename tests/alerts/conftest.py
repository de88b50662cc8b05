"""Fixtures the alert tests share: a migrated engine on the session's database (SQLite or
PostgreSQL, by ``database_url``), a local webhook receiver and a local SMTP sink (aiosmtpd)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from alert_samples import SmtpSink, WebhookReceiver
from sqlalchemy import Engine

from devstack.localstack import free_port
from store.db import ensure_schema, make_engine


@pytest.fixture
def smtp() -> Iterator[tuple[int, SmtpSink]]:
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, sink
    controller.stop()


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
