"""The live page in headless Chromium (Debian's package): it shows the devices from the API and
updates when a new reading is written, through the server-sent-event stream.

The API runs under uvicorn on a free loopback port; Chromium is driven over the DevTools
protocol with a minimal WebSocket client (no extra dependency).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_api_support import api_registry, make_settings, seed, serve, tags, write_lines

from api.main import create_app
from devstack.localstack import LocalService, free_port

CHROMIUM = shutil.which("chromium")


class Cdp:
    """Just enough of RFC 6455 and the DevTools protocol: send a command, read its answer."""

    def __init__(self, ws_url: str, timeout_s: float = 20) -> None:
        host_port, _, path = ws_url.removeprefix("ws://").partition("/")
        host, _, port = host_port.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            assert chunk, "DevTools closed the connection during the handshake"
            response += chunk
        assert response.startswith(b"HTTP/1.1 101"), response[:200]
        self.buffer = response.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0

    def _read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            assert chunk, "DevTools closed the connection"
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def _frame(self) -> tuple[int, bytes]:
        first, second = self._read(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack(">H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack(">Q", self._read(8))
        return first, self._read(length)

    def _message(self) -> dict[str, Any]:
        parts = []
        while True:
            first, payload = self._frame()
            parts.append(payload)
            if first & 0x80:  # FIN
                result: dict[str, Any] = json.loads(b"".join(parts))
                return result

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        body = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(body) < 126:
            header += bytes([0x80 | len(body)])
        else:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(body))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
        self.sock.sendall(header + mask + masked)
        for _ in range(1000):  # skip events; answers come soon
            message = self._message()
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message.get("result", {})
        raise AssertionError(f"no answer to {method}")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {value})")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def served_api(influxdb: LocalService, database: str) -> Iterator[str]:
    app = create_app(make_settings(influxdb, database, sse_interval_s=0.5,
                                   sse_max_duration_s=60), registry=api_registry())
    with serve(app) as url:
        yield url


def chromium_args(profile: Path) -> list[str]:
    assert CHROMIUM is not None, "chromium is not installed: scripts/install-services.sh test"
    return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--window-size=1400,900"]


def stop_chromium(process: subprocess.Popen[bytes]) -> None:
    """Stop the Chromium we started and every helper it forked (its own process group).

    Chromium's renderer, zygote and crashpad helpers outlive the main process by a moment and
    keep writing to the profile; removing the profile before they are gone fails with
    "Directory not empty" (seen once in CI).
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
    # The helpers are in the same group; give them up to 5 s to exit, then kill what is left.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def remove_profile(profile: Path) -> None:
    """Remove the profile folder, retrying a few times while late writes settle."""
    for _attempt in range(20):
        try:
            shutil.rmtree(profile)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.25)
    shutil.rmtree(profile)  # the last attempt raises what is still wrong


@pytest.fixture
def browser(served_api: str) -> Iterator[Cdp]:
    profile = Path(tempfile.mkdtemp(prefix="kota-chromium-"))
    port = free_port()
    # A new session puts Chromium and its helpers in one process group we can stop together.
    try:
        process = subprocess.Popen([*chromium_args(profile),
                                    f"--remote-debugging-port={port}", f"{served_api}/"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
    except OSError:
        remove_profile(profile)
        raise
    try:
        deadline = time.monotonic() + 30
        target = None
        while target is None and time.monotonic() < deadline:
            try:
                pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                target = next((p for p in pages if p.get("type") == "page"), None)
            except httpx.HTTPError:
                pass
            if target is None:
                time.sleep(0.2)
        assert target is not None, "Chromium's DevTools did not come up"
        cdp = Cdp(target["webSocketDebuggerUrl"])
        try:
            yield cdp
        finally:
            cdp.close()
    finally:
        stop_chromium(process)
        remove_profile(profile)


def test_page_shows_devices_and_updates_live(browser: Cdp, influxdb: LocalService,
                                             database: str) -> None:
    seeded = seed(influxdb, database)
    # open incidents as the indicator service writes them (window 1m): 2 in the city
    minute = seeded.now_ms // 60_000 * 60_000 - 120_000
    write_lines(influxdb, database, [
        "safety_incidents,city=jakarta,event=all,scope=city,window=1m "
        f"open_incidents=2.0,stale_incidents=0.0 {minute}"])
    # Markers for the five non-heartbeat devices, and their rows with values.
    browser.wait_for("document.querySelectorAll('path.leaflet-interactive').length >= 6", 20,
                     "the markers")
    assert browser.evaluate("document.getElementById('device-count').textContent") == "6"
    browser.wait_for("!!document.querySelector('#table-air tr[data-device=\"air-menteng\"]')", 20,
                     "the air table")
    air = browser.evaluate(
        "[...document.querySelectorAll('#table-air tbody tr')].map(tr => [tr.dataset.device,"
        " tr.querySelector('[data-field=pm25]').textContent,"
        " tr.querySelector('[data-field=category]').textContent])")
    assert air == [["air-menteng", "40", "Sedang"], ["air-tebet", "20", "tidak cukup data"]]
    water = browser.evaluate(
        "[...document.querySelectorAll('#table-water tbody tr')].map(tr => [tr.dataset.device,"
        " tr.querySelector('[data-field=level_cm]').textContent,"
        " tr.querySelector('[data-field=status]').textContent])")
    assert ["water-manggarai", "860", "Siaga 2 · Siaga"] in water
    # The Menteng marker has the Sedang colour from the ISPU table.
    fills = browser.evaluate("[...document.querySelectorAll('path.leaflet-interactive')]"
                             ".map(p => p.getAttribute('fill'))")
    assert "#193ce3" in fills and "#f07d00" in fills
    browser.wait_for("document.getElementById('incident-count').textContent === '2'", 15,
                     "the open incidents")
    before = int(browser.evaluate("document.body.dataset.updates"))

    # A new reading arrives: the stream pushes it, the row and the marker change.
    write_lines(influxdb, database, [
        f"water,{tags('water-manggarai', 'water', 'Tebet')} level_cm=961.0 "
        f"{int(time.time() * 1000)}",
        f"air,{tags('air-tebet', 'air', 'Tebet')} pm25=77.0 {seeded.now_ms + 1000}"])
    browser.wait_for("document.querySelector('#table-water tr[data-device=\"water-manggarai\"] "
                     "[data-field=level_cm]').textContent === '961'", 15, "the new level")
    browser.wait_for("document.querySelector('#table-water tr[data-device=\"water-manggarai\"] "
                     "[data-field=status]').textContent.includes('Awas')", 15, "Siaga 1 Awas")
    browser.wait_for("document.querySelector('#table-air tr[data-device=\"air-tebet\"] "
                     "[data-field=pm25]').textContent === '77'", 15, "the new PM2.5")
    assert int(browser.evaluate("document.body.dataset.updates")) > before
    fills = browser.evaluate("[...document.querySelectorAll('path.leaflet-interactive')]"
                             ".map(p => p.getAttribute('fill'))")
    assert "#d7261e" in fills  # Awas red


def test_docs_render_offline(browser: Cdp, served_api: str) -> None:
    """Swagger UI comes from api/static/vendor: /docs lists the operations with no internet."""
    browser.call("Page.navigate", url=f"{served_api}/docs")
    count = browser.wait_for("document.querySelectorAll('.swagger-ui .opblock').length", 20,
                             "the operations in Swagger UI")
    assert count >= 10
    assert "/api/v1/readings/history" in browser.evaluate("document.body.innerText")
