"""Ringkasan Kota / City overview: green-city and trantibumlinmas indicators at a glance.
Reads ``city_indicators`` (per local day), ``ispu``, ``safety_events``, ``siaga`` and
``device_uptime`` (indicator service), and ``alert_events`` (alert service)."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from dashboards.common import (
    RANK_STEPS,
    SIAGA_MAPPINGS,
    alerts_table,
    bi,
    dashboard,
    filters,
    finish,
    ispu_thresholds,
    q,
    rank_mappings,
    stat_panel,
    state_timeline,
    table_panel,
    thresholds,
    timeseries_panel,
)

__all__ = ["UID", "build"]

UID = "kota-city"
# Daily points are stamped with the local day's start: look back far enough to find the last.
DAYS = "7d"
CITY_DAY = '"window" = \'1d\' AND "scope" = \'city\' AND "city" =~ /^$city$/'


def _city_day(field: str) -> str:
    return f'SELECT last("{field}") FROM "city_indicators" WHERE {CITY_DAY} AND $timeFilter'


def build() -> dm.Dashboard:
    board = dashboard(UID, bi("Ringkasan Kota", "City overview"),
                      "Green-city (air, flood monitoring) and trantibumlinmas (public order and "
                      "safety) indicators per local day, and the latest hour.",
                      ["overview"], device_from=None)
    board.with_panel(stat_panel(
        bi("ISPU kota (jam terakhir)", "City ISPU (last hour)"),
        q('SELECT last("ispu") FROM "ispu" WHERE "window" = \'1h\' AND "scope" = \'city\' '
          'AND "city" =~ /^$city$/ AND $timeFilter'), steps=ispu_thresholds()))
    board.with_panel(stat_panel(
        bi("PM2.5 rata-rata harian", "PM2.5 daily mean"), q(_city_day("pm25_daily_mean")),
        unit="µg/m³", time_from=DAYS,
        steps=thresholds((None, "green"), (15, "yellow"), (55, "red")),
        description="Mean of the stations' hourly means, last complete local day; yellow "
                    "above the WHO 2021 guideline (15), red above the national 24-h standard "
                    "(55, PP 22/2021)."))
    board.with_panel(stat_panel(
        bi("Jam ISPU Baik", "Hours with ISPU Baik"), q(_city_day("ispu_share_baik")),
        unit="percentunit", time_from=DAYS,
        steps=thresholds((None, "red"), (0.5, "yellow"), (0.8, "green"))))
    board.with_panel(stat_panel(
        bi("Stasiun udara per km²", "Air stations per km²"),
        q(_city_day("air_stations_per_km2")), time_from=DAYS,
        description="ISO 37122: live stations over the area of districts with a known area."))
    board.with_panel(stat_panel(
        bi("Penduduk terpantau pos banjir", "Population covered by a flood gauge"),
        q(_city_day("population_share_flood_gauge")), unit="percentunit", time_from=DAYS,
        description="The project's own sensing coverage: share of the population living in a "
                    "district with a live flood gauge that has Siaga thresholds (so its levels "
                    "raise alerts)."))
    board.with_panel(stat_panel(
        bi("Kejadian sensor keamanan per 100 ribu penduduk",
           "Safety sensor events per 100 000 people"),
        q(_city_day("safety_sensor_events_per_100k")), time_from=DAYS,
        description="The project's own figure, not an ISO 37120 rate: events reported by safety "
                    "devices (all but test) per day per 100 000."))
    board.with_panel(timeseries_panel(
        bi("ISPU per kecamatan", "ISPU per district"),
        [q('SELECT last("ispu") FROM "ispu" WHERE "window" = \'1h\' AND "scope" = \'district\' '
           f'AND {filters()} AND $timeFilter GROUP BY time($__interval), "district" fill(none)',
           alias="$tag_district")], height=9).thresholds(ispu_thresholds()))
    board.with_panel(state_timeline(
        bi("Kategori ISPU kota", "City ISPU category"),
        q('SELECT last("category_rank") FROM "ispu" WHERE "window" = \'1h\' '
          'AND "scope" = \'city\' AND "city" =~ /^$city$/ AND $timeFilter '
          'GROUP BY time($__interval) fill(none)', alias="ISPU"),
        rank_mappings(), height=9, steps=thresholds(*RANK_STEPS)))
    board.with_panel(state_timeline(
        bi("Status Siaga per pos", "Siaga status per gauge"),
        q('SELECT min("status") FROM "siaga" WHERE "window" = \'1h\' '
          f'AND {filters()} AND $timeFilter GROUP BY time($__interval), "gauge" fill(none)',
          alias="$tag_gauge"),
        SIAGA_MAPPINGS, height=8,
        description="Worst status per hour (Siaga 4 Normal … Siaga 1 Awas)."))
    board.with_panel(timeseries_panel(
        bi("Kejadian keamanan per jam", "Safety events per hour"),
        [q('SELECT sum("events") FROM "safety_events" WHERE "window" = \'1h\' '
           f'AND "scope" = \'district\' AND "event" = \'all\' AND {filters()} AND $timeFilter '
           'GROUP BY time($__interval) fill(0)', alias=bi("Kejadian", "Events"))],
        bars=True, height=8))
    board.with_panel(table_panel(
        bi("Indikator kecamatan (hari terakhir)", "District indicators (last day)"),
        [q('SELECT last("pm25_daily_mean") AS "PM2.5 µg/m³", '
           'last("ispu_share_baik") AS "Baik", last("ispu_share_worse") AS "Tidak sehat+", '
           'last("air_stations_live") AS "Stasiun udara", '
           'last("flood_gauge_live") AS "Pos banjir", '
           'last("flood_gauge_alerting") AS "Pos banjir + Siaga", '
           'last("siaga2_hours") AS "Jam Siaga ≤2", '
           'last("safety_sensor_events") AS "Kejadian sensor", '
           'last("safety_sensor_events_per_100k") AS "Kejadian/100rb", '
           'last("noise_night_exceedances") AS "Bising malam", '
           'last("uptime_share") AS "Uptime" FROM "city_indicators" '
           f'WHERE "window" = \'1d\' AND "scope" = \'district\' AND {filters()} '
           'AND $timeFilter GROUP BY "district"', table_format=True)],
        width=24, height=10, time_from=DAYS,
        description="Last complete local day per kecamatan (docs/indicators.md, "
                    "city_indicators)."))
    board.with_panel(timeseries_panel(
        bi("Ketersediaan perangkat", "Device uptime"),
        [q('SELECT last("uptime_share") FROM "device_uptime" WHERE "window" = \'1h\' '
           f'AND "scope" = \'district\' AND {filters()} AND $timeFilter '
           'GROUP BY time($__interval), "district" fill(none)', alias="$tag_district")],
        unit="percentunit", width=24, height=8))
    board.with_panel(alerts_table())
    return finish(board)
