"""The alert service's settings: section ``alerts:`` of kota.yaml, env ``KOTA_ALERTS__...``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from alerts.channels.registry import ChannelConfig, duplicate_names
from alerts.outbox import OutboxSettings
from alerts.rules import DEFAULT_RULES_FILE
from alerts.subscriptions.settings import SubscriptionSettings
from kota.influx import InfluxSettings
from kota.settings import AccountBoundConnection, CityName, LoggingSettings
from store.settings import DatabaseSettings

__all__ = ["AlertsMqttSettings", "AlertsSettings"]


class AlertsMqttSettings(AccountBoundConnection):
    """The stream the rules on raw readings evaluate: a persistent session of its own, each
    message acknowledged only after the state change it caused is committed."""

    client_id: str = Field(default="kota-alerts", min_length=1, max_length=64,
                           description="Fixed client id (the persistent session is keyed on "
                                       "it); with a password and no username, also the user")
    session_expiry_s: int = Field(default=24 * 3600, ge=0,
                                  description="How long the broker keeps our queue while we "
                                              "are away")
    receive_maximum: int = Field(default=2000, ge=1, le=65535,
                                 description="Unacknowledged messages the broker may send at "
                                             "once")
    topics: list[str] = Field(default=["kota/+/+/+"], min_length=1,
                              description="Topic filters of readings")


class AlertsSettings(LoggingSettings):
    """``kota alerts``: rules, state, delivery."""

    city: CityName = Field(default="jakarta", description="The city this service warns")
    rules_file: Path = Field(default=DEFAULT_RULES_FILE,
                             description="Alert rules (YAML); reloaded when it changes, a bad "
                                         "file keeps the last good rules")
    rules_reload_s: float = Field(default=5, ge=0,
                                  description="How often the rules file is checked; 0: never")
    registry_file: Path | None = Field(default=None,
                                       description="Device registry (districts, gauge ids); "
                                                   "rules need it to place a reading")
    registry_reload_s: float = Field(default=5, ge=0,
                                     description="How often the registry is checked; 0: never")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    mqtt: AlertsMqttSettings = Field(default_factory=AlertsMqttSettings)
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    poll_interval_s: float = Field(default=60, gt=0, le=3600,
                                   description="How often rules on indicator outputs (ISPU, "
                                               "rain) query InfluxDB")
    tick_interval_s: float = Field(default=10, gt=0, le=600,
                                   description="How often time alone is evaluated (pending "
                                               "durations, repeats, silent devices)")
    max_clock_skew_s: float = Field(
        default=300, gt=0,
        description="A reading whose device time is further off than this is placed at the "
                    "time it was received")
    channels: list[ChannelConfig] = Field(
        default_factory=list,
        description="Where notifications go (alerts/channels/<type>/README.md)")
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    subscriptions: SubscriptionSettings = Field(default_factory=SubscriptionSettings)
    influx_events: bool = Field(default=True,
                                description="Write each alert event to InfluxDB (measurement "
                                            "alert_events) for Grafana annotations")
    sender: str = Field(default="kota-cerdas@jakarta.go.id",
                        description="CAP <sender>: who issues the alerts (an address the city "
                                    "owns)")
    metrics_host: str = Field(default="127.0.0.1", description="Prometheus /metrics address")
    metrics_port: int = Field(default=9112, ge=0, le=65535, description="0 turns /metrics off")

    @model_validator(mode="after")
    def _checks(self) -> AlertsSettings:
        problem = duplicate_names(self.channels)
        if problem:
            raise ValueError(problem)
        for name, secret in (("influx.token", self.influx.token),
                             ("influx.password", self.influx.password),
                             ("mqtt.password", self.mqtt.password)):
            if secret is not None and "change-me" in secret.get_secret_value():
                raise ValueError(f"{name} is still the change-me placeholder: set a real one")
        return self
