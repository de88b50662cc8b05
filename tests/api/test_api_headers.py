"""Security headers on every response, no ``server: uvicorn``, and no credentials in /readyz or
the start-up log: ``kota api`` itself (the path operators run), under uvicorn (issue 10)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from api_data import api_registry, make_settings, serve

from api.headers import content_security_policy
from api.main import create_app
from devstack.localstack import LocalService, free_port
from kota.influx import redact_url

SECRET = "s3cret-Passw0rd"


def _check_headers(response: httpx.Response, what: str) -> None:
    headers = response.headers
    assert "server" not in headers, headers
    assert headers.get("x-content-type-options") == "nosniff", (what, response.status_code)
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "http:" not in csp and "https:" not in csp  # nothing from outside by default


@pytest.mark.slow
def test_kota_api_sends_security_headers_and_never_prints_the_password(tmp_path: Path) -> None:
    port = free_port()
    closed = free_port()  # nothing listens: /readyz answers 503 and names the database's URL
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOTA_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "kota", "api", "--port", str(port), "--influx-url",
         f"http://kota:{SECRET}@127.0.0.1:{closed}/?u=kota&p={SECRET}", "--database", "uji"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        responses = {path: httpx.get(base + path, timeout=5)
                     for path in ("/healthz", "/", "/app.js", "/api/v1/devices", "/nowhere",
                                  "/openapi.json", "/docs", "/readyz")}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output = process.communicate(timeout=15)[0].decode()
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate(timeout=5)[0].decode()
    for path, response in responses.items():
        _check_headers(response, path)
        assert SECRET not in response.text, path
    ready = responses["/readyz"]
    assert ready.status_code == 503
    assert f"kota:***@127.0.0.1:{closed}" in ready.json()["detail"]
    assert responses["/nowhere"].status_code == 404
    # Swagger UI starts with an inline script: allowed on /docs only.
    assert "'unsafe-inline'" in responses["/docs"].headers["content-security-policy"].split(
        "script-src")[1].split(";")[0]
    assert "'unsafe-inline'" not in responses["/"].headers["content-security-policy"].split(
        "script-src")[1].split(";")[0]
    assert "Kota Cerdas API on" in output, output
    assert f"kota:***@127.0.0.1:{closed}" in output
    assert SECRET not in output


@pytest.mark.slow
def test_streams_and_problems_carry_the_headers_too(influxdb: LocalService,
                                                    database: str) -> None:
    app = create_app(make_settings(influxdb, database, sse_max_duration_s=1),
                     registry=api_registry())
    with serve(app) as url:
        with httpx.stream("GET", f"{url}/api/v1/stream", timeout=10) as stream:
            assert stream.status_code == 200
            assert stream.headers["x-content-type-options"] == "nosniff"
            assert "frame-ancestors 'none'" in stream.headers["content-security-policy"]
        problem = httpx.get(f"{url}/api/v1/readings/history", params={"kind": "nope"})
        assert problem.status_code == 422
        assert problem.headers["content-type"] == "application/problem+json"
        assert problem.headers["x-frame-options"] == "DENY"


def test_the_tile_server_is_the_only_other_origin() -> None:
    csp = content_security_policy("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png")
    assert "img-src 'self' data: https://*.tile.openstreetmap.org;" in csp
    assert content_security_policy("https://tiles.example.org:8443/{z}/{x}/{y}.png").count(
        "https://tiles.example.org:8443") == 1


def test_redact_url() -> None:
    assert redact_url("http://admin:pw@influx:8086/") == "http://admin:***@influx:8086/"
    assert redact_url("https://token@h/x?token=abc&db=k") == "https://***@h/x?token=***&db=***"
    assert redact_url("http://127.0.0.1:8086") == "http://127.0.0.1:8086"
