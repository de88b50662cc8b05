"""Roles on every route, against the real InfluxDB and a real key store (SQLite here; the store
itself runs on PostgreSQL too, tests/store): every route × every kind of caller → its status, a
route without a declared role fails; public answers carry no safety free text, incident ids or
exact positions; operators see them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from api_data import MINUTE, api_registry, make_settings, seed, tags, write_lines
from fastapi.testclient import TestClient

from api.main import create_app
from devstack.localstack import LocalService
from store.db import ensure_schema, make_engine
from store.keys import KeyStore
from store.settings import DatabaseSettings

MESSAGE = "Tolong, saya di Monas 0812-3456-7890"

# Every route and the role it serves: a new route must be added here, with its role.
EXPECTED_ROLES = {
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/docs"): "public",
    ("GET", "/openapi.json"): "public",
    ("GET", "/api/v1/devices"): "public",
    ("GET", "/api/v1/devices/{device_id}"): "public",
    ("GET", "/api/v1/readings/latest"): "public",
    ("GET", "/api/v1/readings/latest/districts"): "public",
    ("GET", "/api/v1/readings/history"): "public",
    ("GET", "/api/v1/readings/fields"): "public",
    ("GET", "/api/v1/indicators/ispu"): "public",
    ("GET", "/api/v1/indicators/siaga"): "public",
    ("GET", "/api/v1/indicators/incidents"): "public",
    ("GET", "/api/v1/indicators/incidents/open"): "operator",
    ("GET", "/api/v1/stream"): "public",
    ("GET", "/api/v1/meta"): "public",
    ("GET", "/api/v1/meta/districts"): "public",
    ("POST", "/api/v1/keys"): "admin",
    ("GET", "/api/v1/keys"): "admin",
    ("DELETE", "/api/v1/keys/{key_id}"): "admin",
    ("POST", "/api/v1/devices"): "admin",
    ("DELETE", "/api/v1/devices/{device_id}"): "admin",
    ("GET", "/api/v1/alerts"): "public",
    ("GET", "/api/v1/alerts/{alert_id}"): "public",
    ("GET", "/api/v1/alerts/cap.atom"): "public",
    ("GET", "/api/v1/alerts/cap/{identifier}"): "public",
    ("POST", "/api/v1/alerts/{alert_id}/ack"): "operator",
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): "operator",
    ("GET", "/api/v1/alerts/silences"): "operator",
    ("POST", "/api/v1/alerts/silences"): "operator",
    ("DELETE", "/api/v1/alerts/silences/{silence_id}"): "operator",
    ("GET", "/api/v1/alerts/deliveries"): "operator",
    ("POST", "/api/v1/alerts/deliveries/retry"): "admin",
    ("POST", "/api/v1/subscriptions"): "public",
    ("GET", "/api/v1/subscriptions/areas"): "public",
    ("GET", "/api/v1/subscriptions/confirm"): "public",
    ("GET", "/api/v1/subscriptions/unsubscribe"): "public",
    ("POST", "/api/v1/subscriptions/unsubscribe"): "public",
    ("GET", "/api/v1/subscriptions/me"): "public",
    ("DELETE", "/api/v1/subscriptions/me"): "public",
    ("POST", "/api/v1/subscriptions/agency"): "operator",
    ("GET", "/api/v1/subscriptions"): "operator",
    ("GET", "/api/v1/subscriptions/notifications"): "operator",
    ("DELETE", "/api/v1/subscriptions/{subscriber_id}"): "operator",
}
# What a caller with the role gets where not 200/201: this app has no registry file, so device
# provisioning answers 503 (tests/deploy/test_provisioning.py covers it working); it has no
# alerts, and the keys body is no alert action or silence (tests/api/test_api_alerts.py covers
# them working).
REACHED = {("POST", "/api/v1/devices"): 503, ("DELETE", "/api/v1/devices/{device_id}"): 503,
           ("GET", "/api/v1/alerts/{alert_id}"): 404,
           ("GET", "/api/v1/alerts/cap/{identifier}"): 404,
           ("POST", "/api/v1/alerts/{alert_id}/ack"): 422,
           ("POST", "/api/v1/alerts/{alert_id}/resolve"): 422,
           ("POST", "/api/v1/alerts/silences"): 422,
           ("DELETE", "/api/v1/alerts/silences/{silence_id}"): 404,
           ("POST", "/api/v1/alerts/deliveries/retry"): 200,
           # No alerts.subscriptions.secret here: what signs links answers 503
           # (tests/api/test_api_subscriptions.py covers them working).
           **{(method, f"/api/v1/subscriptions{path}"): 503 for method, path in (
               ("POST", ""), ("GET", "/confirm"), ("GET", "/unsubscribe"),
               ("POST", "/unsubscribe"), ("GET", "/me"), ("DELETE", "/me"),
               ("POST", "/agency"))},
           ("DELETE", "/api/v1/subscriptions/{subscriber_id}"): 404}
CALLERS = ("anonymous", "public", "operator", "admin", "expired", "revoked", "wrong")
RANK = {"public": 0, "operator": 1, "admin": 2}


@dataclass
class Env:
    client: TestClient
    keys: dict[str, str]
    throwaway_id: int


@pytest.fixture(name="env", scope="module")
def env_fixture(influxdb: LocalService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    import httpx

    database = "test_auth"
    httpx.post(f"http://127.0.0.1:{influxdb.port}/query",
               params={"q": f'CREATE DATABASE "{database}"'})
    seeded = seed(influxdb, database)
    write_lines(influxdb, database, [
        f'safety,{tags("panic-monas", "safety", "Gambir")},event=panic count=1.0,'
        f'message="{MESSAGE}",incident_id="inc-77" {seeded.now_ms - MINUTE}'])
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('auth')) / 'kota.db'}"
    engine = make_engine(url)
    ensure_schema(engine, migrate=True)
    store = KeyStore(engine)
    keys = {role: store.create(role, role, expires_in=None, created_by="test")[1]
            for role in ("public", "operator", "admin")}
    _expired, keys["expired"] = store.create("old", "admin", expires_in=timedelta(0),
                                             created_by="test")
    revoked, keys["revoked"] = store.create("gone", "admin", expires_in=None, created_by="test")
    store.revoke(revoked.id)
    keys["wrong"] = keys["admin"][:-4] + "AAAA"
    _scoped, keys["scoped"] = store.create("dashboard", "admin", expires_in=None,
                                           created_by="test",
                                           scopes=("readings:read", "alerts"))
    throwaway, _key = store.create("throwaway", "public", expires_in=None, created_by="test")
    settings = make_settings(influxdb, database, sse_max_duration_s=1).model_copy(
        update={"database": DatabaseSettings(url=url, migrate_on_start=False)})
    with TestClient(create_app(settings, registry=api_registry())) as client:
        yield Env(client, keys, throwaway.id)
    httpx.post(f"http://127.0.0.1:{influxdb.port}/query",
               params={"q": f'DROP DATABASE "{database}"'})


def _headers(env: Env, caller: str, style: str = "bearer") -> dict[str, str]:
    if caller == "anonymous":
        return {}
    key = env.keys[caller]
    return {"Authorization": f"Bearer {key}"} if style == "bearer" else {"X-API-Key": key}


def _expected(role: str, caller: str, method: str, path: str = "") -> int:
    if caller in ("expired", "revoked", "wrong"):
        return 401
    if caller == "anonymous":
        return REACHED.get((method, path), 200) if role == "public" else 401
    if RANK[caller] < RANK[role]:
        return 403
    return REACHED.get((method, path), 201 if method == "POST" else 200)


def _call(env: Env, method: str, path: str, headers: dict[str, str]) -> int:
    concrete = (path.replace("{device_id}", "panic-monas")
                .replace("{key_id}", str(env.throwaway_id)).replace("{alert_id}", "1")
                .replace("{silence_id}", "1").replace("{subscriber_id}", "1")
                .replace("{identifier}", "kota-jakarta-alert-1-v1"))
    params = {"kind": "air"} if path.endswith(("/history", "/fields")) else None
    body = {"name": "made in a test", "role": "public", "expires_in_days": 1}
    response = env.client.request(method, concrete, headers=headers, params=params,
                                  json=body if method == "POST" else None)
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
    return response.status_code


def test_a_scoped_key_reaches_only_its_areas(env: Env) -> None:
    """An admin key limited to readings:read and alerts: the rest of its role is refused."""
    headers = _headers(env, "scoped")
    assert env.client.get("/api/v1/readings/latest", headers=headers).status_code == 200
    assert env.client.get("/api/v1/alerts", headers=headers).status_code == 200
    refused = env.client.get("/api/v1/keys", headers=headers)
    assert refused.status_code == 403 and refused.json()["title"] == "Scope missing"
    assert "keys:read" in refused.json()["detail"]
    assert env.client.get("/api/v1/indicators/ispu", headers=headers).status_code == 403
    # Outside /api/v1/ a key's scopes limit nothing: health and the page stay open.
    assert env.client.get("/healthz", headers=headers).status_code == 200


def test_unknown_scopes_are_refused_when_a_key_is_made(env: Env) -> None:
    answer = env.client.post("/api/v1/keys", headers=_headers(env, "admin"), json={
        "name": "x", "role": "public", "scopes": ["readings:write"]})
    assert answer.status_code == 422 and "unknown scope 'readings:write'" in answer.text


@pytest.mark.slow
def test_every_route_declares_a_role_and_is_listed_here(env: Env) -> None:
    app: Any = env.client.app
    declared = app.state.route_roles
    served = {(method.upper(), path) for path, item in app.openapi()["paths"].items()
              for method in item}
    served |= {("GET", "/docs"), ("GET", "/openapi.json")}  # not in the schema
    assert served == set(declared), "a route without a role in api/main.py"
    assert declared == EXPECTED_ROLES


@pytest.mark.slow
@pytest.mark.parametrize("caller", CALLERS)
def test_route_role_matrix(env: Env, caller: str) -> None:
    wrong = {}
    for (method, path), role in EXPECTED_ROLES.items():
        status = _call(env, method, path, _headers(env, caller))
        if status != _expected(role, caller, method, path):
            wrong[f"{method} {path}"] = (status, _expected(role, caller, method, path))
    assert not wrong, f"{caller}: (got, expected) {wrong}"


def test_x_api_key_header_and_problem_documents(env: Env) -> None:
    assert env.client.get("/api/v1/keys", headers=_headers(env, "admin", "x")).status_code == 200
    anonymous = env.client.get("/api/v1/keys")
    assert anonymous.status_code == 401 and "role admin" in anonymous.json()["detail"]
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    low = env.client.get("/api/v1/keys", headers=_headers(env, "operator"))
    assert low.status_code == 403 and low.json()["title"] == "Role too low"
    assert "revoked" in env.client.get("/healthz",
                                       headers=_headers(env, "revoked")).json()["detail"]
    assert "expired" in env.client.get("/healthz",
                                       headers=_headers(env, "expired")).json()["detail"]
    listing = env.client.get("/api/v1/keys", headers=_headers(env, "admin")).text
    assert not any(key in listing for key in env.keys.values())
    assert "secret_hash" not in listing


@pytest.mark.slow
def test_public_answers_carry_no_safety_details(env: Env) -> None:
    operator = _headers(env, "operator")
    for headers, full in (({}, False), (_headers(env, "public"), False), (operator, True)):
        latest = env.client.get("/api/v1/readings/latest", params={"kind": "safety"},
                                headers=headers).json()["readings"]
        [panic] = [r for r in latest if r["device"] == "panic-monas"]
        assert (panic["fields"].get("message") == MESSAGE) is full
        assert ("incident_id" in panic["fields"]) is full
        assert (panic["lat"] == -6.1796) is full and round(panic["lat"], 2) == -6.18
        assert panic["fields"]["count"] == 1.0 and panic["tags"]["event"] == "panic"
        device = env.client.get("/api/v1/devices/panic-monas", headers=headers).json()
        assert (device["lon"] == 106.82) is full or device["lon"] == 106.82  # 2 decimals already
        assert (device["lat"] == -6.1796) is full
        text = env.client.get("/api/v1/readings/latest", headers=headers).text
        assert (MESSAGE in text) is full and ("inc-77" in text) is full
        history = env.client.get("/api/v1/readings/history", params={"kind": "safety"},
                                 headers=headers)
        assert history.status_code == (200 if full else 401 if not headers else 403)


@pytest.mark.slow
def test_public_stream_carries_no_safety_details(env: Env) -> None:
    for headers, full in (({}, False), (_headers(env, "operator"), True)):
        body = env.client.get("/api/v1/stream", params={"kind": "safety"}, headers=headers).text
        snapshot = next(line for line in body.splitlines() if line.startswith("data: {"))
        readings = json.loads(snapshot[6:])["readings"]
        assert readings and all(r["kind"] == "safety" for r in readings)
        assert (MESSAGE in body) is full and ("inc-77" in body) is full


def test_page_is_public(env: Env) -> None:
    assert env.client.get("/").status_code == 200
    assert env.client.get("/app.js").status_code == 200
