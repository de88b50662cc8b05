"""What every dashboard shares: bilingual labels, template variables, filters, panel makers.

Queries are raw InfluxQL with every identifier double-quoted (dashboards/lint.py reads the
names back from the quotes), Grafana's ``$timeFilter`` and ``$__interval`` macros, and
the variables as anchored regexes (``"district" =~ /^$district$/``), which Grafana fills with
an escaped alternation of the chosen values, or ``.*`` for "All".
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    VizLegendOptions,
)
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.influxql import DATASOURCE, InfluxQL, InfluxQLAnnotation
from kota.standards import load_ispu_table

__all__ = [
    "GRID_COLUMNS", "ISPU_BANDS", "RANK_STEPS", "SIAGA_MAPPINGS", "alert_annotation",
    "alerts_table", "bar_gauge", "bi",
    "dashboard", "filters", "finish", "ispu_thresholds", "line_thresholds", "q",
    "rank_mappings", "stat_panel", "state_timeline", "table_panel", "thresholds",
    "timeseries_panel", "variables",
]

GRID_COLUMNS = 24
ALL = ".*"  # Grafana's value for "All": the anchored regexes then match every value


def bi(bahasa: str, english: str) -> str:
    """A label in Bahasa Indonesia with its English: ``Kualitas udara / Air quality``."""
    return f"{bahasa} / {english}"


def q(query: str, ref_id: str = "A", alias: str = "", table_format: bool = False) -> InfluxQL:
    target = InfluxQL(query, ref_id)
    if alias:
        target.alias(alias)
    if table_format:
        target.table()
    return target


def filters(city: bool = True, district: bool = True, device: bool = False) -> str:
    """The variables' conditions, joined with AND (each tag compared as an anchored regex)."""
    parts = []
    if city:
        parts.append('"city" =~ /^$city$/')
    if district:
        parts.append('"district" =~ /^$district$/')
    if device:
        parts.append('"device" =~ /^$device$/')
    return " AND ".join(parts)


def _variable(name: str, label: str, query: str) -> db.QueryVariable:
    return (db.QueryVariable(name).label(label).query(query).datasource(DATASOURCE)
            .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD).sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True).all_value(ALL)
            .current(dm.VariableOption(selected=True, text="All", value="$__all")))


def variables(device_from: str | None) -> list[db.QueryVariable]:
    """city → district → device, each narrowed by the ones before it. ``device_from`` is the
    raw measurement whose devices the dashboard is about (None: no device variable)."""
    result = [
        _variable("city", bi("Kota", "City"), 'SHOW TAG VALUES FROM "status" WITH KEY = "city"'),
        _variable("district", bi("Kecamatan", "District"),
                  'SHOW TAG VALUES FROM "status" WITH KEY = "district" '
                  'WHERE "city" =~ /^$city$/'),
    ]
    if device_from:
        result.append(_variable(
            "device", bi("Perangkat", "Device"),
            f'SHOW TAG VALUES FROM "{device_from}" WITH KEY = "device" '
            'WHERE "city" =~ /^$city$/ AND "district" =~ /^$district$/'))
    return result


def dashboard(uid: str, title: str, description: str, tags: Sequence[str],
              device_from: str | None) -> db.Dashboard:
    board = (db.Dashboard(title).uid(uid).description(description)
             .tags(["kota-cerdas", *tags]).timezone("Asia/Jakarta").time("now-24h", "now")
             .refresh("1m").editable().tooltip(dm.DashboardCursorSync.CROSSHAIR))
    for variable in variables(device_from):
        board.with_variable(variable)
    board.link(db.DashboardLink(bi("Dasbor lain", "Other dashboards"))
               .type(dm.DashboardLinkType.DASHBOARDS).tags(["kota-cerdas"]).as_dropdown(True)
               .include_vars(True).keep_time(True))
    return board


