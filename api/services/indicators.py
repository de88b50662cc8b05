"""Current ISPU and Siaga: read from the indicator service's measurements when it has written
recent points, else computed here from the raw readings. The fallback ISPU is the indicator
service's own computation (indicators.air: the hourly window ending with the current hour, the
same averaging periods and completeness rules), so the live page and the dashboards agree.
Queries are built with indicators.queries; measurement names come from indicators/outputs.
Every answer says where it came from.
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
from indicators.air import compute_stations, hourly_air_query, hourly_means
from indicators.outputs import output
from indicators.queries import HOUR_MS, MINUTE_MS, at, eq, group_by, recent, where
from indicators.settings import AirSettings
from indicators.windows import Window
from kota.indices.siaga import (
    hours_to_next_threshold,
    load_gauges,
    rate_of_rise_cm_per_h,
    siaga_status,
)
from kota.influx import InfluxClient, quote_ident
from kota.registry import Registry
from kota.standards import GaugeThresholds

__all__ = ["IndicatorsService"]

Scope = Literal["device", "district"]
ISPU = output("ispu").measurement
SIAGA = output("siaga").measurement
INCIDENTS = output("safety_incidents").measurement


def _rows(series: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows as dicts, with the series' GROUP BY tags merged in."""
    columns = series["columns"]
    tags = series.get("tags") or {}
    return [{**dict(zip(columns, values, strict=False)), **{k: v for k, v in tags.items() if v}}
            for values in series.get("values") or []]


class IndicatorsService:
    def __init__(self, influx: InfluxClient, registry: Registry, max_age_s: float,
                 siaga_max_age_s: float) -> None:
        self.influx = influx
        self.registry = registry
        self.max_age_s = int(max_age_s)
        self.siaga_max_age_s = int(siaga_max_age_s)
        self.air = AirSettings()
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
        query = (f"SELECT * FROM {quote_ident(ISPU)} WHERE "
                 + where(recent(self.max_age_s), eq("window", "1h"), eq("scope", scope),
                         *filters.conditions())
                 + f" GROUP BY {group_by([group])} ORDER BY time DESC LIMIT 1")
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
        """Per station, the indicator service's ISPU for the hour window ending with the current
        hour (indicators.air.compute_stations over the hourly means before its end)."""
        now_ms = int(time.time() * 1000)
        current_hour = now_ms // HOUR_MS * HOUR_MS
        window = Window(current_hour, current_hour + HOUR_MS, "1h")
        hourly = hourly_means(await self.influx.query(hourly_air_query(
            window.end_ms - 24 * HOUR_MS, window.end_ms, None, filters.conditions())))
        items = []
        for station in compute_stations(window, hourly, self.air):
            result, key = station.result, station.key
            category = result.category if result.sub_indices else None
            items.append(IspuPublic(
                scope="device", device=key.device or None, district=key.district,
                city=key.city, time=ms_to_datetime(max(hourly[key])),
                ispu=result.ispu, category=category.name if category else None,
                colour=category.colour if category else None,
                hex=category.hex if category else None,
                critical_parameter=result.critical_parameter,
                sub_indices=result.sub_indices, complete=station.complete,
                insufficient=result.insufficient, source="computed"))
        items.sort(key=lambda i: (i.district, i.device or ""))
        return items

    # -- Siaga ---------------------------------------------------------------------------------
    async def siaga(self, filters: Filters) -> SiagaResponse:
        """Per gauge, the status of its latest level. The indicator service's latest complete
        minute is used when it covers that level; when the gauge has reported since (the
        service is behind, or its minute is not complete yet), the status is computed here
        from the newest reading: the status shown is never older than the level shown
        (issue 14)."""
        service_items = await self._siaga_from_service(filters)
        latest = {item.device: item for item in await self._siaga_computed(filters)}
        merged = []
        for item in service_items:
            newer = latest.pop(item.device, None)
            merged.append(newer if newer is not None and _reported_after(newer, item) else item)
        merged.extend(latest.values())
        merged.sort(key=lambda i: i.device)
        sources = {item.source for item in merged}
        source: Literal["indicator_service", "computed", "mixed", "none"] = (
            "none" if not sources else sources.pop() if len(sources) == 1 else "mixed")
        return SiagaResponse(source=source, items=merged)

    def _thresholds(self, gauge_id: str | None) -> dict[str, float | None]:
        gauge = self.gauges.get(gauge_id or "")
        if gauge is None:
            return {}
        return {f"siaga{status}": t.value_cm for status, t in gauge.thresholds()}

    async def _siaga_from_service(self, filters: Filters) -> list[SiagaPublic]:
        query = (f"SELECT * FROM {quote_ident(SIAGA)} WHERE "
                 + where(recent(self.siaga_max_age_s), eq("window", "1m"),
                         f"{quote_ident('complete')} = true", *filters.conditions())
                 + f" GROUP BY {group_by(['device'])} ORDER BY time DESC LIMIT 1")
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
                 + where(recent(self.siaga_max_age_s), *filters.conditions())
                 + f" GROUP BY {group_by(['device', 'district', 'city'])}")
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
        city_filter = [eq("city", filters.city)] if filters.city is not None else []
        newest: dict[str, tuple[Literal["1m", "1h"], int, int]] = {}
        for window, length_ms, max_age_s in windows:
            query = (f"SELECT last({quote_ident('open_incidents')}) FROM "
                     f"{quote_ident(INCIDENTS)} WHERE "
                     + where(recent(max_age_s), eq("window", window), *city_filter)
                     + f" GROUP BY {group_by(['city'])}")
            for series in await self.influx.query(query):
                for row in _rows(series)[:1]:
                    newest.setdefault(str(row.get("city") or ""),
                                      (window, length_ms, int(row["time"])))
        items: list[IncidentCount] = []
        for city, (window, length_ms, start_ms) in sorted(newest.items()):
            district = [eq("district", filters.district)] if filters.district is not None else []
            query = (f"SELECT {quote_ident('open_incidents')}, {quote_ident('stale_incidents')} "
                     f"FROM {quote_ident(INCIDENTS)} WHERE "
                     + where(at(start_ms), eq("window", window), eq("city", city), *district)
                     + f" GROUP BY {group_by(['scope', 'district', 'event'])}")
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


def _reported_after(reading: SiagaPublic, point: SiagaPublic) -> bool:
    """The reading is past the service's 1-minute window that starts at ``point.time``."""
    return reading.time.timestamp() * 1000 >= point.time.timestamp() * 1000 + MINUTE_MS


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
