"""Kecamatan boundaries for the live page's map: a GeoJSON file the city provides
(``api.page.districts_geojson``), checked once when the settings load and served by the API.

Pure: reads one file, returns bytes. What is served is smaller than what was read: each
feature keeps its geometry (coordinates rounded to ``COORDINATE_DECIMALS``) and one property,
``name``, taken from ``api.page.districts_name_property``, so the page reads one shape whatever
the source (OpenStreetMap ``name``, BIG ``WADMKC``...), plus the ``attribution`` its licence
requires (``api.page.districts_attribution``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["COORDINATE_DECIMALS", "EMPTY", "MAX_FILE_BYTES", "Districts", "DistrictsError",
           "load_districts"]

# 5 decimals of a degree is about 1 m: finer than any kecamatan boundary is drawn at.
COORDINATE_DECIMALS = 5
# Jakarta's 44 kecamatan simplified (mapshaper, 1-10 %) are well under 1 MB; a file far larger
# is an unsimplified export that would make every phone download megabytes.
MAX_FILE_BYTES = 20 * 1024 * 1024
# Coordinate systems that mean longitude/latitude on WGS84, as GeoJSON (RFC 7946) requires.
WGS84_NAMES = {"urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84",
               "urn:ogc:def:crs:EPSG::4326", "EPSG:4326", "CRS84"}


class DistrictsError(ValueError):
    """The file cannot be used; the message names the file and where in it."""


@dataclass(frozen=True)
class Districts:
    """What the API serves: the minified GeoJSON, its ETag and the kecamatan names."""

    body: bytes
    etag: str  # quoted, as sent in the ETag header
    names: tuple[str, ...]


def _tagged(body: bytes, names: tuple[str, ...] = ()) -> Districts:
    return Districts(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"', names)


EMPTY = _tagged(b'{"type":"FeatureCollection","features":[]}')


def load_districts(path: Path, name_property: str = "name", attribution: str = "") -> Districts:
    """Read and check ``path``; raise :class:`DistrictsError` with a one-line reason.
    ``attribution`` travels with the features (a GeoJSON foreign member) for the map to show."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DistrictsError(
                f"{path}: {size / 1e6:.1f} MB, more than {MAX_FILE_BYTES / 1e6:.0f} MB: "
                "simplify it first (e.g. mapshaper -simplify 5%)")
        text = path.read_text(encoding="utf-8")
    except DistrictsError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DistrictsError(f"{path}: cannot read it: {reason}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DistrictsError(f"{path}:{exc.lineno}: not JSON: {exc.msg} (column {exc.colno})"
                             ) from None
    features = _features(path, document)
    served = []
    names = []
    for index, feature in enumerate(features):
        where = f"{path}: feature {index}"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise DistrictsError(f"{where}: not a GeoJSON Feature")
        properties = feature.get("properties") or {}
        name = properties.get(name_property) if isinstance(properties, dict) else None
        if not isinstance(name, str) or not name.strip():
            found = sorted(properties) if isinstance(properties, dict) else []
            raise DistrictsError(
                f"{where}: no '{name_property}' property with the kecamatan's name (it has "
                f"{', '.join(found[:8]) or 'none'}; set api.page.districts_name_property)")
        geometry = feature.get("geometry")
        served.append({"type": "Feature", "properties": {"name": name.strip()},
                       "geometry": _geometry(f"{where} ({name.strip()})", geometry)})
        names.append(name.strip())
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": served}
    if attribution:
        collection["attribution"] = attribution
    body = json.dumps(collection,
                      separators=(",", ":"), ensure_ascii=False).encode()
    return _tagged(body, tuple(names))


def _features(path: Path, document: Any) -> list[Any]:
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise DistrictsError(f"{path}: not a GeoJSON FeatureCollection")
    crs = document.get("crs")
    if crs is not None:
        name = (crs.get("properties") or {}).get("name") if isinstance(crs, dict) else None
        if name not in WGS84_NAMES:
            raise DistrictsError(
                f"{path}: coordinates in {name or crs!r}, not longitude/latitude (WGS84): "
                "reproject it, e.g. ogr2ogr -t_srs EPSG:4326 out.geojson in.shp")
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise DistrictsError(f"{path}: the FeatureCollection has no features")
    return features


def _geometry(where: str, geometry: Any) -> dict[str, Any]:
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind == "Polygon":
        rings = [_ring(where, ring) for ring in _list(where, geometry.get("coordinates"))]
        return {"type": "Polygon", "coordinates": rings}
    if kind == "MultiPolygon":
        polygons = [[_ring(where, ring) for ring in _list(where, polygon)]
                    for polygon in _list(where, geometry.get("coordinates"))]
        return {"type": "MultiPolygon", "coordinates": polygons}
    raise DistrictsError(f"{where}: geometry {kind!r}, expected Polygon or MultiPolygon")


def _list(where: str, value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise DistrictsError(f"{where}: empty or malformed coordinates")
    return value


def _ring(where: str, ring: Any) -> list[list[float]]:
    points = _list(where, ring)
    if len(points) < 4:
        raise DistrictsError(f"{where}: a ring with {len(points)} positions (a closed ring has "
                             "at least 4)")
    rounded = []
    for point in points:
        if (not isinstance(point, list) or len(point) < 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool)
                           and math.isfinite(v) for v in point[:2])):
            raise DistrictsError(f"{where}: position {point!r} is not [longitude, latitude]")
        lon, lat = float(point[0]), float(point[1])
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise DistrictsError(
                f"{where}: position [{lon:g}, {lat:g}] is not longitude/latitude (WGS84): "
                "reproject it, e.g. ogr2ogr -t_srs EPSG:4326 out.geojson in.shp")
        rounded.append([round(lon, COORDINATE_DECIMALS), round(lat, COORDINATE_DECIMALS)])
    return rounded
