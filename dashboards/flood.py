"""Banjir / Flood: water level per gauge with its Siaga threshold lines, the Ciliwung from
upstream (Katulampa) to downstream (Manggarai), rate of rise, rainfall. Reads ``siaga``
and ``rain_category`` (indicator service), raw ``rain``, and ``alert_events`` (alert service)
as annotations; thresholds from kota/standards/gauges.yaml through
``kota.indices.siaga.load_gauges``."""

from __future__ import annotations

from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.common import (
    SIAGA_MAPPINGS,
    alert_annotation,
    bi,
    dashboard,
    filters,
    finish,
    line_thresholds,
    q,
    stat_panel,
    state_timeline,
    table_panel,
    thresholds,
    timeseries_panel,
)
from kota.indices.siaga import load_gauges
from kota.standards import load_gauges_table

__all__ = ["CILIWUNG", "UID", "build"]

UID = "kota-flood"
# The Ciliwung's gauges in flow order; how long a flood wave takes between them is the
# travel_times table of kota/standards/gauges.yaml, quoted in the panel's description.
CILIWUNG = ("katulampa", "depok", "manggarai")
# A local day's point is stamped with its start and written once the day has closed: the
# last one is up to 48 h old, so day panels look three days back.
LAST_DAY = "3d"


def _gauge_panel(gauge_id: str) -> timeseries.Panel:
    gauge = load_gauges()[gauge_id]
    steps: list[tuple[float | None, str]] = [(None, "green")]
    for threshold, colour in ((gauge.siaga3, "yellow"), (gauge.siaga2, "orange"),
                              (gauge.siaga1, "red")):
        if threshold.value_cm is not None:
            steps.append((threshold.value_cm, colour))
    limits = ", ".join(f"Siaga {n} > {t.value_cm:g} cm" for n, t in
                       ((3, gauge.siaga3), (2, gauge.siaga2), (1, gauge.siaga1))
                       if t.value_cm is not None)
    return timeseries_panel(
        bi(f"Tinggi muka air {gauge.name}", f"Water level, {gauge.name} ({gauge.river})"),
        [q('SELECT mean("level_cm") FROM "siaga" WHERE "window" = \'1m\' '
           f'AND "gauge" = \'{gauge_id}\' AND "city" =~ /^$city$/ AND $timeFilter '
           'GROUP BY time($__interval) fill(none)', alias=bi("Tinggi air", "Level"))],
        unit="lengthcm", width=8, height=8,
        description=f"Level against the gauge datum; lines: {limits} "
                    "(kota/standards/gauges.yaml).",
    ).thresholds(thresholds(*steps)).thresholds_style(line_thresholds())


def _travel_times() -> str:
    """The reported travel times along CILIWUNG, from kota/standards/gauges.yaml."""
    table = load_gauges_table()
    parts = []
    for index, upstream in enumerate(CILIWUNG):
        for downstream in CILIWUNG[index + 1:]:
            route = table.travel_time(upstream, downstream)
            if route is not None:
                low, high = route.hours
                hours = f"{low:g}" if low == high else f"{low:g}–{high:g}"
                parts.append(f"{table.gauges[upstream].name} → "
                             f"{table.gauges[downstream].name} {hours} h")
    return "; ".join(parts) + " as BPBD DKI and BNPB report them, kota/standards/gauges.yaml"


