"""Limits (issue 10), against the real InfluxDB and the API under a real uvicorn: one client
cannot hold every live stream; history is capped in total before any query and streamed; a
query that times out is a 504 that says so, distinct from "database unavailable"."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import httpx
import pytest
from api_data import api_registry, make_settings, serve, tags, write_lines
from starlette.requests import Request

from api.main import create_app
from api.services.live import client_identity
from api.settings import ApiSettings
from devstack.localstack import LocalService, free_port

POINTS = 30_000  # per device; 3 devices (one not in the registry)


def _big_history(influx: LocalService, database: str) -> int:
    """POINTS one-second points for air-menteng, air-tebet and the unregistered air-ghost."""
    start_ms = (int(time.time()) - 10 * 3600) * 1000
    for device, district in (("air-menteng", "Menteng"), ("air-tebet", "Tebet"),
                             ("air-ghost", "unregistered")):
        head = f"air,{tags(device, 'air', district)}"
        write_lines(influx, database, [f"{head} pm25={k % 97}.5,pm10=1.0 {start_ms + k * 1000}"
                                       for k in range(POINTS)])
    return start_ms


@pytest.mark.slow
def test_one_client_cannot_take_every_stream(influxdb: LocalService, database: str) -> None:
    app = create_app(make_settings(influxdb, database, sse_max_clients=10,
                                   sse_max_clients_per_client=2, sse_max_duration_s=30),
                     registry=api_registry())
    with serve(app) as url, contextlib.ExitStack() as open_streams:
        def stream(client: str) -> httpx.Response:
            # uvicorn trusts X-Forwarded-For from loopback: two "clients" from one test.
            return open_streams.enter_context(httpx.stream(
                "GET", f"{url}/api/v1/stream", headers={"X-Forwarded-For": client}, timeout=10))

        for _ in range(2):
            assert stream("10.0.0.1").status_code == 200
        refused = stream("10.0.0.1")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) > 0
        refused.read()
        problem = refused.json()
        assert problem["type"].endswith("too-many-streams-per-client")
        assert "api.sse_max_clients_per_client" in problem["detail"]
        other = stream("10.0.0.2")  # another client still gets a stream
        assert other.status_code == 200
        assert next(other.iter_lines()).startswith("retry:")


def test_client_identity_is_the_key_when_there_is_one() -> None:
    anonymous = Request({"type": "http", "client": ("10.1.2.3", 5000), "headers": []})
    assert client_identity(anonymous) == "addr:10.1.2.3"
    keyed = Request({"type": "http", "client": ("10.1.2.3", 5000), "headers": [],
                     "state": {"api_key_id": 42}})
    assert client_identity(keyed) == "key:42"
    import dataclasses

    from api.auth import SCOPE_KEY, principal_of

    principal = principal_of(anonymous)  # the middleware's Principal type, with a key id
    signed_in = Request({"type": "http", "client": ("10.1.2.3", 5000), "headers": [],
                         SCOPE_KEY: dataclasses.replace(principal, key_id=7)})
    assert client_identity(signed_in) == "key:7"


@pytest.mark.slow
def test_history_over_the_total_cap_is_refused_before_any_query() -> None:
    # Nothing listens at influx.url: a 413 (not a 503) proves no query was sent.
    settings = ApiSettings.model_validate({
        "influx": {"url": f"http://127.0.0.1:{free_port()}", "database": "nowhere",
                   "create_database": False, "timeout_s": 2},
        "limits": {"max_total_points": 1000}})
    app = create_app(settings, registry=api_registry())
    with serve(app) as url:
        started = time.monotonic()
        response = httpx.get(f"{url}/api/v1/readings/history",
                             params={"kind": "air", "limit": 600}, timeout=10)
        elapsed = time.monotonic() - started
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        detail = response.json()["detail"]
        assert "1,200 points (2 series × 600)" in detail
        assert "api.limits.max_total_points" in detail and "shorter range" in detail
        assert elapsed < 1.0, elapsed  # regression guard: refused without any waiting
        # within the cap: asked of the (absent) database -> 503 with Retry-After
        absent = httpx.get(f"{url}/api/v1/readings/history",
                           params={"kind": "air", "limit": 500, "device": "air-tebet"})
        assert absent.status_code == 503 and "retry-after" in absent.headers


@pytest.mark.slow
def test_large_history_is_streamed_capped_and_does_not_block(influxdb: LocalService,
                                                             database: str) -> None:
    start_ms = _big_history(influxdb, database)
    params = {"kind": "air", "fields": "pm25", "limit": POINTS,
              "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_ms / 1000 - 1))}
    # 2 registered series × POINTS fit the cap; air-ghost (unregistered) is cut by it.
    app = create_app(make_settings(influxdb, database, limits={
        "max_points": POINTS, "max_total_points": 2 * POINTS}), registry=api_registry())
    with serve(app) as url:
        answer: dict[str, object] = {}

        def fetch() -> None:
            started = time.monotonic()
            with httpx.stream("GET", f"{url}/api/v1/readings/history", params=params,
                              timeout=60) as response:
                answer["headers"] = response.headers
                answer["status"] = response.status_code
                answer["body"] = response.read()
            answer["seconds"] = time.monotonic() - started

        worker = threading.Thread(target=fetch)
        worker.start()
        slowest = 0.0
        probes = 0
        while worker.is_alive():
            started = time.monotonic()
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            probes += 1
        worker.join()
    assert answer["status"] == 200
    # Streamed end to end, through every middleware: chunked, never one Content-Length body.
    headers = answer["headers"]
    assert isinstance(headers, httpx.Headers)
    assert headers.get("transfer-encoding") == "chunked" and "content-length" not in headers
    body = httpx.Response(200, content=answer["body"]).json()  # valid JSON, all of it
    assert [(s["device"], len(s["times_ms"])) for s in body["series"]] == [
        ("air-ghost", POINTS), ("air-menteng", POINTS)]
    assert body["truncated"] is True  # the total cap stopped air-tebet
    assert body["series"][1]["values"]["pm25"][:2] == [0.5, 1.5]
    assert body["series"][1]["times_ms"][:2] == [start_ms, start_ms + 1000]
    # Regression guard (generous bound): /healthz answers while the big answer is produced.
    print(f"history {answer['seconds']:.2f} s, {len(answer['body'])} bytes; "  # type: ignore[arg-type]
          f"{probes} /healthz probes meanwhile, slowest {slowest * 1000:.0f} ms")
    assert slowest < 1.5, slowest  # typically ~0.3 s here; the issue measured a 4.3 s block


@pytest.mark.slow
def test_a_query_that_times_out_is_a_504_that_says_so(influxdb: LocalService,
                                                      database: str) -> None:
    _big_history(influxdb, database)
    app = create_app(make_settings(influxdb, database, limits={"query_timeout_s": 0.001}),
                     registry=api_registry())
    assert influxdb.pid is not None
    with serve(app) as url:
        # InfluxDB stalls (SIGSTOP) while the query waits for it. A query that is only slow
        # raced the API on a loaded machine (parallel workers): when the API got its turn the
        # answer was already there, no wait took 1 ms, and it answered 200.
        os.kill(influxdb.pid, signal.SIGSTOP)
        try:
            response = httpx.get(f"{url}/api/v1/readings/history",
                                 params={"kind": "air", "interval": "10s", "aggregate": "spread",
                                         "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(
                                             time.time() - 11 * 3600))}, timeout=30)
        finally:
            os.kill(influxdb.pid, signal.SIGCONT)
    assert response.status_code == 504, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "retry-after" not in response.headers
    problem = response.json()
    assert problem["type"].endswith("database-timeout")
    assert "did not answer within 0.001 s (api.limits.query_timeout_s)" in problem["detail"]


@pytest.mark.slow
def test_history_is_produced_a_series_at_a_time(influxdb: LocalService, database: str) -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta

    from api.services.readings import Filters, ReadingsService
    from kota.influx import InfluxClient, InfluxSettings

    start_ms = _big_history(influxdb, database)

    async def pieces() -> list[bytes]:
        client = InfluxClient(InfluxSettings(url=f"http://127.0.0.1:{influxdb.port}",
                                             database=database))
        try:
            service = ReadingsService(client, api_registry(), 3600)
            start = datetime.fromtimestamp(start_ms / 1000 - 1, UTC)
            body = await service.history("air", ["pm25"], Filters(), start,
                                         start + timedelta(hours=10), None, None, POINTS, 10,
                                         10 * POINTS, 30)
            return [piece async for piece in body]
        finally:
            await client.close()

    parts = asyncio.run(pieces())
    whole = b"".join(parts)
    assert len(parts) == 5  # head, one piece per series, tail
    assert max(len(p) for p in parts) < len(whole) / 2
    body = httpx.Response(200, content=whole).json()
    assert [len(s["times_ms"]) for s in body["series"]] == [POINTS] * 3
    assert body["truncated"] is False
