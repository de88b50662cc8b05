"""The server-sent-event stream: a snapshot, then new readings as they are written; bounded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from api_data import Seeded, api_registry, make_settings, serve, tags, write_lines
from fastapi.testclient import TestClient
from kota_testing import wait_until

from api.main import create_app
from api.routes.live import RETRY_MS
from api.services.indicators import IndicatorsService
from api.services.live import LiveCache
from api.services.readings import Filters, ReadingsService
from devstack.localstack import LocalService
from kota.influx import InfluxClient


def events(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            yield name, json.loads(line[len("data: "):])


@pytest.mark.slow
def test_stream_pushes_new_readings_and_ends(influxdb: LocalService, database: str,
                                             seeded: Seeded) -> None:
    settings = make_settings(influxdb, database, sse_interval_s=0.3, sse_max_duration_s=6)
    app = create_app(settings, registry=api_registry())
    started = time.monotonic()
    seen: list[str] = []
    with TestClient(app) as client, client.stream("GET", "/api/v1/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response.iter_lines())
        name, snapshot = next(stream)
        assert name == "snapshot"
        assert {r["device"] for r in snapshot["readings"]} == {
            "air-menteng", "air-tebet", "water-manggarai", "water-kali", "rain-tebet",
            "panic-monas"}
        assert snapshot["ispu"]["source"] == "computed"
        assert {i["device"]: i["status"] for i in snapshot["siaga"]["items"]} == {
            "water-manggarai": 2, "water-kali": None}
        new_ms = int(time.time() * 1000)
        write_lines(influxdb, database, [
            f"water,{tags('water-manggarai', 'water', 'Tebet')} level_cm=960.0 {new_ms}"])
        update = None
        indicators = None
        for name, data in stream:
            seen.append(name)
            if name == "readings":
                update = data
            elif name == "indicators":
                indicators = data
            elif name == "end":
                break
    assert update is not None, seen
    assert [(r["device"], r["fields"]["level_cm"], r["time_ms"]) for r in update["readings"]] == [
        ("water-manggarai", 960.0, new_ms)]
    assert indicators is not None
    assert {i["device"]: i["status_name"] for i in indicators["siaga"]["items"]}[
        "water-manggarai"] == "Awas"
    assert seen[-1] == "end"
    assert time.monotonic() - started < 20  # bounded by sse_max_duration_s
    assert app.state.kota.open_streams == 0


@pytest.mark.slow
def test_stream_of_some_kinds(influxdb: LocalService, database: str, seeded: Seeded) -> None:
    app = create_app(make_settings(influxdb, database, sse_max_duration_s=1),
                     registry=api_registry())
    with TestClient(app) as client, client.stream(
            "GET", "/api/v1/stream", params=[("kind", "water"), ("kind", "rain")]) as response:
        names_and_data = list(events(response.iter_lines()))
    name, snapshot = names_and_data[0]
    assert name == "snapshot"
    assert sorted(r["device"] for r in snapshot["readings"]) == [
        "rain-tebet", "water-kali", "water-manggarai"]
    assert names_and_data[-1][0] == "end"
    assert app.state.kota.open_streams == 0


def test_stream_refuses_beyond_max_clients(influxdb: LocalService, database: str) -> None:
    app = create_app(make_settings(influxdb, database, sse_max_clients=1),
                     registry=api_registry())
    app.state.kota.open_streams = 1  # one stream already open
    with TestClient(app) as client:
        response = client.get("/api/v1/stream")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:kota-cerdas:problem:too-many-streams"


@pytest.mark.slow
def test_the_stream_limit_holds_for_concurrent_clients_and_frees_places(
        influxdb: LocalService, database: str) -> None:
    app = create_app(make_settings(influxdb, database, sse_max_clients=1, sse_interval_s=0.3,
                                   sse_max_duration_s=30), registry=api_registry())
    state = app.state.kota
    with serve(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        with client.stream("GET", "/api/v1/stream") as first:
            assert first.status_code == 200
            lines = first.iter_lines()  # kept: dropping it would make httpx drain the stream
            assert next(lines) == f"retry: {RETRY_MS}"  # the stream runs
            second = client.get("/api/v1/stream")
            assert second.status_code == 503
            assert second.json()["type"] == "urn:kota-cerdas:problem:too-many-streams"
        wait_until(lambda: state.open_streams == 0, 10, "the closed stream to give its place back")
        with client.stream("GET", "/api/v1/stream") as third:
            assert third.status_code == 200


def test_a_client_gone_before_the_body_starts_gives_its_place_back(
        influxdb: LocalService, database: str) -> None:
    # An ASGI 2.4 server reports a vanished client as OSError from send(); Starlette then never
    # runs the body's generator. The place taken in the route must still be released.
    app = create_app(make_settings(influxdb, database, sse_max_clients=1),
                     registry=api_registry())
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
             "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/api/v1/stream", "raw_path": b"/api/v1/stream", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"test")], "client": ("127.0.0.1", 1),
             "server": ("test", 80), "state": {}}

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: object) -> None:
        raise OSError("client gone")

    async def call() -> None:
        async with app.router.lifespan_context(app):
            with contextlib.suppress(Exception):
                await app(scope, receive, send)
            assert app.state.kota.open_streams == 0

    asyncio.run(call())


@pytest.mark.slow
def test_streams_with_the_same_filters_share_their_queries(influxdb: LocalService,
                                                           database: str,
                                                           seeded: Seeded) -> None:
    async def run() -> None:
        influx = InfluxClient(make_settings(influxdb, database).influx)
        try:
            registry = api_registry()
            cache = LiveCache(ReadingsService(influx, registry, 3600),
                              IndicatorsService(influx, registry, 3600, 3600), max_age_s=0.5)
            first, second = await asyncio.gather(cache.latest(["air"], Filters()),
                                                 cache.latest(["air"], Filters()))
            assert cache.queries == 1
            assert first == second and [r.device for r in first] == ["air-menteng", "air-tebet"]
            tebet = await cache.latest(["air"], Filters(district="Tebet"))
            assert cache.queries == 2 and [r.device for r in tebet] == ["air-tebet"]
            await asyncio.sleep(0.6)
            await cache.latest(["air"], Filters())
            assert cache.queries == 3
        finally:
            await influx.close()

    asyncio.run(run())
