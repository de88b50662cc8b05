"""The live page's alert banner in headless Chromium (Debian's package, tests/support/browser.py),
served by a real uvicorn on an SQLite file whose alerts are made by the engine's own path
(alerts.engine.decide → AlertStore.apply, as the alert service does).

The banner shows the worst active public alert, coloured by severity, with the level words in
both languages and a link to its CAP message; operators' alerts and drills never appear; the
sound is off until clicked, then a tone plays only when something more severe appears.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from api_data import api_registry, make_settings, serve
from browser import Browsed, chromium_page
from playwright.sync_api import expect

from alerts.engine import Timing, decide
from alerts.model import AlertText, Area
from alerts.rules import Finding
from alerts.settings import AlertsSettings
from alerts.state import AlertStore, RuleInfo
from api.main import create_app
from devstack.localstack import LocalService
from store.db import ensure_schema, make_engine
from store.settings import DatabaseSettings

pytestmark = pytest.mark.slow
WAIT_MS = 15_000   # the page polls every second here (?alert_poll_s=1)


@dataclass
class Served:
    url: str
    store: AlertStore


def observe(store: AlertStore, rule_id: str, scope: str, *, grade: int, severity: str,
            hazard: str = "flood", audience: str = "public", exercise: bool = False,
            headline: str = "") -> int:
    """One observation through the engine and the store; returns the alert's id."""
    now = datetime.now(UTC)
    words = headline or f"{rule_id} {scope}"
    finding = Finding(scope=scope, at=now, grade=grade, level=f"Tingkat {grade}",
                      severity=severity,  # type: ignore[arg-type]
                      urgency="Expected", certainty="Observed",
                      area=Area(description=f"Sekitar {scope}", districts=("Tebet",)),
                      city="jakarta",
                      texts={"id-ID": AlertText(words, "Uraian.", "Ikuti arahan BPBD."),
                             "en-US": AlertText(f"EN {words}", "About.", "Follow BPBD.")})
    decision = decide(Timing(), store.active().get((rule_id, scope)), finding.observation(), now)
    view = store.apply(RuleInfo(rule_id, hazard, audience, exercise), scope, decision, finding,
                       now)
    assert view is not None
    return view.id


