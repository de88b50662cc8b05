"""The live page in headless Chromium (Debian's package): it shows the devices from the API and
updates when a new reading is written, through the server-sent-event stream.

The API runs under uvicorn on a free loopback port; Chromium is driven by Playwright
(tests/support/browser.py: the system executable, no browser download).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from api_data import api_registry, make_settings, seed, serve, tags, write_lines
from browser import Browsed, chromium_page
from playwright.sync_api import expect

from api.main import create_app
from devstack.localstack import LocalService

MARKERS = "path.leaflet-interactive"
FILLS = "paths => paths.map(p => p.getAttribute('fill'))"


@pytest.fixture
def served_api(influxdb: LocalService, database: str) -> Iterator[str]:
    app = create_app(make_settings(influxdb, database, sse_interval_s=0.5,
                                   sse_max_duration_s=60), registry=api_registry())
    with serve(app) as url:
        yield url


@pytest.fixture
def browser(served_api: str) -> Iterator[Browsed]:
    with chromium_page() as browsed:
        yield browsed
    # Everything the page loaded came from the API (Leaflet, Swagger UI and the tiles are
    # served locally), and no script failed.
    remote = [url for url in browsed.requests
              if url.startswith(("http:", "https:", "ws:", "wss:"))
              and not url.startswith(f"{served_api}/")]
    assert remote == [], f"the page asked for resources off the API: {remote}"
    assert browsed.errors == [], f"uncaught errors in the page: {browsed.errors}"


@pytest.mark.slow
def test_page_shows_devices_and_updates_live(browser: Browsed, served_api: str,
                                             influxdb: LocalService, database: str) -> None:
    page = browser.page
    seeded = seed(influxdb, database)
    # open incidents as the indicator service writes them (window 1m): 2 in the city
    minute = seeded.now_ms // 60_000 * 60_000 - 120_000
    write_lines(influxdb, database, [
        "safety_incidents,city=jakarta,event=all,scope=city,window=1m "
        f"open_incidents=2.0,stale_incidents=0.0 {minute}"])
    # The page opens on the data: the stream's first snapshot brings the readings and the
    # indicators together. (The stream fetches indicators again only when air or water readings
    # arrive, so a page opened mid-write could miss the incidents.)
    page.goto(f"{served_api}/")
    # Markers for the five non-heartbeat devices, and their rows with values.
    # (A locator wait, not wait_for_function: its polling evaluates a string, which the page's
    # Content-Security-Policy rightly forbids — script-src 'self', no 'unsafe-eval'.)
    page.locator(MARKERS).nth(5).wait_for(state="attached", timeout=20_000)
    assert page.locator("#device-count").text_content() == "6"
    expect(page.locator('#table-air tr[data-device="air-menteng"]')).to_be_attached(
        timeout=20_000)
    air = page.locator("#table-air tbody tr").evaluate_all(
        "rows => rows.map(tr => [tr.dataset.device,"
        " tr.querySelector('[data-field=pm25]').textContent,"
        " tr.querySelector('[data-field=category]').textContent])")
    assert air == [["air-menteng", "40", "Sedang"], ["air-tebet", "20", "tidak cukup data"]]
    water = page.locator("#table-water tbody tr").evaluate_all(
        "rows => rows.map(tr => [tr.dataset.device,"
        " tr.querySelector('[data-field=level_cm]').textContent,"
        " tr.querySelector('[data-field=status]').textContent])")
    assert ["water-manggarai", "860", "Siaga 2 · Siaga"] in water
    # The Menteng marker has the Sedang colour from the ISPU table.
    fills = page.locator(MARKERS).evaluate_all(FILLS)
    assert "#193ce3" in fills and "#f07d00" in fills
    expect(page.locator("#incident-count")).to_have_text("2", timeout=15_000)
    before = int(page.evaluate("document.body.dataset.updates"))

    # A new reading arrives: the stream pushes it, the row and the marker change.
    write_lines(influxdb, database, [
        f"water,{tags('water-manggarai', 'water', 'Tebet')} level_cm=961.0 "
        f"{int(time.time() * 1000)}",
        f"air,{tags('air-tebet', 'air', 'Tebet')} pm25=77.0 {seeded.now_ms + 1000}"])
    manggarai = page.locator('#table-water tr[data-device="water-manggarai"]')
    expect(manggarai.locator("[data-field=level_cm]")).to_have_text("961", timeout=15_000)
    expect(manggarai.locator("[data-field=status]")).to_contain_text("Awas", timeout=15_000)
    expect(page.locator('#table-air tr[data-device="air-tebet"] [data-field=pm25]')).to_have_text(
        "77", timeout=15_000)
    assert int(page.evaluate("document.body.dataset.updates")) > before
    fills = page.locator(MARKERS).evaluate_all(FILLS)
    assert "#d7261e" in fills  # Awas red


@pytest.mark.slow
def test_docs_render_offline(browser: Browsed, served_api: str) -> None:
    """Swagger UI comes from api/static/vendor: /docs lists the operations with no internet."""
    page = browser.page
    page.goto(f"{served_api}/docs")
    operations = page.locator(".swagger-ui .opblock")
    expect(operations.first).to_be_attached(timeout=20_000)
    assert operations.count() >= 10
    assert "/api/v1/readings/history" in page.locator("body").inner_text()
