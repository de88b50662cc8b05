"""The ingest service's settings: section ``ingest:`` of kota.yaml, env ``KOTA_INGEST__...``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kota.influx import InfluxSettings
from kota.payload import ParseRules
from kota.settings import AccountBoundConnection, LoggingSettings


class MqttSettings(AccountBoundConnection):
    """The shared connection settings (kota.settings.MqttConnection) plus the subscription's."""

    client_id: str = Field(
        default="kota-ingest", min_length=1, max_length=64,
        description="Fixed client id: the persistent session is keyed on it. With a password "
                    "and no username, also the broker user (the Kota broker binds client ids "
                    "to users, so --workers logs worker n in as <client_id>-<n>)")
    session_expiry_s: int = Field(
        default=7 * 24 * 3600, ge=0,
        description="How long the broker keeps our queue while we are away")
    receive_maximum: int = Field(default=65535, ge=1, le=65535,
                                 description="Unacknowledged messages the broker may send at once")
    topics: list[str] = Field(default=["kota/+/+/+"], min_length=1,
                              description="Topic filters to subscribe to")
    share_group: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="Subscribe as $share/<group>/<topic> to split load across processes")

    def subscriptions(self) -> list[str]:
        if self.share_group:
            return [f"$share/{self.share_group}/{topic}" for topic in self.topics]
        return list(self.topics)


class BufferSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: Path = Field(default=Path("run/ingest/buffer"),
                      description="Folder for batches kept while InfluxDB is unreachable")
    max_mb: float = Field(default=1024, gt=0, description="Largest size of the buffer on disk")
    when_full: Literal["backpressure", "drop_oldest"] = Field(
        default="backpressure",
        description="backpressure: stop acknowledging so the broker holds messages (loses "
                    "nothing); drop_oldest: delete the oldest buffered batch, counted and logged")


class DeadLetterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: Path = Field(default=Path("run/ingest/deadletter"),
                      description="Folder of JSON-lines files with every rejected message")
    max_mb: float = Field(default=512, gt=0, description="Oldest files are removed past this")
    to_influx: bool = Field(default=True,
                            description="Also write a kota_deadletter point (reason, excerpt)")


class IngestSettings(LoggingSettings):
    """Everything ``kota ingest`` needs. Every setting can come from the file or environment."""

    model_config = ConfigDict(extra="forbid")

    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    buffer: BufferSettings = Field(default_factory=BufferSettings)
    deadletter: DeadLetterSettings = Field(default_factory=DeadLetterSettings)
    registry_file: Path | None = Field(default=None,
                                       description="Device registry (YAML or CSV)")
    registry_reload_s: float = Field(
        default=2.0, ge=0, le=3600,
        description="Seconds between checks of registry_file for changes (kota devices "
                    "rewrites it); a changed file is reloaded without a restart; 0: never")
    strict_registry: bool = Field(default=False,
                                  description="Reject devices missing from the registry")
    unknown_fields: Literal["reject", "ignore"] = Field(
        default="reject", description="What to do with a key that is not a field of the kind")
    batch_max_points: int = Field(default=5000, ge=1, le=100_000,
                                  description="Points per InfluxDB write")
    batch_max_wait_ms: int = Field(default=200, ge=1, le=60_000,
                                   description="Longest a message waits for its batch")
    max_payload_bytes: int = Field(default=262_144, ge=64,
                                   description="Larger payloads are dead-lettered as oversized")
    max_batch_items: int = Field(default=1000, ge=1, description="Elements in an array payload")
    max_future_s: float = Field(default=300, ge=0,
                                description="Furthest a device timestamp may be ahead")
    min_timestamp: datetime = Field(default=datetime(2020, 1, 1, tzinfo=UTC),
                                    description="Earlier timestamps mean an unset device clock")
    metrics_host: str = Field(default="127.0.0.1", description="Prometheus /metrics address")
    metrics_port: int = Field(default=9108, ge=0, le=65535, description="0 turns /metrics off")
    stats_interval_s: float = Field(default=10, gt=0,
                                    description="How often ingest writes its own kota_ingest point")
    instance: str = Field(default="1", pattern=r"^[A-Za-z0-9_-]{1,32}$",
                          description="Name of this process among several (tag on kota_ingest)")

    @model_validator(mode="after")
    def _no_placeholders(self) -> IngestSettings:
        # .env.example's "change-me" values must not reach a running service (issue 10).
        for name, secret in (("influx.token", self.influx.token),
                             ("influx.password", self.influx.password),
                             ("mqtt.password", self.mqtt.password)):
            if secret is not None and "change-me" in secret.get_secret_value():
                raise ValueError(f"{name} is still the change-me placeholder: set a real one")
        return self

    @model_validator(mode="after")
    def _timezone(self) -> IngestSettings:
        if self.min_timestamp.tzinfo is None:
            raise ValueError("min_timestamp needs a time zone, e.g. 2020-01-01T00:00:00Z")
        return self

    def parse_rules(self) -> ParseRules:
        return ParseRules(
            max_payload_bytes=self.max_payload_bytes, max_batch_items=self.max_batch_items,
            max_future_s=self.max_future_s, min_timestamp_s=self.min_timestamp.timestamp(),
            strict_registry=self.strict_registry, unknown_fields=self.unknown_fields)
