"""Fixtures of the API tests: an app on the real InfluxDB, a client, the known data
(tests/support/api_data.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_data import (  # noqa: F401
    HOUR,
    MINUTE,
    Seeded,
    api_registry,
    make_settings,
    seed,
    serve,
    tags,
    write_lines,
)
from browser import Browsed, chromium_page
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from devstack.localstack import LocalService


# Fixtures are named in the decorator so test modules can import them without shadowing.
@pytest.fixture(name="api_app")
def api_app_fixture(influxdb: LocalService, database: str) -> FastAPI:
    return create_app(make_settings(influxdb, database), registry=api_registry())


@pytest.fixture(name="api_client")
def api_client_fixture(api_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(api_app) as client:
        yield client


@pytest.fixture(name="seeded")
def seeded_fixture(influxdb: LocalService, database: str) -> Seeded:
    return seed(influxdb, database)


@pytest.fixture
def browser(served: object) -> Iterator[Browsed]:
    """Chromium on the module's ``served`` page server (started first); no uncaught script
    error may remain when the test ends."""
    with chromium_page() as browsed:
        yield browsed
    assert browsed.errors == [], f"uncaught errors in the page: {browsed.errors}"
