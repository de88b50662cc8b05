"""The live page's history chart in headless Chromium (issue 14): a title in words with its
unit, x ticks in id-ID (day before month, Jakarta's clock), the gauge's Siaga thresholds drawn
as lines in their colours (read back from the canvas' pixels), ISPU bands on an air chart from
the API (kota/standards/ispu.yaml), a range beyond 24 h, and a CSV download holding what the
chart draws and what the JSON history says.

The API runs under uvicorn on a free loopback port (tests/support/api_data.py); waits are
locator waits (the page's CSP forbids the eval that wait_for_function needs).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from api_data import api_registry, make_settings, seed, serve
from browser import Browsed
from playwright.sync_api import expect

from api.main import create_app
from devstack.localstack import LocalService
from kota.standards import load_gauges_table, load_ispu_table

pytestmark = pytest.mark.slow

ID_MONTHS = ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des")
SIAGA_COLOURS = {3: (0xf2, 0xc2, 0x00), 2: (0xf0, 0x7d, 0x00), 1: (0xd7, 0x26, 0x1e)}
# Share of the pixels along a threshold that carry its colour: a dashed line (6 on, 4 off)
# covers about 60 %; where the level's own line crosses it, less.
MIN_LINE_SHARE = 0.3

# The canvas pixels along each threshold's y, as [value, [[r, g, b], ...]].
LINE_PIXELS = """() => {
  const u = state.chart;
  const bands = [...document.querySelectorAll('#chart-bands li')]
    .filter((li) => li.dataset.lower !== '').map((li) => Number(li.dataset.lower));
  const {left, width} = u.bbox;
  return bands.map((value) => {
    const y = Math.round(u.valToPos(value, 'y', true));
    const pixels = [];
    for (let x = left + 2; x < left + width - 2; x += 3) {
      const d = u.ctx.getImageData(x, y, 1, 1).data;
      pixels.push([d[0], d[1], d[2]]);
    }
    return [value, pixels];
  });
}"""


@pytest.fixture
def served(influxdb: LocalService, database: str) -> Iterator[str]:
    seed(influxdb, database)
    app = create_app(make_settings(influxdb, database, sse_interval_s=0.5,
                                   sse_max_duration_s=60), registry=api_registry())
    with serve(app) as url:
        yield url


def open_chart(browsed: Browsed, url: str, device: str) -> None:
    page = browsed.page
    page.goto(f"{url}/")
    row = page.locator(f'table.readings tr[data-device="{device}"]')
    row.wait_for(timeout=20_000)
    row.click()
    page.locator("#chart canvas").first.wait_for(timeout=15_000)


def jakarta_days(now: datetime, hours: int) -> set[str]:
    """Every "3 Des" a chart of the last ``hours`` can show."""
    days = set()
    for back in range(0, hours + 24, 6):
        moment = (now - timedelta(hours=back)).astimezone(ZoneInfo("Asia/Jakarta"))
        days.add(f"{moment.day} {ID_MONTHS[moment.month - 1]}")
    return days


def close_to(pixel: list[int], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 40 for a, b in zip(pixel, colour, strict=True))


def test_water_chart_words_dates_thresholds_and_csv(browser: Browsed, served: str,
                                                    tmp_path: Path) -> None:
    page = browser.page
    open_chart(browser, served, "water-manggarai")
    title = page.locator("#chart-title").text_content() or ""
    assert "Tinggi muka air (cm)" in title and "level_cm" not in title
    assert "maksimum per 10 menit, 24 jam terakhir" in title
    # id-ID ticks: day before month, never a US "12/3"
    ticks = page.locator("#chart").get_attribute("data-ticks")
    assert ticks, "the chart recorded no ticks"
    lines = [line for tick in json.loads(ticks) for line in tick.split("\n")]
    assert not any(re.search(r"\d+/\d+", line) for line in lines), lines
    dated = [line for line in lines if re.fullmatch(r"\d{1,2} [A-Z][a-z]{2}", line)]
    assert dated and set(dated) <= jakarta_days(datetime.now(UTC), 24), lines
    times = [line for line in lines if line not in dated]
    assert times and all(re.fullmatch(r"\d{2}\.\d{2}", line) for line in times), lines
    # the gauge's thresholds: in the legend, and drawn in their Siaga colours
    gauge = load_gauges_table().gauges["manggarai"]
    thresholds = {status: t.value_cm for status, t in gauge.thresholds()}
    legend = page.locator("#chart-bands li").evaluate_all(
        "items => items.map(li => [li.dataset.status, li.dataset.lower])")
    assert legend == [["4", ""]] + [[str(s), f"{v:g}"] for s, v in thresholds.items()]
    drawn = dict((value, pixels) for value, pixels in page.evaluate(LINE_PIXELS))
    for status, value in thresholds.items():
        pixels = drawn[value]
        share = sum(close_to(p, SIAGA_COLOURS[status]) for p in pixels) / len(pixels)
        assert share >= MIN_LINE_SHARE, (status, value, share)
    # the CSV download: the chart's points, as the JSON history gives them
    href = page.locator("#chart-csv").get_attribute("href") or ""
    with page.expect_download() as info:
        page.locator("#chart-csv").click()
    saved = tmp_path / "chart.csv"
    info.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    query = parse_qs(urlsplit(href).query)
    assert query["format"] == ["csv"] and query["interval"] == ["10m"]
    del query["format"]
    series = httpx.get(f"{served}/api/v1/readings/history",
                       params={k: v[0] for k, v in query.items()}).json()["series"][0]
    assert [float(r["level_cm"]) for r in rows] == series["values"]["level_cm"] == [
        800.0, 830.0, 860.0]
    assert [int(datetime.fromisoformat(r["time_utc"]).timestamp() * 1000)
            for r in rows] == series["times_ms"]
    drawn_values = page.evaluate("() => state.chart.data[1]")
    assert drawn_values == series["values"]["level_cm"]


def test_longer_range_and_air_bands(browser: Browsed, served: str) -> None:
    page = browser.page
    open_chart(browser, served, "air-menteng")
    title = page.locator("#chart-title").text_content() or ""
    assert "Kualitas udara PM2.5 (µg/m³)" in title, title
    table = load_ispu_table()
    edges = table.parameters["pm25"].edges_ugm3
    bands = page.locator("#chart-bands li").evaluate_all(
        "items => items.map(li => [li.dataset.lower, li.dataset.upper, li.textContent])")
    assert [(float(lo), float(hi)) for lo, hi, _ in bands] == list(itertools.pairwise(edges))
    assert [text.split(" ")[0] for _, _, text in bands] == [
        c.name.split(" ")[0] for c in table.categories.bands]
    # 7 days: hourly buckets, dates on the axis
    page.locator('#chart-tools button[data-range="7d"]').click()
    expect(page.locator("#chart-panel")).to_have_attribute("data-range", "7d")
    expect(page.locator("#chart-title")).to_contain_text("per 1 jam, 7 hari terakhir")
    expect(page.locator('#chart-tools button[data-range="7d"]')).to_have_attribute(
        "aria-pressed", "true")
    href = page.locator("#chart-csv").get_attribute("href") or ""
    query = parse_qs(urlsplit(href).query)
    start, end = (datetime.fromisoformat(query[k][0].replace("Z", "+00:00"))
                  for k in ("start", "end"))
    assert (query["interval"], end - start) == (["1h"], timedelta(days=7))
    ticks = json.loads(page.locator("#chart").get_attribute("data-ticks") or "[]")
    firsts = [tick.split("\n")[0] for tick in ticks]
    assert firsts and all(re.fullmatch(r"\d{1,2} [A-Z][a-z]{2}", t) for t in firsts), ticks
    assert set(firsts) <= jakarta_days(datetime.now(UTC), 24 * 7)
