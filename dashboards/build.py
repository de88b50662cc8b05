"""Render every dashboard to JSON, and the device gazetteer the maps use. No I/O but writing
the files asked for."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import air, city, fleet, flood, safety
from dashboards.maps import GAZETTEER_FILE, gazetteer

__all__ = ["DASHBOARDS", "GAZETTEER_DIR", "JSON_DIR", "render", "render_all", "write_all"]

HERE = Path(__file__).resolve().parent
JSON_DIR = HERE / "json"
GAZETTEER_DIR = HERE / "gazetteer"
DEFAULT_REGISTRY = HERE.parent / "simulators" / "cities" / "jakarta" / "devices.yaml"

# File name → builder, in the order operators read them.
DASHBOARDS: dict[str, Callable[[], dm.Dashboard]] = {
    "city-overview.json": city.build,
    "air-quality.json": air.build,
    "flood.json": flood.build,
    "public-safety.json": safety.build,
    "fleet-health.json": fleet.build,
}


def render(builder: Callable[[], dm.Dashboard]) -> str:
    """Stable JSON text: sorted keys, two-space indent, final newline (diffs stay readable)."""
    return json.dumps(builder(), cls=JSONEncoder, indent=2, sort_keys=True,
                      ensure_ascii=False) + "\n"


def render_all(registry_file: Path = DEFAULT_REGISTRY) -> dict[Path, str]:
    """Every generated file's path and content."""
    files = {JSON_DIR / name: render(builder) for name, builder in DASHBOARDS.items()}
    files[GAZETTEER_DIR / GAZETTEER_FILE] = gazetteer(registry_file)
    return files


def write_all(registry_file: Path = DEFAULT_REGISTRY) -> list[Path]:
    """Write what changed; returns the files written."""
    written = []
    for path, text in render_all(registry_file).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
