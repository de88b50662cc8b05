"""What the live page needs to draw itself: title, tiles, categories and their colours, and the
kecamatan boundaries (``api.page.districts_geojson``)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import APIRouter, Request, Response

from api.deps import SettingsDep
from api.districts import EMPTY, Districts, DistrictsError, load_districts
from api.schemas import MetaResponse
from kota import __version__
from kota.kinds import KINDS
from kota.standards import load_gauges_table, load_ispu_table

router = APIRouter(prefix="/meta", tags=["live"])
log = logging.getLogger("kota.api")

# Boundaries change a few times a decade: browsers and proxies keep them ten minutes, then
# revalidate with the ETag (a 304 of a few bytes).
DISTRICTS_MAX_AGE_S = 600
GEOJSON = "application/geo+json"


@router.get("", response_model=MetaResponse, summary="Settings for the live page")
async def meta(settings: SettingsDep) -> MetaResponse:
    table = load_ispu_table()
    names = load_gauges_table().status_names.names
    return MetaResponse(
        title=settings.page.title, version=__version__, kinds=list(KINDS),
        tile_url=settings.page.tile_url, tile_attribution=settings.page.tile_attribution,
        sse_interval_s=settings.sse_interval_s,
        ispu_categories=[{"name": b.name, "index_max": b.index_max, "colour": b.colour,
                          "colour_en": b.colour_en, "hex": b.hex}
                         for b in table.categories.bands],
        siaga_names={status: n.name for status, n in names.items()})


class _DistrictsCache:
    """The parsed file, read again only when its size or modification time changes (a city
    that replaces the file needs no restart)."""

    def __init__(self) -> None:
        self._key: tuple[str, str, str, int, int] | None = None
        self._districts = EMPTY

    def get(self, path: Path, name_property: str, attribution: str) -> Districts:
        stat = path.stat()
        key = (str(path), name_property, attribution, stat.st_mtime_ns, stat.st_size)
        if key != self._key:
            self._districts = load_districts(path, name_property, attribution)
            self._key = key
        return self._districts


_cache = _DistrictsCache()


@router.get("/districts", summary="Kecamatan boundaries for the map (GeoJSON)",
            response_class=Response,
            responses={200: {"content": {GEOJSON: {}},
                             "description": "A FeatureCollection; each feature's only property "
                                            "is `name`, the kecamatan. Empty when "
                                            "api.page.districts_geojson is unset."},
                       304: {"description": "Not modified (If-None-Match)"}})
async def districts(settings: SettingsDep, request: Request) -> Response:
    path = settings.page.districts_geojson
    found = EMPTY
    if path is not None:
        try:
            found = await asyncio.to_thread(_cache.get, path, settings.page.districts_name_property,
                                            settings.page.districts_attribution)
        except (OSError, DistrictsError) as exc:
            # It was good at start and was replaced by a bad one: say so in the log, and draw
            # no boundaries rather than fail the page.
            log.error("api.page.districts_geojson: %s", exc)
    headers = {"ETag": found.etag, "Cache-Control": f"public, max-age={DISTRICTS_MAX_AGE_S}"}
    asked = request.headers.get("if-none-match")
    if asked is not None and found.etag in (t.strip().removeprefix("W/") for t in asked.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=GEOJSON, headers=headers)
