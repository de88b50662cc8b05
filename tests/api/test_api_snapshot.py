"""The public reads come from one shared snapshot (issue 14): one set of queries per refresh
however many clients, pre-encoded bytes per role with an ETag (304 on If-None-Match) and
Cache-Control; each value's age, staleness and its device's Last Will.

Real InfluxDB and a real uvicorn (tests/support/api_data.py); the key store is SQLite.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from api_data import MINUTE, api_registry, make_settings, seed, serve, tags, write_lines
from fastapi.testclient import TestClient

from api.main import create_app
from devstack.localstack import LocalService
from kota.registry import Device, Registry
from store.db import ensure_schema, make_engine
from store.keys import KeyStore
from store.settings import DatabaseSettings

PUBLIC_READS = ("/api/v1/readings/latest", "/api/v1/indicators/ispu",
                "/api/v1/indicators/siaga", "/api/v1/devices")


def _wait_for(check: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:  # bounded by timeout_s
        if callable(check) and check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.slow
def test_many_clients_share_one_refresh(influxdb: LocalService, database: str) -> None:
    seed(influxdb, database)
    app = create_app(make_settings(influxdb, database, snapshot_interval_s=30),
                     registry=api_registry())
    snapshot = app.state.kota.snapshot

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            return await asyncio.gather(*(client.get(path) for path in PUBLIC_READS
                                          for _ in range(25)))

    with serve(app) as url:
        answers = asyncio.run(burst(url))
    assert {a.status_code for a in answers} == {200}
    # 100 requests, 75 of them needing InfluxDB: one refresh read everything they needed.
    assert snapshot.refreshes == 1
    for path in PUBLIC_READS:
        bodies = {a.content for a in answers if a.request.url.path == path}
        assert len(bodies) == 1, path


@pytest.mark.slow
def test_etag_and_cache_control(influxdb: LocalService, database: str) -> None:
    seed(influxdb, database)
    app = create_app(make_settings(influxdb, database, snapshot_interval_s=2,
                                   stale_while_revalidate_s=10), registry=api_registry())
    with TestClient(app) as client:
        for path in PUBLIC_READS:
            first = client.get(path)
            assert first.status_code == 200, path
            etag = first.headers["etag"]
            assert etag.startswith('"') and etag.endswith('"')
            assert first.headers["cache-control"] == ("public, max-age=2, "
                                                      "stale-while-revalidate=10")
            assert "Authorization" in first.headers["vary"]
            assert first.headers["content-type"] == "application/json"
            again = client.get(path, headers={"If-None-Match": f'"nope", {etag}'})
            assert again.status_code == 304 and again.content == b"", path
            assert again.headers["etag"] == etag
            other = client.get(path, headers={"If-None-Match": '"something-else"'})
            assert other.status_code == 200 and other.content == first.content
        # a filter is its own answer, with its own tag
        air = client.get("/api/v1/readings/latest", params={"kind": "air"})
        assert {r["kind"] for r in air.json()["readings"]} == {"air"}
        assert air.headers["etag"] != client.get("/api/v1/readings/latest").headers["etag"]


@pytest.mark.slow
def test_the_snapshot_follows_new_readings(influxdb: LocalService, database: str) -> None:
    seeded = seed(influxdb, database)
    app = create_app(make_settings(influxdb, database, snapshot_interval_s=0.5),
                     registry=api_registry())
    with TestClient(app) as client:
        before = client.get("/api/v1/readings/latest", params={"kind": "water"})
        write_lines(influxdb, database, [
            f"water,{tags('water-manggarai', 'water', 'Tebet')} level_cm=905.0 "
            f"{seeded.now_ms + 1000}"])

        def level() -> float:
            body = client.get("/api/v1/readings/latest", params={"device": "water-manggarai"})
            return float(body.json()["readings"][0]["fields"]["level_cm"])

        _wait_for(lambda: level() == 905.0, 10)
        after = client.get("/api/v1/readings/latest", params={"kind": "water"})
        assert after.headers["etag"] != before.headers["etag"]
        # the status agrees with that level (Siaga 2 from 850 cm)
        siaga = client.get("/api/v1/indicators/siaga").json()
        item = {i["device"]: i for i in siaga["items"]}["water-manggarai"]
        assert (item["level_cm"], item["status"]) == (905.0, 2)


@pytest.mark.slow
def test_devices_answer_changes_with_the_registry(influxdb: LocalService,
                                                  database: str) -> None:
    registry = api_registry()
    app = create_app(make_settings(influxdb, database), registry=registry)
    with TestClient(app) as client:
        first = client.get("/api/v1/devices")
        assert len(first.json()) == 6
        registry.replace(Registry([*registry, Device(
            device_id="noise-tebet", kind="noise", city="jakarta", district="Tebet",
            kelurahan="Tebet", lat=-6.22, lon=106.85, name="Noise")]))
        second = client.get("/api/v1/devices")
        assert len(second.json()) == 7
        assert second.headers["etag"] != first.headers["etag"]
        assert client.get("/api/v1/devices", params={"kind": "noise"}).json()[0][
            "device_id"] == "noise-tebet"


@pytest.mark.slow
def test_ages_staleness_and_last_will(influxdb: LocalService, database: str) -> None:
    seeded = seed(influxdb, database)
    now = seeded.now_ms
    write_lines(influxdb, database, [
        # rain-tebet's agent said goodbye (its Last Will): online false
        f"status,{tags('rain-tebet', 'status', 'Tebet')} online=false {now - 30_000}",
        # a noise meter silent for 20 minutes
        f"noise,{tags('noise-old', 'noise', 'Tebet')} laeq_db=61.0 {now - 20 * MINUTE}"])
    app = create_app(make_settings(influxdb, database).model_copy(
        update={"page": make_settings(influxdb, database).page.model_copy(
            update={"stale_after_s": 600})}), registry=api_registry())
    with TestClient(app) as client:
        readings = {(r["kind"], r["device"]): r
                    for r in client.get("/api/v1/readings/latest").json()["readings"]}
        air = readings[("air", "air-menteng")]
        assert air["age_s"] == pytest.approx((time.time() * 1000 - seeded.menteng_latest_ms)
                                             / 1000, abs=5)
        assert air["stale"] is False and air["offline"] is None
        noise = readings[("noise", "noise-old")]
        assert noise["age_s"] >= 20 * 60 - 1 and noise["stale"] is True
        assert readings[("rain", "rain-tebet")]["offline"] is True
        siaga = client.get("/api/v1/indicators/siaga").json()["items"]
        manggarai = {i["device"]: i for i in siaga}["water-manggarai"]
        assert manggarai["age_s"] == pytest.approx(60, abs=10)
        ispu = client.get("/api/v1/indicators/ispu").json()["items"]
        assert all(i["age_s"] is not None and i["age_s"] >= 0 for i in ispu)


@pytest.mark.slow
def test_public_and_operator_views_are_encoded_apart(influxdb: LocalService, database: str,
                                                     tmp_path: Path) -> None:
    seeded = seed(influxdb, database)
    write_lines(influxdb, database, [
        f'safety,{tags("panic-monas", "safety", "Gambir")},event=panic count=1.0,'
        f'message="tolong",incident_id="inc-9" {seeded.now_ms - 1000}'])
    url = f"sqlite:///{tmp_path / 'kota.db'}"
    engine = make_engine(url)
    ensure_schema(engine, migrate=True)
    _info, key = KeyStore(engine).create("op", "operator", expires_in=None, created_by="test")
    engine.dispose()
    settings = make_settings(influxdb, database).model_copy(
        update={"database": DatabaseSettings(url=url, migrate_on_start=False)})
    with TestClient(create_app(settings, registry=api_registry())) as client:
        public = client.get("/api/v1/readings/latest", params={"kind": "safety"})
        operator = client.get("/api/v1/readings/latest", params={"kind": "safety"},
                              headers={"Authorization": f"Bearer {key}"})
        assert "tolong" not in public.text and "inc-9" not in public.text
        assert "tolong" in operator.text and "inc-9" in operator.text
        assert public.headers["etag"] != operator.headers["etag"]
        assert operator.headers["cache-control"].startswith("private")
        # a public tag does not give an operator the public answer
        again = client.get("/api/v1/readings/latest", params={"kind": "safety"},
                           headers={"Authorization": f"Bearer {key}",
                                    "If-None-Match": public.headers["etag"]})
        assert again.status_code == 200 and "tolong" in again.text


@pytest.mark.slow
def test_kota_api_workers(influxdb: LocalService, database: str, tmp_path: Path) -> None:
    """`kota api --workers 2`: two uvicorn worker processes with the same settings."""
    import os
    import signal
    import subprocess
    import sys

    from devstack.localstack import free_port

    seed(influxdb, database)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOTA_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "kota", "api", "--port", str(port), "--workers", "2",
         "--influx-url", f"http://127.0.0.1:{influxdb.port}", "--database", database],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 40
        answer = None
        while time.monotonic() < deadline and process.poll() is None:  # bounded
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/readings/latest",
                                   timeout=5)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert answer is not None and answer.status_code == 200
        assert answer.json()["count"] >= 5
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) >= 2, children
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output = process.communicate(timeout=20)[0].decode()
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate(timeout=5)[0].decode()
    assert "2 workers" in output
    assert process.returncode in (0, -signal.SIGTERM), output


@pytest.mark.slow
def test_the_fast_path_answers_what_the_routes_answer(influxdb: LocalService,
                                                      database: str) -> None:
    """Anonymous simple reads skip routing (api/services/snapshot.py FastPath); a repeated
    parameter sends the same request through the route: bytes and tags agree."""
    seed(influxdb, database)
    app = create_app(make_settings(influxdb, database, snapshot_interval_s=30),
                     registry=api_registry())
    with TestClient(app) as client:
        for path, query in (("/api/v1/readings/latest", "kind=air"),
                            ("/api/v1/devices", "kind=water"),
                            ("/api/v1/indicators/ispu", "scope=district"),
                            ("/api/v1/indicators/ispu", "scope=device")):
            fast = client.get(f"{path}?{query}")
            routed = client.get(f"{path}?{query}&{query}")
            assert fast.status_code == routed.status_code == 200
            assert fast.content == routed.content, path
            assert fast.headers["etag"] == routed.headers["etag"]
            assert fast.headers["cache-control"] == routed.headers["cache-control"]
            # the security headers are on both
            assert "content-security-policy" in fast.headers
        # an unknown kind is still the route's 422, not the fast path's business
        assert client.get("/api/v1/readings/latest?kind=nope").status_code == 422
        assert client.get("/api/v1/devices?kind=nope").status_code == 422
