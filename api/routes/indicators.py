"""Current ISPU per station and district, and Siaga per water gauge."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import FiltersDep, IndicatorsDep
from api.problems import problem_responses
from api.schemas import IspuResponse, SiagaResponse

router = APIRouter(prefix="/indicators", tags=["indicators"])

ERRORS = problem_responses(404, 422, 503)


@router.get("/ispu", response_model=IspuResponse, summary="Current ISPU", responses=ERRORS)
async def ispu(service: IndicatorsDep, filters: FiltersDep,
               scope: Annotated[Literal["device", "district"],
                                Query(description="Per station, or per district (its worst "
                                                  "complete station)")] = "device",
               ) -> IspuResponse:
    """ISPU (Permen LHK P.14/2020) per air station or per district.

    From the newest hourly `ispu` point of `kota indicators` when it is recent
    (`indicator_max_age_s`); otherwise computed now from the last 24 h of air readings with
    `kota.indices.ispu` (hourly means, each parameter's averaging period and completeness rule).
    `source` says which.
    """
    return await service.ispu(scope, filters)


@router.get("/siaga", response_model=SiagaResponse, summary="Current Siaga per gauge",
            responses=ERRORS)
async def siaga(service: IndicatorsDep, filters: FiltersDep) -> SiagaResponse:
    """Water-level alert status (4 Normal, 3 Waspada, 2 Siaga, 1 Awas) per gauge.

    From the newest `siaga` 1-minute point of `kota indicators`, else computed from the latest
    `water` level with `kota.indices.siaga` and the gauge's thresholds (`kota/standards/
    gauges.yaml`), with the rate of rise over the last hour. `source` says which.
    """
    return await service.siaga(filters)
