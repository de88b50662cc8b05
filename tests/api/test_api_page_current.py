"""The live page shows how current each value is (issue 14), in headless Chromium: each row's
age, rows greyed when older than api.page.stale_after_s, devices flagged silent or offline
(their heartbeat's Last Will), times with their date when not today, and "live" only while
something reported recently.

The API runs under uvicorn on a free loopback port (tests/support/api_data.py); waits are
locator waits (the page's CSP forbids the eval that wait_for_function needs).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from api_data import MINUTE, api_registry, make_settings, serve, tags, write_lines
from browser import Browsed, chromium_page
from playwright.sync_api import expect

from api.main import create_app
from devstack.localstack import LocalService

STALE_AFTER_S = 600
STALE_CLASS = re.compile(r"(^|\s)stale(\s|$)")


@pytest.fixture
def served(influxdb: LocalService, database: str) -> Iterator[tuple[str, int]]:
    now_ms = int(time.time() * 1000)
    write_lines(influxdb, database, [
        # fresh: a minute old
        f"air,{tags('air-menteng', 'air', 'Menteng')} pm25=40.0,pm10=80.0 {now_ms - MINUTE}",
        # silent for 20 minutes (beyond stale_after_s)
        f"water,{tags('water-manggarai', 'water', 'Tebet')} level_cm=826.0 "
        f"{now_ms - 20 * MINUTE}",
        # an event from 30 hours ago: another day, whatever the hour
        f"safety,{tags('panic-monas', 'safety', 'Gambir')},event=panic count=1.0 "
        f"{now_ms - 30 * 60 * MINUTE}",
        # rain-tebet reports, but its heartbeat twin sent its Last Will
        f"rain,{tags('rain-tebet', 'rain', 'Tebet')} rain_mm=2.5 {now_ms - 2 * MINUTE}",
        f"status,{tags('rain-tebet-status', 'status', 'Tebet')} online=false "
        f"{now_ms - MINUTE}"])
    settings = make_settings(influxdb, database, sse_interval_s=0.5, sse_max_duration_s=60)
    settings = settings.model_copy(update={"page": settings.page.model_copy(
        update={"stale_after_s": STALE_AFTER_S})})
    with serve(create_app(settings, registry=api_registry())) as url:
        yield url, now_ms


@pytest.mark.slow
def test_rows_show_age_staleness_offline_and_dates(browser: Browsed, served: tuple[str, int],
                                                   influxdb: LocalService,
                                                   database: str) -> None:
    url, now_ms = served
    page = browser.page
    page.goto(f"{url}/")
    fresh = page.locator('#table-air tr[data-device="air-menteng"]')
    stale = page.locator('#table-water tr[data-device="water-manggarai"]')
    old_event = page.locator('#table-other tr[data-device="panic-monas"]')
    offline = page.locator('#table-other tr[data-device="rain-tebet"]')
    for row in (fresh, stale, old_event, offline):
        expect(row).to_be_attached(timeout=20_000)
    # The fresh row is not greyed; its time is today's clock and its age about a minute.
    expect(fresh).not_to_have_class(STALE_CLASS)
    fresh_time = fresh.locator('[data-field="time"]').text_content() or ""
    assert "(" in fresh_time and ("dtk" in fresh_time or "1 mnt" in fresh_time), fresh_time
    # The 20-minute-old level is greyed and its gauge flagged silent, with its age.
    expect(stale).to_have_class(STALE_CLASS)
    expect(stale.locator('[data-flag="silent"]')).to_be_visible()
    assert "20 mnt" in (stale.locator('[data-field="time"]').text_content() or "")
    # The event of 30 hours ago carries its date (day and month), not just a clock time.
    event_time = old_event.locator('[data-field="time"]').text_content() or ""
    day = time.strftime("%-d", time.gmtime((now_ms - 30 * 3600_000) / 1000 + 7 * 3600))
    assert event_time.startswith(day + " "), event_time
    assert "jam" in event_time  # age in hours
    # The rain gauge whose heartbeat sent its Last Will is flagged offline.
    expect(offline.locator('[data-flag="offline"]')).to_be_visible()
    # Something reported a minute ago: the page says live.
    expect(page.locator("#connection")).to_contain_text("Langsung", timeout=10_000)


@pytest.mark.slow
def test_a_connected_page_without_new_data_does_not_say_live(
        influxdb: LocalService, database: str) -> None:
    now_ms = int(time.time() * 1000)
    write_lines(influxdb, database, [
        f"water,{tags('water-manggarai', 'water', 'Tebet')} level_cm=700.0 "
        f"{now_ms - 25 * MINUTE}"])
    settings = make_settings(influxdb, database, sse_interval_s=0.5, sse_max_duration_s=60)
    settings = settings.model_copy(update={"page": settings.page.model_copy(
        update={"stale_after_s": STALE_AFTER_S})})
    with serve(create_app(settings, registry=api_registry())) as url, \
            chromium_page() as browsed:
        page = browsed.page
        page.goto(f"{url}/")
        pill = page.locator("#connection")
        expect(pill).to_contain_text("tanpa data baru 25 mnt", timeout=20_000)
        assert "Langsung" not in (pill.text_content() or "")
        expect(page.locator('#table-water tr[data-device="water-manggarai"]')).to_have_class(
            STALE_CLASS)
        assert browsed.errors == []


@pytest.mark.slow
def test_the_operators_first_look(influxdb: LocalService, database: str) -> None:
    """The open-incident count opens a list per district and category, most first, in
    Bahasa Indonesia; water rows come worst first; the search box filters the rows."""
    now_ms = int(time.time() * 1000)
    minute = now_ms // MINUTE * MINUTE - 2 * MINUTE
    incidents = "safety_incidents,city=jakarta,window=1m"
    write_lines(influxdb, database, [
        f"{incidents},event=all,scope=city open_incidents=5.0,stale_incidents=0.0 {minute}",
        f"{incidents},district=Gambir,event=panic,scope=district open_incidents=1.0,"
        f"stale_incidents=0.0 {minute}",
        f"{incidents},district=Setiabudi,event=fire,scope=district open_incidents=4.0,"
        f"stale_incidents=1.0 {minute}",
        f"water,{tags('water-kali', 'water', 'Menteng')} level_cm=120.0 {now_ms - MINUTE}",
        f"water,{tags('water-manggarai', 'water', 'Tebet')} level_cm=826.0 {now_ms - MINUTE}"])
    settings = make_settings(influxdb, database, sse_interval_s=0.5, sse_max_duration_s=60)
    with serve(create_app(settings, registry=api_registry())) as url, \
            chromium_page() as browsed:
        page = browsed.page
        page.goto(f"{url}/")
        expect(page.locator("#incident-count")).to_have_text("5", timeout=20_000)
        page.locator("#incidents summary").click()
        rows = page.locator("#incident-list tbody tr")
        expect(rows).to_have_count(2)
        assert rows.evaluate_all("rows => rows.map(r => [r.dataset.district, r.dataset.event])"
                                 ) == [["Setiabudi", "fire"], ["Gambir", "panic"]]
        expect(rows.first).to_contain_text("kebakaran")
        water = page.locator("#table-water tbody tr")
        expect(water).to_have_count(2)
        assert water.evaluate_all("rows => rows.map(r => r.dataset.device)") == [
            "water-manggarai", "water-kali"]
        # the search box keeps the rows that match every word
        page.locator("#filter").fill("tebet")
        expect(page.locator('#table-water tr[data-device="water-kali"]')).to_be_hidden()
        expect(page.locator('#table-water tr[data-device="water-manggarai"]')).to_be_visible()
        page.locator("#filter").fill("")
        expect(page.locator('#table-water tr[data-device="water-kali"]')).to_be_visible()
        assert browsed.errors == []