def finish(board: db.Dashboard) -> dm.Dashboard:
    """Build, lay the panels out left to right in rows of 24 columns, number them 1..n.

    The SDK's own placement lets a panel that does not fit run past column 24; here a panel
    that does not fit starts the next row, below the tallest panel of the current one.
    """
    model = board.build()
    x = y = row_height = 0
    for index, panel in enumerate(model.panels or [], start=1):
        panel.id_val = index
        pos = panel.grid_pos or dm.GridPos()
        if x + pos.w > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        pos.x, pos.y = x, y
        panel.grid_pos = pos
        x += pos.w
        row_height = max(row_height, pos.h)
    return model


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=value, color=color) for value, color in steps])


# ISPU categories and colours from the table (Permen LHK P.14/2020; kota/standards/ispu.yaml).
# The ISPU written by the indicator service is a whole number, so a category starts at the
# whole number after the previous one's index_max (Sedang at 51).
_ISPU_CATEGORIES = load_ispu_table().categories.bands
ISPU_BANDS: list[tuple[float | None, str]] = [
    (None if index == 0 else int(_ISPU_CATEGORIES[index - 1].index_max) + 1, band.hex)
    for index, band in enumerate(_ISPU_CATEGORIES)]
_RANK_COLOURS = {rank: (band.name, band.hex)
                 for rank, band in enumerate(_ISPU_CATEGORIES, start=1)}


def ispu_thresholds() -> db.ThresholdsConfig:
    return thresholds(*ISPU_BANDS)


# ISPU ``category_rank`` 1 (Baik) .. 5 (Berbahaya) as threshold steps, for colours.
RANK_STEPS: list[tuple[float | None, str]] = [
    (None if rank == 1 else rank, hex_colour) for rank, (_name, hex_colour)
    in _RANK_COLOURS.items()]


def line_thresholds() -> GraphThresholdsStyleConfig:
    """Draw the thresholds as lines across a time series (Siaga levels, ISPU bands)."""
    return GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.LINE)


def rank_mappings() -> list[dm.ValueMapping]:
    """ISPU ``category_rank`` 1..5 → category name and colour."""
    return [dm.ValueMap(options={str(rank): dm.ValueMappingResult(text=name, color=colour,
                                                                    index=rank)
                                 for rank, (name, colour) in _RANK_COLOURS.items()})]


SIAGA_MAPPINGS: list[dm.ValueMapping] = [dm.ValueMap(options={
    "4": dm.ValueMappingResult(text="Siaga 4 Normal", color="green", index=0),
    "3": dm.ValueMappingResult(text="Siaga 3 Waspada", color="yellow", index=1),
    "2": dm.ValueMappingResult(text="Siaga 2 Siaga", color="orange", index=2),
    "1": dm.ValueMappingResult(text="Siaga 1 Awas", color="red", index=3),
})]


def timeseries_panel(title: str, targets: Sequence[InfluxQL], unit: str = "",
                     width: int = 12, height: int = 8, description: str = "",
                     bars: bool = False) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).datasource(DATASOURCE).span(width).height(height)
             .targets(list(targets)).legend(_legend()).span_nulls(True))
    if description:
        panel.description(description)
    if unit:
        panel.unit(unit)
    if bars:
        panel.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(60)
    return panel


def _legend() -> VizLegendOptions:
    return (VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.RIGHT).show_legend(True).calcs(["lastNotNull", "max"]))


def stat_panel(title: str, target: InfluxQL, unit: str = "", width: int = 4, height: int = 5,
               description: str = "", steps: db.ThresholdsConfig | None = None,
               mappings: list[dm.ValueMapping] | None = None,
               time_from: str = "") -> stat.Panel:
    panel = (stat.Panel().title(title).datasource(DATASOURCE).span(width).height(height)
             .with_target(target).color_mode(cm.BigValueColorMode.BACKGROUND)
             .reduce_options(_last_not_null()))
    if description:
        panel.description(description)
    if unit:
        panel.unit(unit)
    if steps is not None:
        panel.thresholds(steps)
    if mappings:
        panel.mappings(mappings)
    if time_from:
        panel.time_from(time_from)
    return panel


