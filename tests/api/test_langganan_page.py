"""The sign-up page /langganan in headless Chromium (Debian's package, tests/support/browser.py)
at a phone's viewport (390×844), served by a real uvicorn on an SQLite file, with a real SMTP
server (aiosmtpd) receiving the confirmation mail: choose a kecamatan, hazards and level, sign
up, see "check your mail", follow the link from the mail, see and delete one's data through the
manage link, sign up by "use my location" and unsubscribe through the link's page; Bahasa
Indonesia first with an English toggle; the privacy note; no address in the API's log output."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from api_data import api_registry, make_settings, serve
from browser import Browsed, chromium_page
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.settings import AlertsSettings
from alerts.subscriptions import tokens
from api.main import create_app
from devstack.localstack import LocalService, free_port
from store.db import ensure_schema, make_engine
from store.settings import DatabaseSettings
from store.subscription_models import Subscriber

pytestmark = pytest.mark.slow
PHONE = {"width": 390, "height": 844}
PUBLIC_URL = "https://peringatan.kota.example"
WAIT_MS = 15_000
ADDRESS = "warga.kampung.melayu@example.org"
SECRET = "p" * 40


class Sink:
    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.mails.append(message)
        return "250 Message accepted"


@dataclass
class Served:
    url: str
    sink: Sink
    engine: Any
    alerts: AlertsSettings

    def rows(self) -> list[Subscriber]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(Subscriber).order_by(Subscriber.id)))


@pytest.fixture(name="served")
def served_fixture(influxdb: LocalService, database: str, tmp_path: Path) -> Iterator[Served]:
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    url = f"sqlite:///{tmp_path / 'kota.db'}"
    engine = make_engine(url)
    ensure_schema(engine, migrate=True)
    alerts = AlertsSettings.model_validate({"database": {"url": url}, "subscriptions": {
        "secret": SECRET, "public_url": PUBLIC_URL,
        "smtp": {"host": "127.0.0.1", "port": controller.port, "timeout_s": 5}}})
    settings = make_settings(influxdb, database).model_copy(
        update={"database": DatabaseSettings(url=url, migrate_on_start=False)})
    try:
        with serve(create_app(settings, registry=api_registry(), alerts_settings=alerts)) as base:
            yield Served(base, sink, engine, alerts)
    finally:
        controller.stop()
        engine.dispose()


def _mail(sink: Sink, count: int) -> EmailMessage:
    deadline = time.monotonic() + WAIT_MS / 1000
    while len(sink.mails) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sink.mails) >= count, "no confirmation mail arrived"
    return sink.mails[count - 1]


def _fits_the_phone(browsed: Browsed, selector: str) -> None:
    box = browsed.page.locator(selector).bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box


def test_sign_up_confirm_see_and_delete_on_a_phone(served: Served,
                                                   caplog: pytest.LogCaptureFixture,
                                                   tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    with chromium_page() as browsed:
        page = browsed.page
        page.set_viewport_size(PHONE)
        page.goto(f"{served.url}/langganan/")
        expect(page.locator("h1")).to_have_text("Langganan peringatan dini")
        expect(page.locator("#privacy")).to_contain_text("UU 27/2022")
        expect(page.locator("#privacy")).to_contain_text("alamat Anda langsung dihapus")
        # English on the toggle, and back.
        page.click("#lang-toggle")
        expect(page.locator("h1")).to_have_text("Early-warning subscriptions")
        expect(page.locator("#privacy")).to_contain_text("your address is deleted at once")
        expect(page.locator("#submit")).to_have_text("Subscribe")
        page.click("#lang-toggle")
        expect(page.locator("#submit")).to_have_text("Berlangganan")
        # The 44 kecamatan, grouped by kota administrasi; filter, then choose one.
        expect(page.locator("input[name=district]")).to_have_count(44, timeout=WAIT_MS)
        page.fill("#area-filter", "jatin")
        jatinegara = page.locator("label.area", has_text="Jatinegara")
        expect(jatinegara).to_be_visible()
        expect(page.locator("label.area:has(input[value=Menteng])").first).to_be_hidden()
        jatinegara.click()
        expect(page.locator("#area-count")).to_have_text("1")
        page.locator("label.check", has_text="Siaga 2 (Siaga)").click()
        page.locator("label.check", has_text="Hujan lebat (kategori BMKG)").click()
        page.fill("#address", ADDRESS)
        for selector in ("#signup", "#submit", "#address", "#privacy"):
            _fits_the_phone(browsed, selector)
        page.screenshot(path=str(tmp_path / "langganan-form.png"), full_page=True)
        page.click("#submit")
        expect(page.locator("#check-mail")).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#check-mail h2")).to_have_text("Periksa surel Anda")
        expect(page.locator("#signup")).to_be_hidden()

        [row] = served.rows()
        assert (row.status, row.districts, row.hazards, row.min_severity, row.language) == (
            "pending", ["Jatinegara"], ["flood", "air", "rain"], "Severe", "id-ID")
        mail = _mail(served.sink, 1)
        assert mail["To"] == ADDRESS
        text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        found = re.search(re.escape(PUBLIC_URL) + r"(/api/v1/subscriptions/confirm\?\S+)", text)
        assert found, text
        page.goto(served.url + found.group(1))
        expect(page.locator("h1")).to_have_text("Langganan dikonfirmasi")
        assert f"{served.url}/langganan/langganan.css" in browsed.requests   # styled, no script
        [row] = served.rows()
        assert row.status == "active"

        # The manage link of every mail: see what is stored, then delete it all.
        manage = tokens.manage_url(served.alerts.subscriptions, row.id)
        page.goto(manage.replace(PUBLIC_URL, served.url))
        expect(page.locator("#manage-data")).to_contain_text(ADDRESS, timeout=WAIT_MS)
        expect(page.locator("#manage-data")).to_contain_text("Jatinegara")
        expect(page.locator("#signup")).to_be_hidden()
        _fits_the_phone(browsed, "#manage")
        page.click("#delete-me")
        expect(page.locator("#manage-status")).to_contain_text("Yakin?")
        page.click("#delete-me")
        expect(page.locator("#manage-status")).to_contain_text("sudah dihapus")
        assert served.rows() == []
        assert browsed.errors == []

    logged = "\n".join(record.getMessage() for record in caplog.records
                       if not record.name.startswith("mail.log"))   # the test's SMTP server
    assert "subscriber" in logged and ADDRESS not in logged


def test_use_my_location_in_english(served: Served) -> None:
    with chromium_page() as browsed:
        page = browsed.page
        page.set_viewport_size(PHONE)
        page.context.grant_permissions(["geolocation"], origin=served.url)
        page.context.set_geolocation({"latitude": -6.2251, "longitude": 106.8552})
        page.goto(f"{served.url}/langganan/?lang=en")
        expect(page.locator("h1")).to_have_text("Early-warning subscriptions")
        expect(page.locator("input[name=language][value='en-US']")).to_be_checked()
        page.locator("label", has_text="My location + radius").click()
        expect(page.locator("#where-point")).to_be_visible()
        page.click("#locate")
        expect(page.locator("#lat")).to_have_value("-6.22510", timeout=WAIT_MS)
        expect(page.locator("#lon")).to_have_value("106.85520")
        page.fill("#radius", "3")
        page.fill("#address", "school@example.org")
        page.click("#submit")
        # Visible: the hidden section carries the same words before the answer comes.
        expect(page.locator("#check-mail")).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#check-mail h2")).to_have_text("Check your mail")
        [row] = served.rows()
        assert (row.lat, row.lon, row.radius_km, row.language) == (-6.2251, 106.8552, 3.0,
                                                                   "en-US")
        assert "Confirm" in _mail(served.sink, 1)["Subject"]
        # A refusal is shown in the page, not a blank: a webhook that is no URL.
        page.click("#again")
        page.locator("label", has_text="Webhook").first.click()
        page.fill("#address", "ftp://example.org/hook")
        page.click("#submit")
        expect(page.locator("#form-error")).to_contain_text("http:// or https://")
        # The unsubscribe link: the page asks, the button (a form POST) does it.
        unsubscribe = tokens.unsubscribe_url(served.alerts.subscriptions, row.id)
        page.goto(unsubscribe.replace(PUBLIC_URL, served.url))
        expect(page.locator("h1")).to_have_text("Unsubscribe?")
        assert [r.status for r in served.rows()] == ["pending"]
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Unsubscribed")
        [row] = served.rows()
        assert (row.status, row.address) == ("unsubscribed", "")
        assert browsed.errors == []
