"""Offline (issue 14: no internet in the operations centre): with the default settings (no
``api.page.tile_url``) the live page and /docs ask for nothing outside the API's own origin —
no fonts, tiles, scripts, styles or source maps. Every request the browser makes is routed
through the test: one to another origin is recorded and aborted, and the test fails on it.

The page must also work that way: its markers, rows, legend and (when configured) kecamatan
appear, so the test cannot pass on a page that loaded nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_data import api_registry, make_settings, seed, serve
from browser import chromium_page
from playwright.sync_api import Route, expect

from api.main import STATIC_DIR, create_app
from devstack.localstack import LocalService

HANDMADE = Path(__file__).parent / "data" / "kecamatan-handmade.geojson"
# What a browser could fetch from a file it was served: CSS url() and @import, source maps.
FETCHED_FROM_FILES = re.compile(
    r"""url\(\s*['"]?(?P<css>[^'")]+)|@import\s+['"](?P<imp>[^'"]+)|"""
    r"""sourceMappingURL=(?P<map>\S+)""")


@pytest.fixture(params=["default", "with_districts"])
def served(request: pytest.FixtureRequest, influxdb: LocalService,
           database: str) -> Iterator[tuple[str, bool]]:
    seed(influxdb, database)
    settings = make_settings(influxdb, database, sse_interval_s=0.5, sse_max_duration_s=60)
    assert settings.page.tile_url is None  # the default: no tile server
    districts = request.param == "with_districts"
    if districts:
        settings = settings.model_copy(update={"page": settings.page.model_copy(
            update={"districts_geojson": HANDMADE})})
    with serve(create_app(settings, registry=api_registry())) as url:
        yield url, districts


@pytest.mark.slow
def test_the_page_asks_for_nothing_off_its_origin(served: tuple[str, bool]) -> None:
    url, districts = served
    with chromium_page() as browsed:
        page = browsed.page
        outside: list[str] = []
        inside: list[str] = []

        def gate(route: Route) -> None:
            asked = route.request.url
            if asked.startswith(f"{url}/") or asked == url:
                inside.append(asked)
                route.continue_()
            else:
                outside.append(asked)
                route.abort("internetdisconnected")

        page.route("**/*", gate)
        page.goto(f"{url}/")
        expect(page.locator("path.leaflet-interactive")).not_to_have_count(0, timeout=20_000)
        expect(page.locator('#table-air tr[data-device="air-menteng"]')).to_be_attached(
            timeout=20_000)
        expect(page.locator("#legend")).to_be_visible()
        if districts:
            expect(page.locator("path.district")).to_have_count(4, timeout=10_000)
        # A row's chart (uPlot) too.
        page.locator('#table-water tr[data-device="water-manggarai"]').click()
        expect(page.locator("#chart canvas")).to_be_attached(timeout=10_000)
        page.goto(f"{url}/docs")
        expect(page.locator(".swagger-ui .opblock").first).to_be_attached(timeout=20_000)
        assert outside == [], f"the page asked for resources off its origin: {outside}"
        assert any(u.endswith("/vendor/leaflet/leaflet.js") for u in inside), inside
        assert browsed.errors == [], browsed.errors


def test_served_files_name_nothing_off_the_origin() -> None:
    """What the browser would fetch only with DevTools open (source maps) or from CSS is
    relative to the file itself: the API's origin."""
    found = []
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.suffix not in (".js", ".css", ".html") or not path.is_file():
            continue
        for match in FETCHED_FROM_FILES.finditer(path.read_text(encoding="utf-8")):
            target = next(group for group in match.groups() if group)
            if re.match(r"(?i)(https?:)?//", target):
                found.append(f"{path.relative_to(STATIC_DIR)}: {target}")
    assert found == []
