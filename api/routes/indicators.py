"""Current ISPU per station and district, Siaga per water gauge, and open incidents (counts for
everyone; each incident, with its alert, for operators: ``operator_router``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.deps import FiltersDep, IndicatorsDep, StateDep, get_filters
from api.params import CityQuery, DistrictQuery
from api.problems import problem_responses
from api.schemas import IncidentsResponse, IspuResponse, OpenIncidentsResponse, SiagaResponse
from api.services.alerts import AlertsService
from api.services.incidents import IncidentsList
from api.services.snapshot import respond, role_class

__all__ = ["operator_router", "router"]

router = APIRouter(prefix="/indicators", tags=["indicators"])
operator_router = APIRouter(prefix="/indicators", tags=["indicators"])

ERRORS = problem_responses(404, 422, 503)
CACHED = {**ERRORS, 304: {"description": "Not modified (If-None-Match)"}}


@router.get("/ispu", response_model=IspuResponse, summary="Current ISPU", responses=CACHED)
async def ispu(request: Request, state: StateDep, filters: FiltersDep,
               scope: Annotated[Literal["device", "district"],
                                Query(description="Per station, or per district (its worst "
                                                  "complete station)")] = "device",
               ) -> Response | IspuResponse:
    """ISPU (Permen LHK P.14/2020) per air station or per district.

    From the newest hourly `ispu` point of `kota indicators` when it is recent
    (`indicator_max_age_s`); otherwise computed now from the last 24 h of air readings with
    `kota.indices.ispu` (hourly means, each parameter's averaging period and completeness rule).
    `source` says which. Answered from the shared snapshot (`snapshot_interval_s`) with an
    ETag and `Cache-Control`.
    """
    if scope == "district" and filters.device is not None:
        # A district's row names its worst station: the device filter means something else
        # there, so it is asked of the database as before.
        return await state.indicators.ispu(scope, filters)
    role = role_class(request)
    encoded = await state.snapshot.ispu(scope, filters, role)
    return respond(request, encoded, role, state.settings.snapshot_interval_s,
                   state.settings.stale_while_revalidate_s)


@router.get("/siaga", response_model=SiagaResponse, summary="Current Siaga per gauge",
            responses=CACHED)
async def siaga(request: Request, state: StateDep, filters: FiltersDep) -> Response:
    """Water-level alert status (4 Normal, 3 Waspada, 2 Siaga, 1 Awas) per gauge.

    From the newest `siaga` 1-minute point of `kota indicators`, else computed from the latest
    `water` level with `kota.indices.siaga` and the gauge's thresholds (`kota/standards/
    gauges.yaml`), with the rate of rise over the last hour. `source` says which. A gauge
    that reported after the service's newest minute is computed from that reading: the
    status is never older than the level (`age_s`: the level's age when read). Answered from
    the shared snapshot (`snapshot_interval_s`) with an ETag and `Cache-Control`.
    """
    role = role_class(request)
    encoded = await state.snapshot.siaga(filters, role)
    return respond(request, encoded, role, state.settings.snapshot_interval_s,
                   state.settings.stale_while_revalidate_s)


@router.get("/incidents", response_model=IncidentsResponse,
            summary="Open public-safety incidents", responses=ERRORS)
async def incidents(service: IndicatorsDep, state: StateDep, city: CityQuery = None,
                    district: DistrictQuery = None) -> IncidentsResponse:
    """Incidents open now (trantibumlinmas), per district and for the city, by category and
    `all`, with the stale ones (never resolved, older than the service's open horizon).

    Read from the `safety_incidents` points of `kota indicators` (docs/indicators.md): an
    incident is the events sharing one `incident_id` (or one event without it), closed by a
    `resolved` event. There is no fallback computation here; `source` is `none` when the
    service has written nothing recently.
    """
    return await service.incidents(await get_filters(state, city, district))


@operator_router.get("/incidents/open", response_model=OpenIncidentsResponse,
                     summary="Each unresolved incident, with its alert (operators)",
                     responses=ERRORS)
async def open_incidents(request: Request, state: StateDep, filters: FiltersDep
                         ) -> OpenIncidentsResponse:
    """Every incident not resolved now, open or stale (the indicator service's rules and
    default horizons: open for `incident_open_horizon_h` after its first event, read back
    `incident_lookback_h`), with its device, district, category, first and newest event, age,
    and the active alert about it (`alert`, null when none). Worst first: the alert's severity,
    open before stale, newest first. Filter by `city`, `district` or `device`. Operators only:
    incident ids and who pressed which button are not public.
    """
    alerts: AlertsService | None = getattr(request.app.state, "alerts", None)
    root = request.scope.get("root_path", "").rstrip("/")
    return await IncidentsList(state.influx, state.registry).unresolved(
        filters, alerts, root + "/api/v1/alerts/{id}")
