"""Kualitas Udara / Air quality: stations on a map by ISPU category, pollutant trends,
critical parameter. Reads ``ispu`` and ``aqi_us`` (indicators), raw ``air``, and ``alert_events``
(alert service) as annotations."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from dashboards.common import (
    RANK_STEPS,
    alert_annotation,
    bi,
    dashboard,
    filters,
    finish,
    ispu_thresholds,
    line_thresholds,
    q,
    rank_mappings,
    stat_panel,
    state_timeline,
    table_panel,
    thresholds,
    timeseries_panel,
)
from dashboards.maps import station_map
from kota.standards import load_aqi_tables

__all__ = ["UID", "build"]

UID = "kota-air"
DEVICES = filters(device=True)
HOURLY_STATIONS = f'"window" = \'1h\' AND "scope" = \'device\' AND {DEVICES}'

# EPA's category colours from kota/standards/aqi_us.yaml, not ISPU's: the AQI is a whole number,
# so a category starts at the whole number after the previous one's top (Moderate at 51).
_AQI_CATEGORIES = load_aqi_tables().categories.bands
AQI_BANDS: list[tuple[float | None, str]] = [
    (None if index == 0 else _AQI_CATEGORIES[index - 1].index_max + 1, band.hex)
    for index, band in enumerate(_AQI_CATEGORIES)]


def build() -> dm.Dashboard:
    board = dashboard(UID, bi("Kualitas Udara", "Air quality"),
                      "ISPU (Permen LHK P.14/2020) per station, district and city from the "
                      "indicator service; raw pollutant trends from the stations.",
                      ["air", "ispu"], device_from="air")
    board.annotation(alert_annotation("air"))
    board.with_panel(stat_panel(
        bi("ISPU kota", "City ISPU"),
        q('SELECT last("ispu") FROM "ispu" WHERE "window" = \'1h\' AND "scope" = \'city\' '
          'AND "city" =~ /^$city$/ AND $timeFilter'),
        steps=ispu_thresholds(), width=4, height=6,
        description="Worst complete station in the city, latest closed hour."))
    board.with_panel(stat_panel(
        bi("Parameter kritis", "Critical parameter"),
        q('SELECT last("critical_parameter") FROM "ispu" WHERE "window" = \'1h\' '
          'AND "scope" = \'city\' AND "city" =~ /^$city$/ AND $timeFilter'),
        width=4, height=6, description="Parameter with the highest sub-index (city, last hour)."))
    board.with_panel(stat_panel(
        bi("AQI AS (pembanding)", "US AQI (comparison)"),
        q('SELECT last("aqi") FROM "aqi_us" WHERE "window" = \'1h\' AND "scope" = \'city\' '
          'AND "city" =~ /^$city$/ AND $timeFilter'),
        steps=thresholds(*AQI_BANDS), width=4, height=6,
        description="US EPA AQI (2024 table): the highest sub-index of PM2.5 and PM10 (NowCast), "
                    "O3, CO, NO2 and SO2, in EPA's colours (green Good … maroon Hazardous)."))
    board.with_panel(station_map(
        bi("Peta stasiun menurut kategori ISPU", "Stations by ISPU category"),
        [q('SELECT last("category_rank") AS "rank", last("ispu") AS "ispu", '
           'last("critical_parameter") AS "critical" FROM "ispu" '
           f'WHERE {HOURLY_STATIONS} AND $timeFilter GROUP BY "device"', table_format=True)],
        colour_field="rank", steps=RANK_STEPS, width=12, height=12,
        description="Colour: ISPU category of the latest hour (hijau Baik, biru Sedang, kuning "
                    "Tidak Sehat, merah Sangat Tidak Sehat, hitam Berbahaya)."))
    board.with_panel(timeseries_panel(
        bi("ISPU per stasiun", "ISPU per station"),
        [q('SELECT last("ispu") FROM "ispu" '
           f'WHERE {HOURLY_STATIONS} AND $timeFilter '
           'GROUP BY time($__interval), "device" fill(none)', alias="$tag_device")],
        width=12, height=12).thresholds(ispu_thresholds()).thresholds_style(
            line_thresholds()))
    board.with_panel(timeseries_panel(
        bi("PM2.5 per stasiun", "PM2.5 per station"),
        [q(f'SELECT mean("pm25") FROM "air" WHERE {DEVICES} AND $timeFilter '
           'GROUP BY time($__interval), "device" fill(none)', alias="$tag_device")],
        unit="µg/m³", description="Raw readings, mean per interval."))
    board.with_panel(timeseries_panel(
        bi("PM10 per stasiun", "PM10 per station"),
        [q(f'SELECT mean("pm10") FROM "air" WHERE {DEVICES} AND $timeFilter '
           'GROUP BY time($__interval), "device" fill(none)', alias="$tag_device")],
        unit="µg/m³"))
    board.with_panel(timeseries_panel(
        bi("Gas (rata-rata stasiun terpilih)", "Gases (mean of selected stations)"),
        [q('SELECT mean("no2") AS "NO2", mean("o3") AS "O3", mean("so2") AS "SO2", '
           f'mean("hc") AS "HC" FROM "air" WHERE {DEVICES} AND $timeFilter '
           'GROUP BY time($__interval) fill(none)')],
        unit="µg/m³"))
    board.with_panel(timeseries_panel(
        bi("Karbon monoksida", "Carbon monoxide"),
        [q(f'SELECT mean("co") FROM "air" WHERE {DEVICES} AND $timeFilter '
           'GROUP BY time($__interval), "device" fill(none)', alias="$tag_device")],
        unit="µg/m³"))
    board.with_panel(state_timeline(
        bi("Kategori ISPU per kecamatan", "ISPU category per district"),
        q('SELECT last("category_rank") FROM "ispu" WHERE "window" = \'1h\' '
          f'AND "scope" = \'district\' AND {filters()} AND $timeFilter '
          'GROUP BY time($__interval), "district" fill(none)', alias="$tag_district"),
        rank_mappings(), width=12, height=10, steps=thresholds(*RANK_STEPS)))
    board.with_panel(state_timeline(
        bi("Parameter kritis per kecamatan", "Critical parameter per district"),
        q('SELECT last("critical_parameter") FROM "ispu" WHERE "window" = \'1h\' '
          f'AND "scope" = \'district\' AND {filters()} AND $timeFilter '
          'GROUP BY time($__interval), "district" fill(none)', alias="$tag_district"),
        [], width=24, height=8))
    board.with_panel(table_panel(
        bi("Stasiun: ISPU, kategori, parameter kritis", "Stations: ISPU, category, critical "
           "parameter"),
        [q('SELECT last("ispu") AS "ISPU", last("category") AS "Kategori", '
           'last("critical_parameter") AS "Parameter kritis", last("complete") AS "Lengkap", '
           f'last("insufficient") AS "Data kurang" FROM "ispu" WHERE {HOURLY_STATIONS} '
           'AND $timeFilter GROUP BY "device"', table_format=True)],
        width=24, height=10,
        description="Latest closed hour; 'Data kurang' lists parameters without enough data."))
    board.with_panel(timeseries_panel(
        bi("Suhu dan kelembapan", "Temperature and humidity"),
        [q('SELECT mean("temperature") AS "Suhu °C", mean("humidity") AS "RH %" FROM "air" '
           f'WHERE {DEVICES} AND $timeFilter GROUP BY time($__interval) fill(none)')],
        width=24, height=7))
    return finish(board)
