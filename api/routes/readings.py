"""Latest readings (per device, summarised per district) and history with downsampling."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from api.deps import FiltersDep, ReadingsDep, RegistryDep, SettingsDep, StateDep
from api.params import (
    FIELD_PATTERN,
    INTERVAL_PATTERN,
    MAX_TIME,
    MIN_TIME,
    Aggregate,
    DeviceQuery,
    KindName,
    KindQuery,
    interval_seconds,
)
from api.problems import TYPE_BASE, ProblemError, problem_responses
from api.schemas import DistrictLatest, FieldScales, HistoryResponse, LatestResponse
from api.services.readings import CSV_COLUMNS, district_summaries
from api.services.scales import field_scales
from api.services.snapshot import respond, role_class
from kota.kinds import KINDS
from kota.standards import load_gauges_table, load_ispu_table

router = APIRouter(prefix="/readings", tags=["readings"])

ALL_KINDS = tuple(KINDS)
ERRORS = problem_responses(404, 422, 503)


@router.get("/latest", response_model=LatestResponse, summary="Latest reading per device",
            responses={**ERRORS, 304: {"description": "Not modified (If-None-Match)"}})
async def latest(request: Request, state: StateDep, filters: FiltersDep,
                 kind: KindQuery = None) -> Response:
    """The newest point of each device (within `limits.latest_lookback_h`), all its fields,
    with its `age_s`, `stale` (older than `page.stale_after_s`) and `offline` (its heartbeat's
    Last Will), as the shared snapshot read them.

    Filter by `kind`, `city`, `district` (kecamatan) and `device`. Answered from the shared
    snapshot (refreshed every `snapshot_interval_s`), with an ETag (send `If-None-Match` for a
    304) and `Cache-Control`.
    """
    role = role_class(request)
    settings = state.settings
    encoded = await state.snapshot.latest([kind] if kind else None, filters, role)
    return respond(request, encoded, role, settings.snapshot_interval_s,
                   settings.stale_while_revalidate_s)


@router.get("/latest/districts", response_model=list[DistrictLatest],
            summary="Latest readings summarised per district", responses=ERRORS)
async def latest_by_district(service: ReadingsDep, filters: FiltersDep,
                             kind: KindQuery = None) -> list[DistrictLatest]:
    """Per kind and district: devices heard, and mean / min / max of each numeric field over
    the devices' latest readings."""
    readings = await service.latest([kind] if kind else ALL_KINDS, filters)
    return district_summaries(readings)


def _invalid(detail: str, name: str) -> ProblemError:
    return ProblemError(422, detail, type_=TYPE_BASE + "invalid-parameters",
                        title=f"Invalid parameter {name}")


def _as_utc(moment: datetime, name: str) -> datetime:
    """In UTC (no zone given: UTC), and within the range InfluxDB and we can handle."""
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (OverflowError, ValueError):
        moment = MIN_TIME - timedelta(days=1)
    if not MIN_TIME <= moment <= MAX_TIME:
        raise _invalid(f"{name} must lie between {MIN_TIME:%Y-%m-%d} and {MAX_TIME:%Y-%m-%d}",
                       name)
    return moment


@router.get("/fields", response_model=FieldScales, summary="A kind's fields: units, words, bands",
            responses=ERRORS)
async def fields_of(registry: RegistryDep, kind: KindName, device: DeviceQuery = None
                    ) -> FieldScales:
    """Each numeric field of `kind` with its unit and description (kota/kinds/<kind>/kind.yaml)
    and the bands of the standard that applies, for a chart's title, axis and background: for
    air, the ISPU categories at each pollutant's breakpoint concentrations
    (kota/standards/ispu.yaml); for water, with `device`, the Siaga thresholds of its gauge
    (kota/standards/gauges.yaml; an unknown threshold is left out). Other fields: no bands."""
    return field_scales(kind, device, registry, load_ispu_table(), load_gauges_table())


CSV_MEDIA_TYPE = "text/csv"
_HISTORY_RESPONSES = {
    **problem_responses(404, 413, 422, 503, 504),
    200: {"description": "JSON (below), or CSV with `format=csv` or `Accept: text/csv`: a header "
                         f"row ({', '.join(CSV_COLUMNS)}, then the fields) and one row per point",
          "content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}}},
}


def _wants_csv(request: Request, answer_format: str | None) -> bool:
    if answer_format is not None:
        return answer_format == "csv"
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip() == CSV_MEDIA_TYPE for part in accept.split(","))


@router.get("/history", response_model=HistoryResponse, summary="History of one kind",
            responses=_HISTORY_RESPONSES)
