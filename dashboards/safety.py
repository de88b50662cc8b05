"""Keamanan / Public safety (trantibumlinmas): events on a map and in a table, open incidents,
rates. Reads raw ``safety`` and ``safety_events`` (indicator service)."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from dashboards.common import (
    bar_gauge,
    bi,
    dashboard,
    filters,
    finish,
    q,
    stat_panel,
    table_panel,
    thresholds,
    timeseries_panel,
)
from dashboards.maps import station_map

__all__ = ["OPEN_WINDOW", "UID", "build"]

UID = "kota-safety"
# The platform has no acknowledge/close workflow yet: an incident counts as open for this long.
OPEN_WINDOW = "6h"
OPEN_LABEL = ("6 jam", "6 h")
REAL = f'"event" != \'test\' AND {filters(device=True)}'


def build() -> dm.Dashboard:
    board = dashboard(UID, bi("Keamanan dan Ketertiban", "Public safety"),
                      "Trantibumlinmas events from panic buttons, smoke/fire detectors, crowd "
                      "counters and camera analytics (test events excluded).",
                      ["safety", "trantibumlinmas"], device_from="safety")
    board.with_panel(stat_panel(
        bi(f"Insiden terbuka ({OPEN_LABEL[0]} terakhir)",
           f"Open incidents (last {OPEN_LABEL[1]})"),
        q(f'SELECT count("count") FROM "safety" WHERE {REAL} AND $timeFilter'),
        time_from=OPEN_WINDOW, width=6, height=6,
        steps=thresholds((None, "green"), (1, "orange"), (5, "red")),
        description="No acknowledgement workflow exists yet: every event of the last "
                    f"{OPEN_WINDOW} counts as open."))
    board.with_panel(bar_gauge(
        bi(f"Insiden terbuka per kategori ({OPEN_LABEL[0]})",
           f"Open incidents by category ({OPEN_LABEL[1]})"),
        [q(f'SELECT count("count") FROM "safety" WHERE {REAL} AND $timeFilter GROUP BY "event"',
           alias="$tag_event")],
        width=6, height=6, time_from=OPEN_WINDOW))
    board.with_panel(stat_panel(
        bi("Kejadian per 100 ribu penduduk (hari)", "Events per 100 000 people (day)"),
        q('SELECT last("per_100k") FROM "safety_events" WHERE "window" = \'1d\' '
          'AND "scope" = \'city\' AND "event" = \'all\' AND "city" =~ /^$city$/ '
          'AND $timeFilter'),
        width=6, height=6, time_from="7d",
        description="Last complete local day, city-wide (ISO 37120 style)."))
    board.with_panel(stat_panel(
        bi("Kejadian 24 jam (jam yang selesai)", "Events, 24 h (closed hours)"),
        q('SELECT sum("events") FROM "safety_events" WHERE "window" = \'1h\' '
          'AND "scope" = \'city\' AND "event" = \'all\' AND "city" =~ /^$city$/ '
          'AND $timeFilter'),
        width=6, height=6, time_from="24h"))
    board.with_panel(station_map(
        bi("Peta kejadian", "Events on the map"),
        [q('SELECT count("count") AS "events", sum("count") AS "count" FROM "safety" '
           f'WHERE {REAL} AND $timeFilter GROUP BY "device"', table_format=True)],
        colour_field="events", steps=[(None, "green"), (1, "orange"), (5, "red")],
        width=12, height=12,
        description="Marker per reporting device; colour: events in the time range."))
    board.with_panel(table_panel(
        bi("Daftar kejadian", "Event list"),
        [q('SELECT "event", "district", "device", "count", "confidence", "density", '
           f'"message" FROM "safety" WHERE {REAL} AND $timeFilter '
           'ORDER BY time DESC LIMIT 500', table_format=True)],
        width=12, height=12))
    board.with_panel(timeseries_panel(
        bi("Kejadian per jam per kategori", "Events per hour by category"),
        [q('SELECT sum("events") FROM "safety_events" WHERE "window" = \'1h\' '
           f'AND "scope" = \'district\' AND "event" != \'all\' AND {filters()} AND $timeFilter '
           'GROUP BY time($__interval), "event" fill(none)', alias="$tag_event")],
        bars=True, width=12, height=9))
    board.with_panel(bar_gauge(
        bi("Kejadian per 100 ribu penduduk per kecamatan", "Events per 100 000 by district"),
        [q('SELECT last("per_100k") FROM "safety_events" WHERE "window" = \'1d\' '
           f'AND "scope" = \'district\' AND "event" = \'all\' AND {filters()} AND $timeFilter '
           'GROUP BY "district"', alias="$tag_district")],
        width=12, height=9, time_from="7d",
        description="Last complete local day; districts with unknown population are absent."))
    return finish(board)
