"""One MQTT connection model: broker address, credentials, client id, keepalive and TLS.

``ingest.mqtt`` (the subscriber) and ``simulate.mqtt`` (the paho publisher) extend it with
their own settings and their own client id default. The Raspberry Pi agent keeps its TOML
``[mqtt]`` table (agent/config.py) with the same names for the same things.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = ["AccountBoundConnection", "MqttConnection"]


class MqttConnection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", min_length=1,
                      description="Broker host name or address")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (8883 for TLS)")
    username: str | None = Field(default=None, description="Broker user")
    password: SecretStr | None = Field(default=None, description="Broker password")
    password_file: Path | None = Field(
        default=None, description="File holding the broker password (instead of password)")
    client_id: str = Field(default="kota", min_length=1, max_length=64,
                           description="MQTT client id")
    keepalive_s: int = Field(
        default=30, ge=5, le=3600,
        description="Seconds between pings; a silent broker is dropped at 1.5x")
    tls: bool = Field(default=False, description="Connect with TLS")
    ca_file: Path | None = Field(default=None, description="CA bundle for TLS; system CAs if unset")
    cert_file: Path | None = Field(default=None,
                                   description="Client certificate for TLS (with key_file)")
    key_file: Path | None = Field(default=None,
                                  description="Private key of cert_file (with cert_file)")

    @model_validator(mode="after")
    def _consistent(self) -> MqttConnection:
        # Each message starts with the setting it is about: kota.config names it in the error.
        if self.password is not None and self.password_file is not None:
            raise ValueError("password_file and password are both set: give one of them")
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            raise ValueError(f"{missing} is needed too: cert_file and key_file go together")
        return self

    def resolved_password(self) -> str | None:
        """The password, read from ``password_file`` if that is given."""
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return self.password.get_secret_value() if self.password is not None else None

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context (server verified against ``ca_file`` or the system CAs, client
        certificate if given), or None without TLS."""
        if not self.tls:
            return None
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None)
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def where(self) -> str:
        return f"{self.host}:{self.port}" + (" (TLS)" if self.tls else "")


class AccountBoundConnection(MqttConnection):
    """A service's own connection on the Kota broker, which binds client ids to accounts
    (``use_username_as_clientid``; docs/security.md): with a password and no username, the
    client id is the user."""

    @model_validator(mode="after")
    def _username_is_client_id(self) -> AccountBoundConnection:
        if self.username is None and (self.password is not None
                                      or self.password_file is not None):
            self.username = self.client_id
        return self