def build() -> dm.Dashboard:
    board = dashboard(UID, bi("Banjir", "Flood"),
                      "Water levels against each gauge's Siaga thresholds, the Ciliwung from "
                      "Katulampa to Manggarai, rate of rise and rainfall.",
                      ["flood", "siaga"], device_from="water")
    board.annotation(alert_annotation("flood", "rain"))
    board.with_panel(state_timeline(
        bi("Status Siaga per pos (per menit)", "Siaga status per gauge (per minute)"),
        q('SELECT min("status") FROM "siaga" WHERE "window" = \'1m\' '
          f'AND {filters(device=True)} AND $timeFilter '
          'GROUP BY time($__interval), "gauge" fill(none)', alias="$tag_gauge"),
        SIAGA_MAPPINGS, width=24, height=7))
    for gauge_id in CILIWUNG:
        board.with_panel(_gauge_panel(gauge_id))
    board.with_panel(timeseries_panel(
        bi("Ciliwung dari hulu ke hilir", "Ciliwung from upstream to downstream"),
        [q('SELECT mean("level_cm") FROM "siaga" WHERE "window" = \'1m\' '
           f'AND "gauge" = \'{gauge_id}\' AND "city" =~ /^$city$/ AND $timeFilter '
           'GROUP BY time($__interval) fill(none)', ref_id=chr(ord("A") + index),
           alias=f"{index + 1}. {load_gauges()[gauge_id].name}")
         for index, gauge_id in enumerate(CILIWUNG)],
        unit="lengthcm", width=12, height=9,
        description=f"Katulampa → Depok → Manggarai: a rise upstream reaches Manggarai hours "
                    f"later ({_travel_times()}). Each against its own datum (compare shapes, "
                    "not heights)."))
    board.with_panel(timeseries_panel(
        bi("Laju kenaikan", "Rate of rise"),
        [q('SELECT mean("rise_cm_per_h") FROM "siaga" WHERE "window" = \'1m\' '
           f'AND {filters(device=True)} AND $timeFilter '
           'GROUP BY time($__interval), "gauge" fill(none)', alias="$tag_gauge")],
        unit="cm/h", width=12, height=9,
        description="Fitted over the last hour of readings (siaga.rise_window_s)."))
    board.with_panel(table_panel(
        bi("Pos duga air sekarang", "Gauges now"),
        [q('SELECT last("level_cm") AS "Tinggi cm", last("status_name") AS "Status", '
           'last("rise_cm_per_h") AS "Naik cm/jam", '
           'last("hours_to_next") AS "Jam ke status berikut", last("age_s") AS "Umur data s" '
           f'FROM "siaga" WHERE "window" = \'1m\' AND {filters(device=True)} AND $timeFilter '
           'GROUP BY "gauge"', table_format=True)],
        width=12, height=9))
    board.with_panel(stat_panel(
        bi("Jam Siaga 2 atau lebih buruk (hari terakhir)",
           "Hours at Siaga 2 or worse (last day)"),
        q('SELECT last("hours_siaga2_or_worse") FROM "siaga" WHERE "window" = \'1d\' '
          f'AND {filters(device=True)} AND $timeFilter GROUP BY "gauge"', alias="$tag_gauge"),
        width=6, height=9, time_from=LAST_DAY,
        steps=thresholds((None, "green"), (1, "orange"), (6, "red")),
        description="Per gauge, last complete local day (its point is stamped with the day's "
                    "start, up to two days back)."))
    board.with_panel(stat_panel(
        bi("Curah hujan 24 jam", "Rainfall, 24 h"),
        q(f'SELECT sum("rain_mm") FROM "rain" WHERE {filters()} AND $timeFilter'),
        unit="lengthmm", width=6, height=9, time_from="24h"))
    board.with_panel(timeseries_panel(
        bi("Curah hujan per kecamatan", "Rainfall per district"),
        [q(f'SELECT sum("rain_mm") FROM "rain" WHERE {filters()} AND $timeFilter '
           'GROUP BY time($__interval), "district" fill(0)', alias="$tag_district")],
        unit="lengthmm", width=12, height=9, bars=True))
    board.with_panel(table_panel(
        bi("Kategori hujan BMKG (jam terakhir)", "BMKG rain category (last hour)"),
        [q('SELECT last("rain_mm") AS "mm", last("category") AS "Kategori" '
           'FROM "rain_category" WHERE "window" = \'1h\' AND "scope" = \'device\' '
           f'AND {filters()} AND $timeFilter GROUP BY "district", "device"',
           table_format=True)],
        width=12, height=9))
    return finish(board)
