"""The live page's events and incidents in headless Chromium (issue 14): a safety device whose
last event is a resolution, in a district where two incidents are still open, says so and comes
first; an operator who types their key sees each open incident (category in Bahasa, opened with
its date, age, state) with a link to its alert, worst first; a public key is refused and
forgotten.

Real services throughout: the safety events in InfluxDB, the counts computed by the real
indicator service, the alert made by the engine's own path in SQLite, real API keys.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from api_data import MINUTE, make_settings, serve, tags, write_lines
from browser import Browsed
from incident_data import fire_alert, incident_registry
from playwright.sync_api import expect

from alerts.settings import AlertsSettings
from alerts.state import AlertStore
from api.main import create_app
from devstack.localstack import LocalService
from indicators.context import Context, District, DistrictTable
from indicators.service import IndicatorService
from indicators.settings import IndicatorSettings
from kota.influx import InfluxSettings
from store.db import ensure_schema, make_engine
from store.keys import KeyStore
from store.settings import DatabaseSettings

pytestmark = pytest.mark.slow

ID_MONTHS = ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des")


def compute_minute(influx: LocalService, database: str, minute_ms: int) -> None:
    """The indicator service's open-incident counts for the minute ending at ``minute_ms``."""
    settings = IndicatorSettings(
        influx=InfluxSettings(url=f"http://127.0.0.1:{influx.port}", database=database),
        metrics_port=0, windows=["1m"])
    service = IndicatorService(settings, Context(incident_registry(), DistrictTable([
        District("Setiabudi", 8.85, 130_000.0, 2020, "jakarta")])))

    async def go() -> None:
        try:
            await service.recompute(minute_ms - MINUTE, minute_ms)
        finally:
            await service.close()
    asyncio.run(go())


@pytest.fixture
def served(influxdb: LocalService, database: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    now_ms = int(time.time() * 1000)
    setiabudi = tags("panic-setiabudi", "safety", "Setiabudi")
    write_lines(influxdb, database, [
        f'safety,{setiabudi},event=fire count=1.0,incident_id="inc-fire" {now_ms - 40 * MINUTE}',
        f'safety,{setiabudi},event=panic count=1.0 {now_ms - 20 * MINUTE}',
        f'safety,{setiabudi},event=crowd count=1.0,incident_id="inc-done" {now_ms - 15 * MINUTE}',
        f'safety,{setiabudi},event=resolved count=1.0,incident_id="inc-done" '
        f'{now_ms - 5 * MINUTE}',
        f"rain,{tags('rain-tebet', 'rain', 'Tebet')} rain_mm=2.5 {now_ms - MINUTE}"])
    compute_minute(influxdb, database, now_ms // MINUTE * MINUTE)
    url = f"sqlite:///{tmp_path / 'kota.db'}"
    engine = make_engine(url)
    ensure_schema(engine, migrate=True)
    keys = {role: KeyStore(engine).create(role, role, expires_in=None, created_by="test")[1]
            for role in ("public", "operator")}
    alert_id = fire_alert(AlertStore(engine, []), "inc-fire", "Severe",
                          datetime.now(UTC) - timedelta(minutes=39))
    settings = make_settings(influxdb, database, sse_interval_s=0.5, sse_max_duration_s=60)
    settings = settings.model_copy(
        update={"database": DatabaseSettings(url=url, migrate_on_start=False)})
    app = create_app(settings, registry=incident_registry(),
                     alerts_settings=AlertsSettings(database=DatabaseSettings(url=url)))
    with serve(app) as base:
        yield {"url": base, "keys": keys, "alert_id": alert_id, "now_ms": now_ms}


def test_events_show_open_incidents_and_operators_see_each(browser: Browsed,
                                                           served: dict[str, Any]) -> None:
    page = browser.page
    page.goto(f"{served['url']}/")
    # the events table: Setiabudi's last event is a resolution, yet two incidents are open there
    row = page.locator('#table-other tr[data-device="panic-setiabudi"]')
    expect(row.locator(".open-note")).to_have_attribute("data-open", "2", timeout=20_000)
    note = row.locator(".open-note").text_content() or ""
    assert "2 insiden terbuka di Setiabudi" in note
    assert "kebakaran 1" in note and "tombol darurat 1" in note
    assert "selesai" in (row.locator("[data-field=safety]").text_content() or "")
    first = page.locator("#table-other tbody tr").first
    assert first.get_attribute("data-device") == "panic-setiabudi"
    # a public key is refused and forgotten
    page.locator("#incidents summary").click()
    page.locator("#operator-key").fill(served["keys"]["public"])
    page.locator("#incident-operator button[type=submit]").click()
    expect(page.locator("#incident-operator [role=alert]")).to_contain_text("bukan kunci operator")
    assert page.evaluate("() => sessionStorage.getItem('kota.operatorKey')") is None
    # the operator's key: each open incident, the alerted one first
    page.locator("#operator-key").fill(served["keys"]["operator"])
    page.locator("#incident-operator button[type=submit]").click()
    rows = page.locator("#operator-incidents tbody tr")
    expect(rows).to_have_count(2, timeout=10_000)
    seen = rows.evaluate_all("rows => rows.map(tr => [tr.dataset.incident, tr.dataset.event, "
                             "tr.dataset.state, tr.dataset.alert])")
    assert seen == [["inc-fire", "fire", "open", str(served["alert_id"])],
                    ["", "panic", "open", ""]]
    opened = rows.first.locator("[data-field=opened]").text_content() or ""
    moment = datetime.fromtimestamp((served["now_ms"] - 40 * MINUTE) / 1000, UTC).astimezone(
        ZoneInfo("Asia/Jakarta"))
    assert opened.startswith(f"{moment.day} {ID_MONTHS[moment.month - 1]} {moment.year}"), opened
    assert opened.endswith("WIB")
    assert re.fullmatch(r"(39|40|41) mnt", rows.first.locator("[data-field=age]").text_content()
                        or ""), rows.first.locator("[data-field=age]").text_content()
    assert "kebakaran" in (rows.first.text_content() or "")
    # the alert, fetched with the key
    rows.first.locator("a[data-alert-link]").click()
    expect(rows.first).to_contain_text("Insiden inc-fire")
    # the key stays for this tab: a reload shows the list again, without typing
    page.reload()
    page.locator("#incidents summary").click()
    expect(page.locator("#operator-incidents tbody tr")).to_have_count(2, timeout=15_000)
    page.locator("#operator-forget").click()
    expect(page.locator("#operator-key")).to_be_visible()