@pytest.fixture(name="served")
def served_fixture(influxdb: LocalService, database: str, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[Served]:
    url = f"sqlite:///{tmp_path_factory.mktemp('alerts-page') / 'kota.db'}"
    engine = make_engine(url)
    ensure_schema(engine, migrate=True)
    settings = make_settings(influxdb, database, sse_interval_s=0.5,
                             sse_max_duration_s=60).model_copy(
        update={"database": DatabaseSettings(url=url, migrate_on_start=False)})
    app = create_app(settings, registry=api_registry(),
                     alerts_settings=AlertsSettings(database=DatabaseSettings(url=url)))
    with serve(app) as base:
        yield Served(base, AlertStore(engine))


@pytest.fixture(name="browser")
def browser_fixture(served: Served) -> Iterator[Browsed]:
    with chromium_page() as browsed:
        yield browsed
    remote = [u for u in browsed.requests if u.startswith(("http:", "https:", "ws:", "wss:"))
              and not u.startswith(f"{served.url}/")]
    assert remote == [], f"the page asked for resources off the API: {remote}"
    assert browsed.errors == [], f"uncaught errors in the page: {browsed.errors}"


def test_banner_shows_the_worst_public_alert(browser: Browsed, served: Served) -> None:
    page, store = browser.page, served.store
    air = observe(store, "air-ispu", "district:Tebet", grade=1, severity="Moderate",
                  hazard="air", headline="ISPU Tebet Tidak Sehat")
    # Never on the public page, however severe: a panic press (operators) and a drill.
    observe(store, "panic", "device:panic-monas", grade=1, severity="Extreme", hazard="safety",
            audience="operators")
    observe(store, "flood-drill", "gauge:depok", grade=2, severity="Extreme", exercise=True)
    page.goto(f"{served.url}/?alert_poll_s=1")
    banner = page.locator("#alert-banner")
    expect(banner).to_be_visible(timeout=WAIT_MS)
    expect(banner).to_have_attribute("data-alert-id", str(air))
    expect(banner).to_have_class("sev-Moderate")
    expect(page.locator("#alert-level")).to_have_text("Tingkat 1 · Sedang / moderate")
    expect(page.locator("#alert-headline")).to_have_text("ISPU Tebet Tidak Sehat")
    expect(page.locator("#alert-headline-en")).to_have_text("/ EN ISPU Tebet Tidak Sehat")
    expect(page.locator("#alert-area")).to_have_text("Sekitar district:Tebet")
    expect(page.locator("#alert-time")).to_contain_text("WIB")
    expect(page.locator("#alert-others")).to_be_hidden()
    # The banner sits above the map and the tables.
    banner_box, main_box = banner.bounding_box(), page.locator("main").bounding_box()
    assert banner_box and main_box and banner_box["y"] < main_box["y"]
    href = page.locator("#alert-cap").get_attribute("href")
    assert href == f"api/v1/alerts/cap/kota-jakarta-alert-{air}-v1"
    cap = httpx.get(f"{served.url}/{href}", timeout=10)
    assert cap.status_code == 200 and cap.headers["content-type"].startswith(
        "application/cap+xml")
    colour = banner.evaluate("b => getComputedStyle(b).backgroundColor")
    assert colour == "rgb(242, 194, 0)"   # Moderate: yellow

    # Sound off (the default): a worse alert changes the banner, no tone.
    expect(page.locator("#alert-sound")).to_have_attribute("aria-pressed", "false")
    rain = observe(store, "rain-heavy", "district:Gambir", grade=1, severity="Severe",
                   hazard="rain", headline="Hujan lebat Gambir")
    expect(banner).to_have_attribute("data-alert-id", str(rain), timeout=WAIT_MS)
    expect(banner).to_have_class("sev-Severe")
    expect(page.locator("#alert-others-count")).to_have_text("+1 peringatan lain / other alerts")
    assert page.locator("body").get_attribute("data-alert-tones") is None

    # Sound on: a more severe alert plays one tone; a milder one plays none.
    page.locator("#alert-sound").click()
    expect(page.locator("#alert-sound")).to_have_attribute("aria-pressed", "true")
    flood = observe(store, "flood-siaga", "gauge:manggarai", grade=4, severity="Extreme",
                    headline="Pintu Air Manggarai Siaga 1")
    expect(banner).to_have_attribute("data-alert-id", str(flood), timeout=WAIT_MS)
    expect(banner).to_have_class("sev-Extreme")
    expect(page.locator("body")).to_have_attribute("data-alert-tones", "1", timeout=WAIT_MS)
    expect(page.locator("#alert-level")).to_have_text("Tingkat 4 · Ekstrem / extreme")
    observe(store, "rain-light", "district:Menteng", grade=1, severity="Minor", hazard="rain")
    expect(page.locator("body")).to_have_attribute("data-active-alerts", "4", timeout=WAIT_MS)
    polls = int(page.locator("body").get_attribute("data-alert-polls") or 0)
    expect(page.locator("body")).to_have_attribute("data-alert-polls", str(polls + 2),
                                                   timeout=WAIT_MS)
    assert page.locator("body").get_attribute("data-alert-tones") == "1"
    others = page.locator("#alert-others-list li")
    assert others.evaluate_all("items => items.map(li => li.dataset.alertId)")[:2] == [
        str(rain), str(air)]

    # Everything resolved: the banner goes away.
    for alert_id in (air, rain, flood):
        store.resolve(alert_id, "test", None)
    store.resolve(store.find(rule_id="rain-light")[0].id, "test", None)
    expect(banner).to_be_hidden(timeout=WAIT_MS)
