"""``alerts.subscriptions``: residents' and agencies' subscriptions (docs/subscriptions.md).

One model read by both sides: the API (sign-up, confirmation, unsubscribe, a subscriber's own
data) and the alert service (fan-out and delivery).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["DeliverySettings", "SignupSettings", "SmtpSettings", "SubscriptionSettings"]


class SmtpSettings(BaseModel):
    """The mail server for residents' mail: confirmations and alerts."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="SMTP server")
    port: int = Field(default=25, ge=1, le=65535, description="SMTP port (587: STARTTLS)")
    security: Literal["none", "starttls", "ssl"] = Field(default="none",
                                                          description="Transport security")
    username: str | None = Field(default=None, description="SMTP user")
    password: SecretStr | None = Field(default=None, description="SMTP password")
    password_file: Path | None = Field(default=None, description="File holding the password")
    from_address: str = Field(default="peringatan@kota.example.go.id",
                              description="From: of every mail")
    pool_size: int = Field(default=4, ge=1, le=64,
                           description="Persistent SMTP connections kept open for delivery; "
                                       "a batch of mail goes out over this many at once")
    timeout_s: float = Field(default=20, gt=0, le=300, description="Per SMTP command")


class SignupSettings(BaseModel):
    """The public sign-up: limits against abuse."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Serve the public sign-up (/langganan)")
    per_client_per_hour: int = Field(default=10, ge=1, le=10_000,
                                     description="Sign-ups one address (IP) may make per hour")
    per_address_per_day: int = Field(default=3, ge=1, le=100,
                                     description="Confirmation mails one email address gets "
                                                 "per day, however many sign-ups name it")
    confirm_ttl_h: float = Field(default=48, gt=0, le=24 * 30,
                                 description="A confirmation link works this long; unconfirmed "
                                             "subscriptions are deleted after it")


class DeliverySettings(BaseModel):
    """How notifications to subscribers are sent."""

    model_config = ConfigDict(extra="forbid")

    in_process: bool = Field(default=True,
                             description="Send from kota alerts itself. false: kota alerts only "
                                         "queues (the fan-out) and `kota alerts deliver` "
                                         "processes send, one per channel if you like: on 2 "
                                         "cores email and webhooks in one process share one "
                                         "GIL (docs/benchmarks.md, kota bench notify)")
    poll_interval_s: float = Field(default=2, gt=0, le=600,
                                   description="Seconds between looks for due notifications")
    batch: int = Field(default=500, ge=1, le=10_000,
                       description="Notifications a channel claims in one statement (at most "
                                   "10,000: the subscribers of two batches in flight are "
                                   "left out of the next claim by id, within SQLite's 32,766 "
                                   "bound values)")
    workers_per_channel: int = Field(default=4, ge=1, le=64,
                                     description="Webhook requests and apprise notifications "
                                                 "in flight per channel (email: "
                                                 "smtp.pool_size)")
    lease_s: float = Field(default=30, ge=1, le=3600,
                           description="Claimed notifications are due again after this if "
                                       "not marked by then (a notifier killed mid-batch: "
                                       "what its journal_dir shows delivered is marked sent "
                                       "first, the rest goes again with the same key)")
    mark_every: int = Field(default=50, ge=1, le=10_000,
                            description="Sent messages marked per transaction; with "
                                        "journal_dir null a notifier killed mid-batch sends "
                                        "up to about twice this again (with the journal: only "
                                        "those in flight)")
    journal_dir: Path | None = Field(
        default=Path("run/alerts/journal"),
        description="Folder (on this host) where each delivering process notes every message "
                    "as it is delivered, before it is marked in the database: a process "
                    "killed meanwhile has those marked by the next, so only the messages in "
                    "flight at that instant go out twice. null: no journal (up to about "
                    "mark_every messages twice). Processes on other hosts cannot see it: run "
                    "a channel's deliver processes on one host")
    max_attempts: int = Field(default=8, ge=1, le=1000,
                              description="Tries before a notification is marked failed")
    backoff_initial_s: float = Field(default=10, gt=0, le=3600)
    backoff_max_s: float = Field(default=900, gt=0, le=86_400)
    max_per_hour: int = Field(default=6, ge=1, le=1000,
                              description="Messages per subscriber per hour; more become one "
                                          "digest")
    digest_window_s: float = Field(default=300, ge=0, le=86_400,
                                   description="Alerts for one subscriber within this time are "
                                               "sent as one message")
    webhook_timeout_s: float = Field(default=10, gt=0, le=120)
    keep_notifications_days: float = Field(default=30, gt=0, le=3650,
                                           description="Sent and failed notifications are "
                                                       "deleted after this long")

    @field_validator("journal_dir", mode="before")
    @classmethod
    def _journal_dir(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("an empty path: give a folder, or null for no journal")
        return value


class SubscriptionSettings(BaseModel):
    """Residents' and agencies' subscriptions (docs/subscriptions.md)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Fan alerts out to subscribers")
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The API's public address, for confirmation and unsubscribe links")
    secret: SecretStr | None = Field(
        default=None,
        description="Signs confirmation/unsubscribe links and keys address hashes (32+ "
                    "characters; the same in the API and the alert service). Unset: "
                    "sign-up is off")
    secret_file: Path | None = Field(default=None, description="File holding the secret")
    timezone: str = Field(default="Asia/Jakarta",
                          description="Quiet hours are in this time zone")
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    signup: SignupSettings = Field(default_factory=SignupSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)

    @model_validator(mode="after")
    def _secret(self) -> SubscriptionSettings:
        if self.secret is not None and self.secret_file is not None:
            raise ValueError("set secret or secret_file, not both")
        if self.secret is not None:
            value = self.secret.get_secret_value()
            if "change-me" in value:
                raise ValueError("secret is still the change-me placeholder: set a real one")
            if len(value) < 32:
                raise ValueError("secret must be at least 32 characters "
                                 "(e.g. openssl rand -hex 32)")
        return self

    def secret_bytes(self) -> bytes | None:
        """The secret, from the setting or the file (None: sign-up is off)."""
        if self.secret is not None:
            return self.secret.get_secret_value().encode()
        if self.secret_file is not None:
            text = self.secret_file.read_text(encoding="utf-8").strip()
            if len(text) < 32:
                raise ValueError(f"{self.secret_file}: the secret must be at least 32 "
                                 "characters")
            return text.encode()
        return None
