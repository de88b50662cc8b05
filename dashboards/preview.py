"""A rough picture of a dashboard without Grafana: run its panels' queries (interpolated as
Grafana would, dashboards.interpolate) against an InfluxDB and draw the results with matplotlib
in the dashboard's grid. For documentation (docs/img/dashboard-*.png), not for operators.

    python -m dashboards.preview dashboards/json/flood.json --influx http://127.0.0.1:8086 \
        --database kota --out docs/img/dashboard-flood.png

matplotlib is not a dependency of the platform: ``pip install matplotlib`` to use this.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from dashboards.interpolate import interpolate
from dashboards.maps import GAZETTEER_FILE

__all__ = ["render"]

Query = Callable[[str], list[dict[str, Any]]]
ROW_HEIGHT_IN = 0.32
GAZETTEER = Path(__file__).resolve().parent / "gazetteer" / GAZETTEER_FILE


def influx_query(url: str, database: str) -> Query:
    def run(influxql: str) -> list[dict[str, Any]]:
        response = httpx.post(f"{url}/query", params={"db": database, "q": influxql,
                                                      "epoch": "ms"}, timeout=30)
        response.raise_for_status()
        result = response.json()["results"][0]
        if "error" in result:
            raise RuntimeError(f"{result['error']}: {influxql}")
        series: list[dict[str, Any]] = result.get("series", [])
        return series
    return run


def _label(series: dict[str, Any], column: str, alias: str) -> str:
    tags = series.get("tags") or {}
    label = alias or ", ".join(tags.values()) or series.get("name", "")
    for tag, value in tags.items():
        label = label.replace(f"$tag_{tag}", value)
    return label if len(series["columns"]) <= 2 or alias else f"{label} {column}".strip()


def _draw(axis: Any, panel: dict[str, Any], results: list[tuple[dict[str, Any],
                                                               list[dict[str, Any]]]]) -> None:
    kind = panel["type"]
    axis.set_title(panel["title"], fontsize=6, loc="left")
    axis.tick_params(labelsize=5)
    if kind in ("timeseries", "state-timeline"):
        for target, series_list in results:
            for series in series_list:
                for index, column in enumerate(series["columns"][1:], start=1):
                    points = [(datetime.fromtimestamp(row[0] / 1000, UTC), row[index])
                              for row in series["values"] if isinstance(row[index], int | float)]
                    if points:
                        xs, ys = zip(*points, strict=True)
                        axis.plot(xs, ys, linewidth=0.8,
                                  label=_label(series, column, target.get("alias", "")))
        for step in panel.get("fieldConfig", {}).get("defaults", {}).get(
                "thresholds", {}).get("steps", [])[1:]:
            if kind == "timeseries" and panel["fieldConfig"]["defaults"].get(
                    "custom", {}).get("thresholdsStyle", {}).get("mode") == "line":
                axis.axhline(step["value"], color=step["color"], linewidth=0.7, linestyle="--")
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=4, loc="upper left", ncol=2)
        axis.xaxis.set_major_formatter(_hour_format())
    elif kind == "geomap":
        places = {p["key"]: (p["longitude"], p["latitude"])
                  for p in json.loads(GAZETTEER.read_text(encoding="utf-8"))}
        colour_field = panel["options"]["layers"][0]["config"]["style"]["color"]["field"]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        for _, series_list in results:
            for series in series_list:
                device = (series.get("tags") or {}).get("device", "")
                row = series["values"][0]
                value = row[series["columns"].index(colour_field)]
                colour = steps[0]["color"]
                for step in steps[1:]:
                    if isinstance(value, int | float) and value >= step["value"]:
                        colour = step["color"]
                if device in places:
                    axis.scatter(*places[device], s=18, color=_colour(colour),
                                 edgecolors="grey", linewidths=0.4)
        axis.set_aspect("equal", adjustable="datalim")
    else:  # stat, bargauge, table: the last values, as text
        lines = []
        for target, series_list in results:
            for series in series_list[:12]:
                row = series["values"][-1]
                cells = [f"{v:.1f}" if isinstance(v, float) else str(v) for v in row[1:]]
                lines.append(f"{_label(series, '', target.get('alias', ''))}  "
                             + "  ".join(cells))
        axis.axis("off")
        size = 14 if kind == "stat" and len(lines) == 1 else 5
        text = lines[0].split()[-1] if size == 14 else "\n".join(lines) or "—"
        axis.text(0.02, 0.5 if size == 14 else 0.95, text, fontsize=size, va="top" if size == 5
                  else "center", family="monospace", transform=axis.transAxes)


def _colour(name: str) -> str:
    return {"green": "#56a64b", "blue": "#3274d9", "yellow": "#f2cc0c", "red": "#e02f44",
            "orange": "#ff780a", "dark-green": "#37872d"}.get(name, name)


def _hour_format() -> Any:
    from matplotlib.dates import DateFormatter

    return DateFormatter("%H:%M")


def render(dashboard: dict[str, Any], query: Query, out: Path, now_s: float | None = None,
           values: dict[str, str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    now_s = time.time() if now_s is None else now_s
    values = values or {"city": ".*", "district": ".*", "device": ".*"}
    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    figure = plt.figure(figsize=(12, rows * ROW_HEIGHT_IN + 0.4))
    grid = figure.add_gridspec(rows, 24, hspace=1.2, wspace=1.2, top=0.97, bottom=0.02)
    figure.suptitle(dashboard["title"], fontsize=10, x=0.01, y=0.995, ha="left")
    for panel in panels:
        pos = panel["gridPos"]
        axis = figure.add_subplot(grid[pos["y"]:pos["y"] + pos["h"], pos["x"]:pos["x"] + pos["w"]])
        results = [(target, query(interpolate(target["query"], panel, values, now_s)))
                   for target in panel.get("targets", [])]
        _draw(axis, panel, results)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboard", type=Path)
    parser.add_argument("--influx", default="http://127.0.0.1:8086")
    parser.add_argument("--database", default="kota")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    render(json.loads(args.dashboard.read_text(encoding="utf-8")),
           influx_query(args.influx, args.database), args.out)


if __name__ == "__main__":
    main()