def _last_not_null() -> ReduceDataOptions:
    return ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def table_panel(title: str, targets: Sequence[InfluxQL], width: int = 12, height: int = 9,
                description: str = "", time_from: str = "") -> table.Panel:
    panel = (table.Panel().title(title).datasource(DATASOURCE).span(width).height(height)
             .targets(list(targets)))
    if description:
        panel.description(description)
    if time_from:
        panel.time_from(time_from)
    return panel


def state_timeline(title: str, target: InfluxQL, mappings: list[dm.ValueMapping],
                   width: int = 12, height: int = 8, description: str = "",
                   steps: db.ThresholdsConfig | None = None) -> statetimeline.Panel:
    # fillOpacity and lineWidth spelt out: they are the model's defaults, which a dashboard read
    # back through the SDK would otherwise gain (the round-trip test compares exactly).
    panel = (statetimeline.Panel().title(title).datasource(DATASOURCE).span(width)
             .height(height).with_target(target).mappings(mappings).fill_opacity(70)
             .line_width(0))
    if description:
        panel.description(description)
    if steps is not None:
        panel.thresholds(steps).color_scheme(
            db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    return panel


def bar_gauge(title: str, targets: Sequence[InfluxQL], unit: str = "", width: int = 12,
              height: int = 8, description: str = "",
              steps: db.ThresholdsConfig | None = None, min_value: float | None = None,
              max_value: float | None = None, time_from: str = "") -> bargauge.Panel:
    panel = (bargauge.Panel().title(title).datasource(DATASOURCE).span(width).height(height)
             .targets(list(targets)).reduce_options(_last_not_null())
             .display_mode(cm.BarGaugeDisplayMode.GRADIENT))
    if description:
        panel.description(description)
    if unit:
        panel.unit(unit)
    if steps is not None:
        panel.thresholds(steps)
    if min_value is not None:
        panel.min(min_value)
    if max_value is not None:
        panel.max(max_value)
    if time_from:
        panel.time_from(time_from)
    return panel


# Alert events (measurement alert_events, written by `kota alerts`, declared in
# alerts/outputs/alert_events.yaml): one point per notified version of an alert.
_ALERT_COLUMNS = ('"alert_id", "version", "status", "level", "severity", "rule", "scope", '
                  '"hazard", "audience", "cap_status", "headline"')


def alert_annotation(*hazards: str) -> InfluxQLAnnotation:
    """Every notified alert version of these hazards as an event on the dashboard's time
    series: text the id-ID headline, tags level, status, scope and CAP status (drills show
    ``Exercise``/``Test``)."""
    hazard = " OR ".join(f'"hazard" = \'{name}\'' for name in hazards)
    return InfluxQLAnnotation(
        bi("Peringatan", "Alerts"),
        'SELECT "headline", "level", "status", "scope", "cap_status" FROM "alert_events" '
        f'WHERE ({hazard}) AND "city" =~ /^$city$/ AND $timeFilter',
        icon_color="red", text_column="headline", tags_column="level,status,scope,cap_status")


def alerts_table(width: int = 24, height: int = 8) -> table.Panel:
    """The newest alert events first: one row per notified version (fired, escalated,
    repeated, acknowledged, resolved)."""
    return table_panel(
        bi("Peringatan terbaru", "Recent alerts"),
        [q(f'SELECT {_ALERT_COLUMNS} FROM "alert_events" WHERE "city" =~ /^$city$/ '
           'AND $timeFilter ORDER BY time DESC LIMIT 200', table_format=True)],
        width=width, height=height,
        description="From `kota alerts` (measurement alert_events): one row per notified "
                    "version of an alert. Acknowledge and resolve with `kota alerts ack/resolve` "
                    "or the API; the full history is in the alert database.")