async def history(
    request: Request, service: ReadingsDep, settings: SettingsDep, filters: FiltersDep,
    kind: KindName,
    fields: Annotated[list[Annotated[str, Query(pattern=FIELD_PATTERN)]] | None,
                      Query(max_length=12, description="Numeric fields of the kind; default: "
                                                       "all of them")] = None,
    start: Annotated[datetime | None, Query(description="From (ISO 8601; no zone: UTC); "
                                                        "default: end − 24 h")] = None,
    end: Annotated[datetime | None, Query(description="Until, exclusive; default: now")] = None,
    interval: Annotated[str | None, Query(pattern=INTERVAL_PATTERN,
                                          description="Downsample into buckets of this length "
                                                      "(10s, 5m, 1h, 1d); none: raw points",
                                          examples=["1h"])] = None,
    aggregate: Annotated[Aggregate, Query(description="Per bucket (with interval)")] = "mean",
    limit: Annotated[int, Query(ge=1, le=1_000_000, description="Points per series")] = 1000,
    answer_format: Annotated[Literal["json", "csv"] | None,
                             Query(alias="format", description="csv: the same points as a CSV "
                                                               "file (also: Accept: text/csv)")
                             ] = None,
) -> StreamingResponse:
    """Points of one kind between `start` and `end`, per device, optionally downsampled with
    `GROUP BY time(interval)` and an aggregate. Ranges, intervals and sizes are bounded by the
    `limits` settings: a request that could return more than `limits.max_total_points` points
    in all is refused (413) before any query; the answer is streamed, a series at a time.

    With `format=csv` (or `Accept: text/csv`) the same points, under the same limits, stream as
    CSV: `time_utc` (ISO 8601), `time_wib` (Jakarta's clock), `device`, `district`, `city`,
    then one column per field (empty: no value); a download (Content-Disposition). A CSV has no
    `truncated` flag: at most `limit` rows per device."""
    spec = KINDS[kind].spec
    numeric = [name for name, f in spec.fields.items() if f.type == "float"]
    chosen = list(dict.fromkeys(fields)) if fields else numeric
    unknown = [name for name in chosen if name not in numeric]
    if unknown:
        raise _invalid(f"not numeric fields of {kind}: {', '.join(unknown)} "
                       f"(it has {', '.join(numeric)})", "fields")
    limits = settings.limits
    end_at = _as_utc(end, "end") if end else datetime.now(UTC)
    start_at = _as_utc(start, "start") if start else end_at - timedelta(hours=24)
    if start_at >= end_at:
        raise _invalid("start must be before end", "start")
    span_s = (end_at - start_at).total_seconds()
    if span_s > limits.max_range_days * 86400:
        raise _invalid(f"the range may span at most {limits.max_range_days:g} days", "start")
    if limit > limits.max_points:
        raise _invalid(f"limit may be at most {limits.max_points}", "limit")
    if interval is not None:
        seconds = interval_seconds(interval)
        if seconds < limits.min_interval_s:
            raise _invalid(f"interval must be at least {limits.min_interval_s} s", "interval")
        if seconds > limits.max_range_days * 86400:
            raise _invalid("interval is longer than the longest range", "interval")
        if span_s / seconds > limits.max_points:
            raise _invalid(f"{interval} buckets over this range are more than "
                           f"{limits.max_points}; choose a longer interval", "interval")
    per_series = limit if interval is None else min(limit, math.ceil(span_s / seconds))
    series = service.series_bound(kind, filters, limits.max_series)
    if per_series * series > limits.max_total_points:
        raise ProblemError(
            413, f"this request could return {per_series * series:,} points ({series} series × "
                 f"{per_series:,}), more than api.limits.max_total_points "
                 f"({limits.max_total_points:,}); narrow it: a shorter range (start/end), a "
                 "coarser interval, fewer devices (device, district or city) or a smaller limit",
            type_=TYPE_BASE + "answer-too-large", title="Answer too large")
    csv = _wants_csv(request, answer_format)
    body = await service.history(kind, chosen, filters, start_at, end_at, interval,
                                 aggregate if interval else None, limit, limits.max_series,
                                 limits.max_total_points, limits.query_timeout_s,
                                 media="csv" if csv else "json")
    if not csv:
        return StreamingResponse(body, media_type="application/json")
    name = f"{kind}-{filters.device or filters.district or filters.city or 'all'}-" \
           f"{start_at:%Y%m%dT%H%M}-{end_at:%Y%m%dT%H%M}.csv"
    return StreamingResponse(body, media_type=f"{CSV_MEDIA_TYPE}; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})
