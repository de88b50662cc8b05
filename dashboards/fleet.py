"""Armada dan Platform / Fleet and platform health: last seen, battery, signal, message rate,
ingest lag, dead letters. Reads raw ``status``, ``device_uptime`` (indicator service) and
ingest's own ``kota_ingest`` and ``kota_deadletter``."""

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

__all__ = ["UID", "build"]

UID = "kota-fleet"
DEVICES = filters(device=True)


def build() -> dm.Dashboard:
    board = dashboard(UID, bi("Armada dan Platform", "Fleet and platform health"),
                      "Device heartbeats (status) and the ingest pipeline's own counters.",
                      ["fleet", "platform"], device_from="status")
    board.with_panel(stat_panel(
        bi("Pesan masuk per detik", "Messages in per second"),
        q('SELECT sum("rate") FROM (SELECT non_negative_derivative(max("received"), 1s) '
          'AS "rate" FROM "kota_ingest" WHERE $timeFilter GROUP BY time(1m), "instance") '
          'WHERE $timeFilter GROUP BY time(1m)'),
        unit="reqps", width=4, time_from="15m",
        description="From ingest's kota_ingest counters, summed over instances."))
    board.with_panel(stat_panel(
        bi("Jeda ingest", "Ingest lag"),
        q('SELECT max("lag_s") FROM "kota_ingest" WHERE $timeFilter'), unit="s", width=4,
        time_from="15m", steps=thresholds((None, "green"), (2, "orange"), (30, "red")),
        description="Receive → stored for the oldest message of the last batch."))
    board.with_panel(stat_panel(
        bi("Pesan ditolak (24 jam)", "Dead letters (24 h)"),
        q('SELECT sum("count") FROM "kota_deadletter" WHERE $timeFilter'), width=4,
        time_from="24h", steps=thresholds((None, "green"), (1, "orange"), (100, "red"))))
    board.with_panel(stat_panel(
        bi("Penyangga disk", "Disk buffer"),
        q('SELECT last("buffer_bytes") FROM "kota_ingest" WHERE $timeFilter'), unit="bytes",
        width=4, time_from="15m", steps=thresholds((None, "green"), (1, "orange"))))
    board.with_panel(stat_panel(
        bi("InfluxDB menerima", "InfluxDB taking writes"),
        q('SELECT min("influx_up") FROM "kota_ingest" WHERE $timeFilter'), width=4,
        time_from="5m", steps=thresholds((None, "red"), (1, "green"))))
    board.with_panel(stat_panel(
        bi("Ketersediaan perangkat (kota)", "Device uptime (city)"),
        q('SELECT last("uptime_share") FROM "device_uptime" WHERE "window" = \'1h\' '
          'AND "scope" = \'city\' AND "city" =~ /^$city$/ AND $timeFilter'),
        unit="percentunit", width=4,
        steps=thresholds((None, "red"), (0.9, "orange"), (0.98, "green"))))
    board.with_panel(timeseries_panel(
        bi("Laju pesan", "Message rate"),
        [q('SELECT non_negative_derivative(max("received"), 1s) FROM "kota_ingest" '
           'WHERE $timeFilter GROUP BY time($__interval), "instance" fill(none)',
           alias=bi("diterima", "received") + " $tag_instance"),
         q('SELECT non_negative_derivative(max("written"), 1s) FROM "kota_ingest" '
           'WHERE $timeFilter GROUP BY time($__interval), "instance" fill(none)', ref_id="B",
           alias=bi("ditulis", "written") + " $tag_instance")],
        unit="reqps"))
    board.with_panel(timeseries_panel(
        bi("Jeda ingest dan antrean", "Ingest lag and backlog"),
        [q('SELECT max("lag_s") FROM "kota_ingest" WHERE $timeFilter '
           'GROUP BY time($__interval), "instance" fill(none)', alias="lag $tag_instance"),
         q('SELECT max("pending") FROM "kota_ingest" WHERE $timeFilter '
           'GROUP BY time($__interval), "instance" fill(none)', ref_id="B",
           alias="pending $tag_instance")],
        unit="s"))
    board.with_panel(timeseries_panel(
        bi("Pesan ditolak per alasan", "Dead letters by reason"),
        [q('SELECT sum("count") FROM "kota_deadletter" WHERE $timeFilter '
           'GROUP BY time($__interval), "reason" fill(none)', alias="$tag_reason")],
        bars=True, description="Refused messages (docs/protocol.md reason codes)."))
    board.with_panel(timeseries_panel(
        bi("Laju penolakan", "Rejection rate"),
        [q('SELECT non_negative_derivative(max("rejected"), 1m) FROM "kota_ingest" '
           'WHERE $timeFilter GROUP BY time($__interval), "instance" fill(none)',
           alias="$tag_instance")],
        unit="short", description="Dead letters per minute from ingest's counter."))
    board.with_panel(table_panel(
        bi("Terakhir terlihat", "Last seen"),
        [q('SELECT last("uptime_s") AS "uptime_s", "district" FROM "status" '
           f'WHERE {DEVICES} AND $timeFilter GROUP BY "device"', table_format=True)],
        width=12, height=10,
        description="Time of each device's latest heartbeat in the time range."))
    board.with_panel(bar_gauge(
        bi("Baterai", "Battery"),
        [q(f'SELECT last("battery_pct") FROM "status" WHERE {DEVICES} AND $timeFilter '
           'GROUP BY "device"', alias="$tag_device")],
        unit="percent", width=12, height=10, min_value=0, max_value=100,
        steps=thresholds((None, "red"), (20, "orange"), (40, "green"))))
    board.with_panel(timeseries_panel(
        bi("Sinyal radio", "Radio signal"),
        [q(f'SELECT mean("rssi_dbm") FROM "status" WHERE {DEVICES} AND $timeFilter '
           'GROUP BY time($__interval), "device" fill(none)', alias="$tag_device")],
        unit="dBm"))
    board.with_panel(timeseries_panel(
        bi("Ketersediaan per kecamatan", "Uptime per district"),
        [q('SELECT last("uptime_share") FROM "device_uptime" WHERE "window" = \'1h\' '
           f'AND "scope" = \'district\' AND {filters()} AND $timeFilter '
           'GROUP BY time($__interval), "district" fill(none)', alias="$tag_district")],
        unit="percentunit"))
    return finish(board)
