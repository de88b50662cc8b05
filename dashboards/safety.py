"""Keamanan / Public safety (trantibumlinmas): events on a map and in a table, open incidents,
rates. Reads raw ``safety``, and ``safety_events`` and ``safety_incidents`` (indicator
service)."""

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

__all__ = ["LATEST_MINUTES", "UID", "build"]

UID = "kota-safety"
REAL = f'"event" != \'test\' AND "event" != \'resolved\' AND {filters(device=True)}'
# Incidents open/stale at the end of the latest computed minute (indicator service, measurement
# safety_incidents, window 1m): that point is about 1 min + lateness (120 s) old; 30 min holds
# it through a short catch-up.
LATEST_MINUTES = "30m"
_INCIDENTS = ('FROM "safety_incidents" WHERE "window" = \'1m\' AND "scope" = \'city\' '
              'AND "city" =~ /^$city$/ AND $timeFilter')


def build() -> dm.Dashboard:
    board = dashboard(UID, bi("Keamanan dan Ketertiban", "Public safety"),
                      "Trantibumlinmas events from panic buttons, smoke/fire detectors, crowd "
                      "counters and camera analytics (test events excluded).",
                      ["safety", "trantibumlinmas"], device_from="safety")
    board.with_panel(stat_panel(
        bi("Insiden terbuka", "Open incidents"),
        q(f'SELECT last("open_incidents") {_INCIDENTS} AND "event" = \'all\''),
        time_from=LATEST_MINUTES, width=4, height=6,
        steps=thresholds((None, "green"), (1, "orange"), (5, "red")),
        description="Incidents with no `resolved` event whose first report is within "
                    "incident_open_horizon_h (default 24 h), city-wide, at the end of the "
                    "latest computed minute. An event without incident_id is an incident."))
    board.with_panel(stat_panel(
        bi("Insiden basi (belum ditutup)", "Stale incidents (never closed)"),
        q(f'SELECT last("stale_incidents") {_INCIDENTS} AND "event" = \'all\''),
        time_from=LATEST_MINUTES, width=4, height=6,
        steps=thresholds((None, "green"), (1, "orange")),
        description="Unresolved incidents older than incident_open_horizon_h (read back "
                    "incident_lookback_h, default 7 days): not counted as open."))
    board.with_panel(bar_gauge(
        bi("Insiden terbuka per kategori", "Open incidents by category"),
        [q(f'SELECT last("open_incidents") {_INCIDENTS} AND "event" != \'all\' '
           'GROUP BY "event"', alias="$tag_event")],
        width=4, height=6, time_from=LATEST_MINUTES,
        description="Category of each incident's first report; 0 for categories whose "
                    "recent incidents are all closed."))
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
        [q('SELECT "event", "incident_id", "district", "device", "count", "confidence", '
           f'"density", "message" FROM "safety" WHERE "event" != \'test\' AND '
           f'{filters(device=True)} AND $timeFilter '
           'ORDER BY time DESC LIMIT 500', table_format=True)],
        width=12, height=12))
    board.with_panel(timeseries_panel(
        bi("Kejadian per jam per kategori", "Events per hour by category"),
        [q('SELECT sum("events") FROM "safety_events" WHERE "window" = \'1h\' '
           f'AND "scope" = \'district\' AND "event" != \'all\' AND "event" != \'resolved\' '
           f'AND {filters()} AND $timeFilter '
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
