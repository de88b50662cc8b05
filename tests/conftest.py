"""Fixtures: a real Mosquitto and a real InfluxDB 1.x on free loopback ports.

The session-wide pair serves most tests (each test gets its own database and its own MQTT
client id); tests that stop or restart a service ask for ``own_mosquitto`` / ``own_influxdb``.

Under pytest-xdist (``make test`` runs ``-n``) every worker process has its own session: its
own Mosquitto, InfluxDB and PostgreSQL on free ports, its own temporary folders. What the
workers share is this machine: fixed ports (``demo_ports``) and the programs check below.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kota_testing import IngestProcess, make_certificates
from machine_lock import machine_lock
from programs_check import LaunchRecorder, declared_programs, unprovided

from devstack.localstack import (
    LocalService,
    PostgresService,
    start_influxdb,
    start_mosquitto,
    start_postgres,
)

_counter = itertools.count(1)

# Every program the suite starts is recorded; the session fails when one of them is not
# installed by scripts/install-services.sh (a fresh machine would not have it). Under xdist the
# workers record and the controller, which runs no test, checks what they all sent it.
_launches = LaunchRecorder()
sys.addaudithook(_launches)
LAUNCHED_KEY = "kota_launched_programs"

# `kota demo` takes its preferred ports (devstack.demo.PREFERRED_PORTS: 1883, 8086, 8000, ...)
# when they look free, and README's `kota api` listens on 8000: one such test at a time.
DEMO_PORTS_LOCK = "kota-tests-demo-ports"
DEMO_PORTS_WAIT_S = 180.0  # the two demo tests take about 30 s each, 90 s on a busy machine


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """xdist's controller: a worker has finished; keep the programs it ran."""
    output = getattr(node, "workeroutput", {})
    _launches.programs.update(output.get(LAUNCHED_KEY, []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:  # an xdist worker: the controller checks
        worker_output[LAUNCHED_KEY] = sorted(_launches.programs)
        return
    missing = unprovided(_launches.programs, declared_programs())
    if missing:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = (f"the suite ran {', '.join(missing)}, which scripts/install-services.sh does "
                   "not install: add each to its PROGRAMS table")
        if reporter is not None:
            reporter.write_line(f"ERROR: {message}", red=True)
        else:
            print(f"ERROR: {message}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def demo_ports() -> Iterator[None]:
    """The demo's fixed ports for this test alone, against other workers and other runs."""
    with machine_lock(DEMO_PORTS_LOCK, DEMO_PORTS_WAIT_S):
        yield


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    service = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    service = start_influxdb(tmp_path_factory.mktemp("influxdb"))
    yield service
    service.stop()


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[LocalService]:
    service = start_mosquitto(tmp_path / "own-mosquitto")
    yield service
    service.stop()


@pytest.fixture
def own_influxdb(tmp_path: Path) -> Iterator[LocalService]:
    service = start_influxdb(tmp_path / "own-influxdb")
    yield service
    service.stop()


@pytest.fixture
def database(influxdb: LocalService) -> Iterator[str]:
    name = f"test_{next(_counter)}"
    httpx.post(f"http://127.0.0.1:{influxdb.port}/query", params={"q": f'CREATE DATABASE "{name}"'})
    yield name
    httpx.post(f"http://127.0.0.1:{influxdb.port}/query", params={"q": f'DROP DATABASE "{name}"'})


@pytest.fixture
def client_id() -> str:
    """A fresh MQTT client id, so no test inherits another test's persistent session."""
    return f"kota-ingest-test-{next(_counter)}"


@pytest.fixture
def ingest_factory(tmp_path: Path) -> Iterator[type[IngestProcess]]:
    started: list[IngestProcess] = []

    class _Factory(IngestProcess):
        def __init__(self, *args: object, **kwargs: str) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            started.append(self)

    yield _Factory
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A throw-away CA and server certificate for 127.0.0.1 (CA, certificate, key)."""
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresService]:
    """A real PostgreSQL 15 for the session (the store's city deployment), on loopback."""
    service = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield service
    service.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty relational database per test: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kota.db'}"
        return
    import psycopg

    service: PostgresService = request.getfixturevalue("postgres")
    name = f"kota_test_{next(_counter)}"
    with psycopg.connect(service.url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield service.url_for(name)
    with psycopg.connect(service.url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
