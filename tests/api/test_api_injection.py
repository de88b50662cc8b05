"""Hostile parameters: 422 problem details, and not one statement reaches InfluxDB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kota.influx import InfluxClient

HOSTILE = [
    "x' OR '1'='1",
    "air'; DROP DATABASE kota; --",
    'a"; DROP MEASUREMENT air',
    ".*",
    "^air",
    "air|water",
    "/air/",
    "(x)",
    "x\\",
    "a\nb",
    "Tebet' OR district =~ /.*/",
    "",
]

ENDPOINTS = [
    ("/api/v1/readings/latest", "device"),
    ("/api/v1/readings/latest", "district"),
    ("/api/v1/readings/latest", "city"),
    ("/api/v1/readings/latest", "kind"),
    ("/api/v1/readings/latest/districts", "district"),
    ("/api/v1/readings/history", "device"),
    ("/api/v1/readings/history", "district"),
    ("/api/v1/readings/history", "fields"),
    ("/api/v1/readings/history", "interval"),
    ("/api/v1/readings/history", "aggregate"),
    ("/api/v1/indicators/ispu", "device"),
    ("/api/v1/indicators/ispu", "district"),
    ("/api/v1/indicators/ispu", "scope"),
    ("/api/v1/indicators/siaga", "district"),
    ("/api/v1/stream", "device"),
    ("/api/v1/stream", "kind"),
    ("/api/v1/devices", "district"),
]


@pytest.fixture
def statements(api_app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every InfluxQL statement the app sends, recorded (and still sent)."""
    sent: list[str] = []
    client: InfluxClient = api_app.state.kota.influx
    original = client.query

    async def recording(influxql: str, **kwargs: object) -> list[dict[str, object]]:
        sent.append(influxql)
        return await original(influxql, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(client, "query", recording)
    yield sent


@pytest.mark.slow
@pytest.mark.parametrize(("path", "name"), ENDPOINTS)
def test_hostile_parameter_is_a_422_problem(api_client: TestClient, statements: list[str],
                                            path: str, name: str) -> None:
    for value in HOSTILE:
        params = {name: value}
        if path.endswith("/history") and name != "kind":
            params["kind"] = "air"
        response = api_client.get(path, params=params)
        assert response.status_code == 422, (path, name, value, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == 422 and body["instance"] == path
        assert body["errors"][0]["loc"] == ["query", name] or name in body["detail"]
    assert statements == []


@pytest.mark.slow
@pytest.mark.parametrize("value", ["x'y", "..", "a b", "%27"])
def test_hostile_path_parameter(api_client: TestClient, statements: list[str],
                                value: str) -> None:
    response = api_client.get(f"/api/v1/devices/{value}")
    assert response.status_code in (404, 422)
    assert response.headers["content-type"] == "application/problem+json"
    assert statements == []


def test_unknown_district_is_refused_before_the_database(api_client: TestClient,
                                                         statements: list[str]) -> None:
    response = api_client.get("/api/v1/readings/latest", params={"district": "Atlantis"})
    assert response.status_code == 404
    assert response.json()["type"] == "urn:kota-cerdas:problem:unknown-district"
    assert statements == []


def test_valid_parameters_do_reach_the_database_quoted(api_client: TestClient,
                                                       statements: list[str],
                                                       seeded: object) -> None:
    """The recorder works: an accepted request is sent, with its values as string literals.
    (/latest/districts: /latest itself filters the shared snapshot in memory.)"""
    response = api_client.get("/api/v1/readings/latest/districts",
                              params={"district": "Tebet", "device": "air-tebet", "kind": "air"})
    assert response.status_code == 200
    assert response.json()[0]["devices"] == 1
    assert statements == ['SELECT * FROM "air" WHERE time > now() - 604800s AND '
                          "\"district\" = 'Tebet' AND \"device\" = 'air-tebet' "
                          'GROUP BY "device" ORDER BY time DESC LIMIT 1']
