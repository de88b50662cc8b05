"""Current ISPU and Siaga: read from the indicator service's measurements when it has written
recent points, else computed here from the raw readings with the pure functions of
``kota.indices`` (the same ones the indicator service uses). Every answer says which.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from api.schemas import (
    IncidentCount,
    IncidentsResponse,
    IspuPublic,
    IspuResponse,
    SiagaPublic,
    SiagaResponse,
)
from api.services.readings import Filters, finite_number, ms_to_datetime
from kota.indices.ispu import average_for_ispu, ispu_parameters, station_ispu
from kota.indices.siaga import (
    hours_to_next_threshold,
    load_gauges,
    rate_of_rise_cm_per_h,
    siaga_status,
)
from kota.influx import InfluxClient, quote_ident, quote_literal
from kota.registry import Registry
from kota.standards import GaugeThresholds, load_ispu_table

__all__ = ["IndicatorsService"]

AIR_PARAMETERS = ispu_parameters()  # the air fields an ISPU is computed from
Scope = Literal["device", "district"]
HOUR_MS = 3_600_000
MINUTE_MS = 60_000


def _where(*parts: str) -> str:
    return " AND ".join(p for p in parts if p)


def _eq(tag: str, value: str) -> str:
    return f"{quote_ident(tag)} = {quote_literal(value)}"


def _rows(series: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows as dicts, with the series' GROUP BY tags merged in."""
    columns = series["columns"]
    tags = series.get("tags") or {}
    return [{**dict(zip(columns, values, strict=False)), **{k: v for k, v in tags.items() if v}}
            for values in series.get("values") or []]


def _concentration(value: Any) -> float | None:
    """A usable concentration: ingest refuses negatives, but another writer might not."""
    number = finite_number(value)
    return number if number is not None and number >= 0 else None


