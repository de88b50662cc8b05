"""Grafana's InfluxQL interpolation, imitated: ``$timeFilter``, ``$__interval(_ms)`` and the
template variables filled in as Grafana 11 does before it sends a query. Used by the tests (to
run every panel's query against a real InfluxDB) and by ``dashboards.preview``; no Grafana
runs here, so this is our reading of Grafana's behaviour, not Grafana's code."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["DASHBOARD_RANGE_S", "MAX_DATA_POINTS", "MIN_INTERVAL", "interpolate", "interval_for",
           "panel_range_s", "regex_escape", "seconds"]

DASHBOARD_RANGE_S = 24 * 3600.0  # every dashboard opens on now-24h
MIN_INTERVAL = "10s"             # the datasource's timeInterval (dashboards/provisioning)
MAX_DATA_POINTS = 1000           # about a panel's width in pixels
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Grafana's rounding of range / max data points (rangeutil.roundInterval), coarsely.
_ROUNDED = [(15, "10s"), (35, "20s"), (75, "1m"), (210, "2m"), (450, "5m"), (750, "10m"),
            (1050, "15m"), (1500, "20m"), (2700, "30m"), (5400, "1h"), (9000, "2h"),
            (16200, "3h"), (32400, "6h"), (86400, "12h")]


def seconds(duration: str) -> float:
    """``90s``, ``15m``, ``6h``, ``7d`` → seconds."""
    return float(duration[:-1]) * _UNITS_S[duration[-1]]


def interval_for(range_s: float) -> str:
    raw = range_s / MAX_DATA_POINTS
    chosen = next((name for limit, name in _ROUNDED if raw < limit), "1d")
    return chosen if seconds(chosen) >= seconds(MIN_INTERVAL) else MIN_INTERVAL


def regex_escape(value: str) -> str:
    """A variable value as Grafana escapes it for use inside an InfluxQL regex."""
    return re.sub(r"([\\^$*+?.()|{}\[\]/])", r"\\\1", value)


def panel_range_s(panel: dict[str, Any]) -> float:
    """The panel's own relative range (``timeFrom``) or the dashboard's."""
    return seconds(panel["timeFrom"]) if panel.get("timeFrom") else DASHBOARD_RANGE_S


def interpolate(query: str, panel: dict[str, Any], values: dict[str, str], now_s: float,
                absolute: bool = False) -> str:
    """The query as Grafana would send it for ``values`` (already regex-escaped, or ``.*``).

    Relative ranges become ``time >= now() - Ns``; ``absolute`` gives Grafana's form for a
    fixed range, ``time >= <ms>ms and time <= <ms>ms``, ending at ``now_s``.
    """
    range_s = panel_range_s(panel)
    if absolute:
        start_ms, end_ms = int((now_s - range_s) * 1000), int(now_s * 1000)
        time_filter = f"time >= {start_ms}ms and time <= {end_ms}ms"
    else:
        time_filter = f"time >= now() - {int(range_s)}s"
    interval = interval_for(range_s)
    query = query.replace("$timeFilter", time_filter)
    query = query.replace("$__interval_ms", str(int(seconds(interval) * 1000)))
    query = query.replace("$__interval", interval)
    for name, value in values.items():
        query = query.replace(f"${name}", value)
    return query
