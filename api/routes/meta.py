"""What the live page needs to draw itself: title, tiles, categories and their colours."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SettingsDep
from api.schemas import MetaResponse
from kota import __version__
from kota.kinds import KINDS
from kota.standards import load_gauges_table, load_ispu_table

router = APIRouter(prefix="/meta", tags=["live"])


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