class IndicatorsService:
    def __init__(self, influx: InfluxClient, registry: Registry, max_age_s: float,
                 siaga_max_age_s: float) -> None:
        self.influx = influx
        self.registry = registry
        self.max_age_s = int(max_age_s)
        self.siaga_max_age_s = int(siaga_max_age_s)
        self.table = load_ispu_table()
        self.gauges: dict[str, GaugeThresholds] = load_gauges()

    # -- ISPU ----------------------------------------------------------------------------------
    async def ispu(self, scope: Scope, filters: Filters) -> IspuResponse:
        items = await self._ispu_from_service(scope, filters)
        if items:
            return IspuResponse(source="indicator_service", scope=scope, items=items)
        stations = await self._ispu_computed(filters)
        items = stations if scope == "device" else _worst_per_district(stations)
        return IspuResponse(source="computed" if items else "none", scope=scope, items=items)

    async def _ispu_from_service(self, scope: Scope, filters: Filters) -> list[IspuPublic]:
        group = "device" if scope == "device" else "district"
        query = (f"SELECT * FROM {quote_ident('ispu')} WHERE "
                 + _where(f"time > now() - {self.max_age_s}s", _eq("window", "1h"),
                          _eq("scope", scope), *filters.conditions())
                 + f" GROUP BY {quote_ident(group)} ORDER BY time DESC LIMIT 1")
        items = []
        for series in await self.influx.query(query):
            for row in _rows(series)[:1]:
                sub = {key.removeprefix("ispu_"): number for key, value in row.items()
                       if key.startswith("ispu_")
                       and (number := finite_number(value)) is not None}
                insufficient = str(row.get("insufficient") or "")
                stations = finite_number(row.get("stations"))
                items.append(IspuPublic(
                    scope=scope,
                    device=row.get("device") or row.get("worst_device") or None,
                    district=str(row.get("district") or ""),
                    city=str(row.get("city") or ""), time=ms_to_datetime(int(row["time"])),
                    ispu=finite_number(row.get("ispu")), category=row.get("category"),
                    colour=row.get("colour"), hex=row.get("hex"),
                    critical_parameter=row.get("critical_parameter"), sub_indices=sub,
                    complete=bool(row.get("complete")),
                    insufficient=[p for p in insufficient.split(",") if p],
                    stations=int(stations) if stations is not None else None,
                    source="indicator_service"))
        items.sort(key=lambda i: (i.district, i.device or ""))
        return items

    async def _ispu_computed(self, filters: Filters) -> list[IspuPublic]:
        """Per station: hourly means of the last 24 h, averaged per parameter's rule, ISPU."""
        now_ms = int(time.time() * 1000)
        current_hour = now_ms // HOUR_MS * HOUR_MS
        first_hour = current_hour - 23 * HOUR_MS
        columns = ", ".join(f"mean({quote_ident(p)}) AS {quote_ident(p)}" for p in AIR_PARAMETERS)
        query = (f"SELECT {columns} FROM {quote_ident('air')} WHERE "
                 + _where(f"time >= {first_hour * 1_000_000}", *filters.conditions())
                 + f" GROUP BY time(1h), {quote_ident('device')}, {quote_ident('district')}, "
                 f"{quote_ident('city')} fill(none)")
        items = []
        for series in await self.influx.query(query):
            tags = series.get("tags") or {}
            rows = _rows(series)
            if not rows:
                continue
            by_hour = {int(row["time"]): row for row in rows}
            hours = [first_hour + n * HOUR_MS for n in range(24)]
            concentrations: dict[str, float | None] = {}
            for parameter in AIR_PARAMETERS:
                hourly = [_concentration(by_hour[h].get(parameter)) if h in by_hour else None
                          for h in hours]
                if all(v is None for v in hourly):
                    continue  # the station does not measure it
                concentrations[parameter] = average_for_ispu(hourly, parameter,
                                                             self.table).mean_ugm3
            if not concentrations:
                continue
            result = station_ispu(concentrations, self.table)
            category = result.category
            items.append(IspuPublic(
                scope="device", device=tags.get("device"), district=tags.get("district", ""),
                city=tags.get("city", ""), time=ms_to_datetime(max(by_hour)),
                ispu=result.ispu, category=category.name if category else None,
                colour=category.colour if category else None,
                hex=category.hex if category else None,
                critical_parameter=result.critical_parameter,
                sub_indices=result.sub_indices, complete=not result.insufficient,
                insufficient=result.insufficient, source="computed"))
        items.sort(key=lambda i: (i.district, i.device or ""))
        return items

    # -- Siaga ---------------------------------------------------------------------------------
    async def siaga(self, filters: Filters) -> SiagaResponse:
        # The service's latest complete minute per gauge; gauges it has no complete minute for
        # (silent lately, or the service is behind) are computed from their latest readings.
        items = await self._siaga_from_service(filters)
        have = {item.device for item in items}
        computed = [item for item in await self._siaga_computed(filters)
                    if item.device not in have]
        if not items:
            return SiagaResponse(source="computed" if computed else "none", items=computed)
        merged = sorted([*items, *computed], key=lambda i: i.device)
        return SiagaResponse(source="indicator_service" if not computed else "mixed",
                             items=merged)

    def _thresholds(self, gauge_id: str | None) -> dict[str, float | None]:
        gauge = self.gauges.get(gauge_id or "")
        if gauge is None:
            return {}
        return {f"siaga{status}": t.value_cm for status, t in gauge.thresholds()}

    async def _siaga_from_service(self, filters: Filters) -> list[SiagaPublic]:
        query = (f"SELECT * FROM {quote_ident('siaga')} WHERE "
                 + _where(f"time > now() - {self.siaga_max_age_s}s", _eq("window", "1m"),
                          f"{quote_ident('complete')} = true", *filters.conditions())
                 + f" GROUP BY {quote_ident('device')} ORDER BY time DESC LIMIT 1")
        items = []
        for series in await self.influx.query(query):
            for row in _rows(series)[:1]:
                gauge_id = row.get("gauge") or None
                gauge = self.gauges.get(gauge_id or "")
                status = finite_number(row.get("status"))
                items.append(SiagaPublic(
                    device=str(row.get("device") or ""),
                    gauge=gauge_id, gauge_name=gauge.name if gauge else None,
                    river=gauge.river if gauge else None,
                    district=str(row.get("district") or ""), city=str(row.get("city") or ""),
                    time=ms_to_datetime(int(row["time"])),
                    level_cm=finite_number(row.get("level_cm")),
                    status=int(status) if status is not None else None,
                    status_name=row.get("status_name"),
                    rise_cm_per_h=finite_number(row.get("rise_cm_per_h")),
                    hours_to_next=finite_number(row.get("hours_to_next")),
                    thresholds_cm=self._thresholds(gauge_id), source="indicator_service"))
        items.sort(key=lambda i: i.device)
        return items

    async def _siaga_computed(self, filters: Filters) -> list[SiagaPublic]:
        """Latest level per gauge (within siaga_max_age_s) and the rise over its last hour."""
        query = (f"SELECT {quote_ident('level_cm')} FROM {quote_ident('water')} WHERE "
                 + _where(f"time > now() - {self.siaga_max_age_s}s", *filters.conditions())
                 + f" GROUP BY {quote_ident('device')}, {quote_ident('district')}, "
                 f"{quote_ident('city')}")
        items = []
        for series in await self.influx.query(query):
            tags = series.get("tags") or {}
            samples = [(int(row["time"]), level) for row in _rows(series)
                       if (level := finite_number(row.get("level_cm"))) is not None]
            if not samples:
                continue
            items.append(self._siaga_item(tags, samples))
        items.sort(key=lambda i: i.device)
        return items

    def _siaga_item(self, tags: dict[str, str], samples: Sequence[tuple[int, float]]
                    ) -> SiagaPublic:
        device_id = tags.get("device", "")
        time_ms, level = samples[-1]
        device = self.registry.get(device_id)
        gauge_id = str(device.params.get("gauge_id")) if device and "gauge_id" in device.params \
            else None
        gauge = self.gauges.get(gauge_id or "")
        recent = [(t / 1000, v) for t, v in samples if t >= time_ms - HOUR_MS]
        rise = rate_of_rise_cm_per_h(recent)
        status = status_name = None
        lower_bound = False
        hours = None
        if gauge is not None:
            result = siaga_status(gauge, level)
            status, status_name, lower_bound = (result.status, result.status_name,
                                                result.is_lower_bound)
            hours = hours_to_next_threshold(gauge, level, rise)
        return SiagaPublic(
            device=device_id, gauge=gauge_id, gauge_name=gauge.name if gauge else None,
            river=gauge.river if gauge else None, district=tags.get("district", ""),
            city=tags.get("city", ""), time=ms_to_datetime(time_ms), level_cm=level,
            status=status, status_name=status_name, is_lower_bound=lower_bound,
            rise_cm_per_h=rise, hours_to_next=hours, thresholds_cm=self._thresholds(gauge_id),
            source="computed")

    # -- open incidents --------------------------------------------------------------------------
    async def incidents(self, filters: Filters) -> IncidentsResponse:
        """Per city, the newest state the indicator service wrote: its minute points when it
        computes them (within siaga_max_age_s), else its hourly ones (indicator_max_age_s).

        The newest window is found per city and without the district filter, so a city whose
        service runs a minute behind another still shows, and a district the service stopped
        writing (all its incidents aged out) shows nothing rather than an older count.
        """
        windows: tuple[tuple[Literal["1m", "1h"], int, int], ...] = (
            ("1m", MINUTE_MS, self.siaga_max_age_s), ("1h", HOUR_MS, self.max_age_s))
        city_filter = [_eq("city", filters.city)] if filters.city is not None else []
        newest: dict[str, tuple[Literal["1m", "1h"], int, int]] = {}
        for window, length_ms, max_age_s in windows:
            query = (f"SELECT last({quote_ident('open_incidents')}) FROM "
                     f"{quote_ident('safety_incidents')} WHERE "
                     + _where(f"time > now() - {max_age_s}s", _eq("window", window),
                              *city_filter)
                     + f" GROUP BY {quote_ident('city')}")
            for series in await self.influx.query(query):
                for row in _rows(series)[:1]:
                    newest.setdefault(str(row.get("city") or ""),
                                      (window, length_ms, int(row["time"])))
        items: list[IncidentCount] = []
        for city, (window, length_ms, start_ms) in sorted(newest.items()):
            district = [_eq("district", filters.district)] if filters.district is not None else []
            query = (f"SELECT {quote_ident('open_incidents')}, {quote_ident('stale_incidents')} "
                     f"FROM {quote_ident('safety_incidents')} WHERE "
                     + _where(f"time = {start_ms * 1_000_000}", _eq("window", window),
                              _eq("city", city), *district)
                     + f" GROUP BY {quote_ident('scope')}, {quote_ident('district')}, "
                     f"{quote_ident('event')}")
            as_of = ms_to_datetime(start_ms + length_ms)
            for series in await self.influx.query(query):
                for row in _rows(series):
                    city_scope = row.get("scope") == "city"
                    items.append(IncidentCount(
                        scope="city" if city_scope else "district", city=city,
                        district=None if city_scope else str(row.get("district") or ""),
                        event=str(row.get("event") or ""),
                        open_incidents=int(finite_number(row.get("open_incidents")) or 0),
                        stale_incidents=int(finite_number(row.get("stale_incidents")) or 0),
                        window=window, as_of=as_of))
        items.sort(key=lambda i: (i.city, i.scope != "city", i.district or "",
                                  i.event != "all", i.event))
        if not newest:
            return IncidentsResponse(source="none", window=None, as_of=None, items=[])
        used = {window for window, _, _ in newest.values()}
        return IncidentsResponse(
            source="indicator_service", window=used.pop() if len(used) == 1 else "mixed",
            as_of=max(ms_to_datetime(t + length) for _, length, t in newest.values()),
            items=items)


def _worst_per_district(stations: Sequence[IspuPublic]) -> list[IspuPublic]:
    """A district's ISPU is its worst complete station, as DKI reports it."""
    by_district: dict[tuple[str, str], list[IspuPublic]] = {}
    for station in stations:
        by_district.setdefault((station.city, station.district), []).append(station)
    out = []
    for (city, district), members in sorted(by_district.items()):
        complete = [s for s in members if s.complete and s.ispu is not None]
        if complete:
            worst = max(complete, key=lambda s: s.ispu or 0.0)
            out.append(worst.model_copy(update={"scope": "district", "stations": len(complete)}))
        else:
            missing = sorted({p for s in members for p in s.insufficient})
            out.append(IspuPublic(
                scope="district", device=None, district=district, city=city,
                time=max(s.time for s in members), ispu=None, category=None, colour=None,
                hex=None, critical_parameter=None, sub_indices={}, complete=False,
                insufficient=missing, stations=0, source="computed"))
    return out
