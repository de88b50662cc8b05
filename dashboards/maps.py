"""Station maps: a Geomap panel whose markers are placed by device id through a gazetteer.

InfluxDB holds no coordinates (the registry does), so ``kota dashboards build`` writes the
registry's devices as a Grafana gazetteer (the worldmap ``[{key, latitude, longitude, name}]``
form Grafana's geomap "lookup" mode reads) to ``gazetteer/kota-devices.json``; the Grafana
container serves it from ``public/gazetteer/`` (docs/dashboards.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import geomap
from grafana_foundation_sdk.builders.dashboard import FieldColor
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models.dashboard import FieldColorModeId
from grafana_foundation_sdk.models.geomap import TooltipMode

from dashboards.common import thresholds
from dashboards.influxql import DATASOURCE, InfluxQL
from kota.registry import Registry

__all__ = ["GAZETTEER_FILE", "GAZETTEER_PATH", "gazetteer", "station_map"]

GAZETTEER_FILE = "kota-devices.json"
GAZETTEER_PATH = f"public/gazetteer/{GAZETTEER_FILE}"  # as Grafana fetches it
# Centre of Jakarta (Monas); the map fits the markers anyway.
CENTRE_LAT, CENTRE_LON = -6.2, 106.83


def gazetteer(registry_file: Path) -> str:
    """The registry's devices as gazetteer JSON, sorted by id (stable output)."""
    registry = Registry.load(registry_file)
    entries = [{"key": device.device_id, "latitude": device.lat, "longitude": device.lon,
                "name": device.name or device.device_id}
               for device in sorted(registry, key=lambda d: d.device_id)
               if device.lat is not None and device.lon is not None]
    return json.dumps(entries, indent=1, ensure_ascii=False) + "\n"


def station_map(title: str, targets: Sequence[InfluxQL], colour_field: str,
                steps: Sequence[tuple[float | None, str]], width: int = 12, height: int = 12,
                description: str = "", unit: str = "") -> geomap.Panel:
    """Markers at each row's ``device``, coloured by ``colour_field`` through ``steps``."""
    layer = (cb.MapLayerOptions().type("markers").name(title.split(" / ")[0])
             .location(cb.FrameGeometrySource().mode(cm.FrameGeometrySourceMode.LOOKUP)
                       .lookup("device").gazetteer(GAZETTEER_PATH))
             .tooltip(True)
             .config({"showLegend": True,
                      "style": {"color": {"field": colour_field, "fixed": "dark-green"},
                                "opacity": 0.9,
                                "size": {"fixed": 9, "min": 6, "max": 14},
                                "symbol": {"fixed": "img/icons/marker/circle.svg",
                                           "mode": "fixed"},
                                "text": {"field": "device", "mode": "field", "fixed": ""},
                                "textConfig": {"fontSize": 10, "offsetY": -12,
                                               "textAlign": "center",
                                               "textBaseline": "bottom"}}}))
    panel = (geomap.Panel().title(title).datasource(DATASOURCE).span(width).height(height)
             .targets(list(targets))
             .view(cb_view()).basemap(cb.MapLayerOptions().type("osm-standard").name("OSM"))
             .layers([layer]).thresholds(thresholds(*steps))
             .color_scheme(FieldColor().mode(FieldColorModeId.THRESHOLDS))
             .tooltip(geomap.TooltipOptions().mode(TooltipMode.DETAILS)))
    if description:
        panel.description(description)
    if unit:
        panel.unit(unit)
    return panel


def cb_view() -> geomap.MapViewConfig:
    # The SDK types lat/lon as int (its generator's reading of Grafana's schema); Grafana
    # stores and reads floats, and the JSON keeps them.
    return (geomap.MapViewConfig().id("coords").lat(cast(int, CENTRE_LAT))
            .lon(cast(int, CENTRE_LON)).zoom(10))
