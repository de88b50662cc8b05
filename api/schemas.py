"""Response models: what each endpoint returns, separate from the registry's own models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from kota.registry import Device

__all__ = [
    "DevicePublic",
    "DistrictLatest",
    "FieldBand",
    "FieldScale",
    "FieldScales",
    "FieldSummary",
    "HistoryResponse",
    "HistorySeries",
    "IncidentAlert",
    "IspuPublic",
    "IspuResponse",
    "LatestReading",
    "LatestResponse",
    "MetaResponse",
    "OpenIncident",
    "OpenIncidentsResponse",
    "SiagaPublic",
    "SiagaResponse",
]

FieldValue = float | str | bool | None
IndicatorSource = Literal["indicator_service", "computed"]


class DevicePublic(BaseModel):
    device_id: str
    kind: str
    city: str
    district: str = Field(description="Kecamatan")
    district_code: str = Field(default="", description="Its Kemendagri code (kode wilayah, "
                                                       "e.g. 31.71.01); empty: none known")
    kelurahan: str
    lat: float
    lon: float
    name: str
    params: dict[str, float | str]

    @classmethod
    def of(cls, device: Device) -> DevicePublic:
        return cls.model_validate(device.model_dump())


class LatestReading(BaseModel):
    device: str
    kind: str
    city: str
    district: str
    kelurahan: str = ""
    time: datetime = Field(description="Time of the reading (UTC)")
    time_ms: int = Field(description="Epoch milliseconds")
    fields: dict[str, FieldValue] = Field(description="Every field of the latest point")
    tags: dict[str, str] = Field(default_factory=dict,
                                 description="Kind-specific tags, e.g. the safety event")
    lat: float | None = Field(default=None, description="From the registry")
    lon: float | None = None
    name: str = ""
    age_s: float | None = Field(default=None, description="Seconds from `time` to when "
                                                          "the API read it (its snapshot)")
    stale: bool | None = Field(default=None, description="Older than api.page.stale_after_s: "
                                                         "the device has been silent")
    offline: bool | None = Field(default=None,
                                 description="The device's own heartbeat (kind status) says "
                                             "online: false (its Last Will); null: no heartbeat")


class LatestResponse(BaseModel):
    count: int
    readings: list[LatestReading]


class FieldSummary(BaseModel):
    mean: float
    min: float
    max: float
    devices: int


class DistrictLatest(BaseModel):
    kind: str
    city: str
    district: str
    devices: int = Field(description="Devices with a latest reading")
    newest: datetime
    oldest: datetime
    fields: dict[str, FieldSummary] = Field(
        description="Over the devices' latest readings, per numeric field")


class HistorySeries(BaseModel):
    device: str
    district: str
    city: str
    times_ms: list[int]
    values: dict[str, list[float | None]] = Field(description="One list per field, aligned with "
                                                              "times_ms")


class HistoryResponse(BaseModel):
    kind: str
    fields: list[str]
    start: datetime
    end: datetime
    interval: str | None = Field(description="Bucket length; null: raw points")
    aggregate: str | None
    truncated: bool = Field(description="True when a series hit the point limit")
    series: list[HistorySeries]


class IspuPublic(BaseModel):
    scope: Literal["device", "district"]
    device: str | None
    district: str
    city: str
    time: datetime = Field(description="Start of the hour the index is for (indicator service) "
                                       "or of the newest hour with data (computed)")
    ispu: float | None
    category: str | None = Field(description="Baik, Sedang, Tidak Sehat, Sangat Tidak Sehat, "
                                             "Berbahaya")
    colour: str | None = Field(description="Official colour word (hijau, biru, ...)")
    hex: str | None
    critical_parameter: str | None
    sub_indices: dict[str, float]
    complete: bool
    insufficient: list[str]
    stations: int | None = Field(default=None, description="district: complete stations")
    source: IndicatorSource
    age_s: float | None = Field(default=None, description="Seconds from `time` to when "
                                                          "the API read it (its snapshot)")


class IspuResponse(BaseModel):
    source: IndicatorSource | Literal["none"] = Field(
        description="indicator_service: the `ispu` measurement written by `kota indicators`; "
                    "computed: from the last 24 h of air readings with kota.indices.ispu")
    scope: Literal["device", "district"]
    items: list[IspuPublic]


class SiagaPublic(BaseModel):
    device: str
    gauge: str | None
    gauge_name: str | None
    river: str | None
    district: str
    city: str
    time: datetime
    level_cm: float | None
    status: int | None = Field(description="4 Normal, 3 Waspada, 2 Siaga, 1 Awas; null when the "
                                           "gauge has no thresholds")
    status_name: str | None
    is_lower_bound: bool = Field(default=False,
                                 description="An unknown threshold could make it more severe")
    rise_cm_per_h: float | None = None
    hours_to_next: float | None = None
    thresholds_cm: dict[str, float | None] = Field(default_factory=dict)
    source: IndicatorSource
    age_s: float | None = Field(default=None, description="Seconds from `time` (the level's "
                                                          "reading) to when the API read it")


class SiagaResponse(BaseModel):
    source: IndicatorSource | Literal["mixed", "none"] = Field(
        description="indicator_service: the latest complete `siaga` minute of every gauge; "
                    "computed: from the latest water readings; mixed: each item says which")
    items: list[SiagaPublic]


class IncidentCount(BaseModel):
    scope: Literal["district", "city"]
    city: str
    district: str | None = Field(description="null for the city-wide rows")
    event: str = Field(description="Category of each incident's first report, or `all`")
    open_incidents: int = Field(description="Not resolved, first reported within the service's "
                                            "incident_open_horizon_h (default 24 h)")
    stale_incidents: int = Field(description="Never resolved and older than that horizon")
    window: Literal["1m", "1h"] = Field(description="The indicator-service window read")
    as_of: datetime = Field(description="The moment the counts describe (that window's end)")


class IncidentsResponse(BaseModel):
    source: Literal["indicator_service", "none"] = Field(
        description="indicator_service: the newest `safety_incidents` points of `kota "
                    "indicators`; none: it has written none recently (is it running?)")
    window: Literal["1m", "1h", "mixed"] | None = Field(
        description="1m when the service computes minute windows, else its hourly points; "
                    "mixed when cities differ (each item says which)")
    as_of: datetime | None = Field(description="The newest moment any city's counts describe; "
                                               "each item has its own")
    items: list[IncidentCount]


class MetaResponse(BaseModel):
    title: str
    version: str
    kinds: list[str]
    tile_url: str | None
    tile_attribution: str
    sse_interval_s: float
    ispu_categories: list[dict[str, str | float]]
    siaga_names: dict[int, str]


class IncidentAlert(BaseModel):
    id: int
    status: str
    level: str
    severity: str = Field(description="CAP severity: Extreme, Severe, Moderate, Minor, Unknown")
    url: str = Field(description="The alert with its history (relative to the API's root)")


class OpenIncident(BaseModel):
    incident_id: str | None = Field(description="null: an event without incident_id (an "
                                                "incident of its own, never resolvable)")
    state: Literal["open", "stale"] = Field(description="stale: unresolved and first reported "
                                                        "longer ago than the open horizon")
    event: str = Field(description="Category of its first event (kota/kinds/safety)")
    last_event: str = Field(description="Category of its newest event")
    device: str
    device_name: str
    city: str
    district: str
    opened_at: datetime = Field(description="Its first event (UTC)")
    last_event_at: datetime
    age_s: float = Field(description="Seconds since its first event")
    events: int = Field(description="Events of the incident in the lookback")
    alert: IncidentAlert | None = Field(description="The active alert about it (scope: its "
                                                    "incident_id, or its device), if any")


class OpenIncidentsResponse(BaseModel):
    as_of: datetime
    open_horizon_h: float
    lookback_h: float
    alerts: Literal["linked", "unavailable"] = Field(
        description="unavailable: the alert state could not be read; no links")
    count: int
    items: list[OpenIncident] = Field(description="Worst first: the severity of their alert, "
                                                  "open before stale, newest first")


class FieldBand(BaseModel):
    label: str = Field(description="e.g. 'Siaga 3 · Waspada' or an ISPU category")
    lower: float | None = Field(description="From (inclusive); null: no lower edge")
    upper: float | None = Field(description="Up to; null: no upper edge")
    hex: str | None
    status: int | None = Field(default=None, description="Water: the Siaga status of the band "
                                                         "(4 Normal … 1 Awas)")
    source: str = Field(description="The table the edges come from")


class FieldScale(BaseModel):
    field: str
    unit: str
    description: str
    bands: list[FieldBand] = Field(description="Empty when no standard applies")


class FieldScales(BaseModel):
    kind: str
    title: str = Field(description="The kind's title (Bahasa Indonesia / English)")
    device: str | None
    fields: list[FieldScale] = Field(description="Every numeric field of the kind")
