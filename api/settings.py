"""The API's settings: section ``api:`` of kota.yaml, environment ``KOTA_API__...``.

Built by the caller (``kota api`` or a test) and handed to :func:`api.main.create_app`; nothing
is read at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from sqlalchemy.engine import make_url

from api.districts import DistrictsError, load_districts
from kota.influx import InfluxSettings
from kota.settings import LoggingSettings
from store.devices import ProvisioningSettings
from store.settings import DatabaseSettings

__all__ = ["ApiSettings", "AuthSettings", "CorsSettings", "LimitSettings", "PageSettings"]


class CorsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser (e.g. a Grafana host); "
                    "empty: same origin only")


class LimitSettings(BaseModel):
    """Bounds on what one request may ask for, so no query can scan the whole database."""

    model_config = ConfigDict(extra="forbid")

    latest_lookback_h: float = Field(
        default=7 * 24, gt=0, le=24 * 366,
        description="How far back 'latest' looks; a device silent for longer is not listed")
    max_range_days: float = Field(default=92, gt=0, le=3660,
                                  description="Longest time range of one history request")
    max_points: int = Field(default=10_000, ge=10, le=1_000_000,
                            description="Most points per series in one history answer")
    max_series: int = Field(default=200, ge=1, le=10_000,
                            description="Most series (devices) in one history answer")
    min_interval_s: int = Field(default=10, ge=1,
                                description="Shortest downsampling interval")
    max_total_points: int = Field(
        default=200_000, ge=10, le=10_000_000,
        description="Most points (rows of all series together) in one history answer; a "
                    "request that could return more is refused (HTTP 413) before any query")
    query_timeout_s: float = Field(
        default=10, gt=0, le=600,
        description="How long a query may take before the API answers HTTP 504")


class PageSettings(BaseModel):
    """The live page at ``/``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Serve the live page at /")
    title: str = Field(default="Kota Cerdas — Pantauan langsung / Live view", max_length=120,
                       description="Title shown on the page")
    tile_url: str | None = Field(
        default=None,
        description="Map tiles, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png; unset: "
                    "markers on a plain background (works offline)")
    tile_attribution: str = Field(default="", max_length=300,
                                  description="Attribution the tile provider requires")
    stale_after_s: float = Field(
        default=900, gt=0, le=7 * 86400,
        description="A value older than this is greyed on the page and its device flagged "
                    "silent (the simulators and agents report every 10-60 s, so 15 minutes "
                    "is several missed reports)")
    districts_name_property: str = Field(
        default="name", min_length=1, max_length=64,
        description="Property of each boundary feature holding the kecamatan's name, as the "
                    "registry spells the district (OpenStreetMap: name; BIG: WADMKC)")
    districts_attribution: str = Field(
        default="", max_length=300,
        description="Attribution the boundaries' licence requires, shown on the map (e.g. "
                    "'Batas kecamatan © OpenStreetMap contributors, ODbL')")
    # After the name property: its validator reads it.
    districts_geojson: Path | None = Field(
        default=None,
        description="Kecamatan boundaries (GeoJSON FeatureCollection of Polygon/MultiPolygon, "
                    "longitude/latitude WGS84) the city provides; the map draws them coloured "
                    "by their current ISPU (docs/api.md, Kecamatan boundaries from the city); "
                    "unset: none")

    @field_validator("districts_geojson")
    @classmethod
    def _districts_readable(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        # Checked when the settings load, so a bad file stops `kota api` (and --check) with
        # one line instead of a map without boundaries.
        name_property = info.data.get("districts_name_property")
        if path is not None and name_property is not None:
            try:
                load_districts(path, name_property)
            except DistrictsError as exc:
                raise ValueError(str(exc)) from None
        return path


class AuthSettings(BaseModel):
    """Roles and API keys (docs/security.md): keys live in ``database``."""

    model_config = ConfigDict(extra="forbid")

    public_position_decimals: int = Field(
        default=2, ge=0, le=4,
        description="Public answers give safety devices' (panic buttons', cameras') positions "
                    "rounded to this many decimals of a degree (2: about 1 km); operator keys "
                    "see them exactly")


class ApiSettings(LoggingSettings):
    """Everything ``kota api`` needs. Every setting can come from the file or environment."""

    model_config = ConfigDict(extra="forbid")

    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    registry_file: Path | None = Field(default=None,
                                       description="Device registry (YAML or CSV), as ingest's")
    registry_reload_s: float = Field(
        default=2.0, ge=0, le=3600,
        description="Seconds between checks of registry_file for changes (kota devices "
                    "rewrites it); a changed file is reloaded without a restart; 0: never")
    host: str = Field(default="127.0.0.1", description="Address to listen on")
    port: int = Field(default=8000, ge=1, le=65535, description="Port to listen on")
    root_path: str = Field(default="", pattern=r"^(/[A-Za-z0-9._~-]+)*$",
                           description="Path prefix when served behind a reverse proxy")
    cors: CorsSettings = Field(default_factory=CorsSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    page: PageSettings = Field(default_factory=PageSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    provisioning: ProvisioningSettings = Field(default_factory=ProvisioningSettings)
    sse_interval_s: float = Field(default=5.0, ge=0.2, le=300,
                                  description="How often the live stream looks for new readings")
    sse_max_duration_s: float = Field(
        default=900, ge=1, le=86_400,
        description="A stream ends after this long; browsers reconnect by themselves")
    sse_max_clients: int = Field(default=50, ge=1, le=10_000,
                                 description="Open streams at once; more get HTTP 503")
    sse_max_clients_per_client: int = Field(
        default=5, ge=1, le=10_000,
        description="Open streams at once per client (its API key, else its address); more "
                    "get HTTP 429")
    indicator_max_age_s: float = Field(
        default=3 * 3600, gt=0,
        description="An indicator-service point older than this is not 'current': the API "
                    "computes the value from the readings instead")
    siaga_max_age_s: float = Field(default=3600, gt=0,
                                   description="Oldest water level used for a computed Siaga")
    snapshot_interval_s: float = Field(
        default=2.0, ge=0.1, le=300,
        description="Public reads (latest readings, ISPU, Siaga, devices) are answered from a "
                    "shared snapshot refreshed at most this often: one set of queries per "
                    "interval however many clients; also their Cache-Control max-age")
    stale_while_revalidate_s: float = Field(
        default=10.0, ge=0, le=3600,
        description="Cache-Control stale-while-revalidate of those reads: how long a browser "
                    "or proxy may serve an expired answer while it fetches a new one")

    @model_validator(mode="after")
    def _no_placeholders(self) -> ApiSettings:
        # .env.example's "change-me" values must not reach a running service (issue 10).
        secrets = [("influx.token", self.influx.token), ("influx.password", self.influx.password)]
        for name, secret in secrets:
            if secret is not None and "change-me" in secret.get_secret_value():
                raise ValueError(f"{name} is still the change-me placeholder: set a real one")
        # The URL was parsed by database.url's own validator, so make_url cannot fail here.
        if "change-me" in (make_url(self.database.url).password or ""):
            raise ValueError("database.url's password is still the change-me placeholder: set a "
                             "real one")
        return self
