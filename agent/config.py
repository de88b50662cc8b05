"""The agent's one TOML file, validated at start.

Every table refuses keys it does not know (``extra="forbid"``), and an error names the key as a
dotted path with the file's line (``sensor[1].port (agent.toml:23): Field required``), so a typo
is found before the agent touches a sensor or the network. ``kota-agent sample-config`` prints a
complete commented file; each driver's own keys are in its folder's README and sample.conf.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.drivers import SensorConfigs, kind_of

__all__ = ["AgentConfig", "ConfigError", "load_config", "parse_config"]

DEFAULT_CONFIG = Path("/etc/kota-agent/agent.toml")


class ConfigError(ValueError):
    """The config file is missing, not TOML, or breaks the schema; the message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentSection(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,55}$",
                    description="This Pi's id; device ids are `<id>-<kind>` unless a sensor "
                                "sets device_id")
    city: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$", description="City part of the topic")
    state_dir: Path = Field(default=Path("/var/lib/kota-agent"),
                            description="Queue database and flagged-readings log live here")


class TlsSection(_Strict):
    ca_file: Path | None = Field(default=None, description="CA bundle; default: system CAs")
    cert_file: Path | None = Field(default=None, description="Client certificate (per device)")
    key_file: Path | None = Field(default=None, description="Client private key")

    @model_validator(mode="after")
    def _pair(self) -> TlsSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttSection(_Strict):
    host: str = Field(default="127.0.0.1", description="Broker host name")
    port: int = Field(default=1883, ge=1, le=65535, description="1883 plain, 8883 with TLS")
    client_id: str | None = Field(default=None, description="Default: `kota-agent-<agent.id>`")
    username: str | None = Field(default=None, description="Per-device user name")
    password: str | None = Field(default=None, description="Prefer password_file")
    password_file: Path | None = Field(default=None,
                                       description="File holding the password (mode 0600)")
    tls: TlsSection | None = Field(default=None, description="Present = connect with TLS")
    keepalive_s: int = Field(default=30, ge=2, le=3600,
                             description="The broker sends the Last Will after 1.5x this "
                                         "without a packet")
    reconnect_max_s: float = Field(default=60.0, gt=0, description="Longest wait between "
                                   "connection attempts (exponential backoff with jitter)")
    max_messages_per_s: float = Field(default=0.0, ge=0, description="Cap on messages sent "
                                      "per second while a backlog drains (0 = no cap)")

    @model_validator(mode="after")
    def _one_password(self) -> MqttSection:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        return self

    def resolved_password(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return self.password


class QueueSection(_Strict):
    max_readings: int = Field(default=200_000, ge=1, description="Bound of the local queue; "
                              "when full the oldest readings are dropped and counted")
    batch_max: int = Field(default=100, ge=1, le=1000, description="Readings per MQTT message "
                           "when a backlog drains (JSON array; ingest takes up to 1000)")
    max_inflight: int = Field(default=10, ge=1, le=1000,
                              description="Messages sent and not yet acknowledged")


class HeartbeatSection(_Strict):
    interval_s: float = Field(default=60.0, gt=0, description="Seconds between status readings")
    battery_command: list[str] | None = Field(
        default=None, description="Command printing JSON with battery_v and/or battery_pct")
    wireless_interface: str = Field(default="wlan0", description="For rssi_dbm "
                                    "(/proc/net/wireless)")
    cpu_temp_file: Path = Field(default=Path("/sys/class/thermal/thermal_zone0/temp"))
    clock_synced_file: Path = Field(default=Path("/run/systemd/timesync/synchronized"),
                                    description="Exists once systemd-timesyncd has synced")


class AgentConfig(_Strict):
    agent: AgentSection
    mqtt: MqttSection = Field(default_factory=MqttSection)
    queue: QueueSection = Field(default_factory=QueueSection)
    heartbeat: HeartbeatSection = Field(default_factory=HeartbeatSection)
    sensor: list[SensorConfigs] = Field(default_factory=list,
                                        description="One [[sensor]] table per sensor")

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"kota-agent-{self.agent.id}"

    @property
    def queue_path(self) -> Path:
        return self.agent.state_dir / "queue.sqlite3"

    def device_id(self, sensor: Any) -> str:
        return sensor.device_id or f"{self.agent.id}-{kind_of(sensor)}"

    @property
    def status_device(self) -> str:
        return f"{self.agent.id}-status"

    def topic(self, kind: str, device_id: str) -> str:
        return f"kota/{self.agent.city}/{kind}/{device_id}"


_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\- ]+?)\s*\]\s*(#.*)?$")
_ARRAY = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.\- ]+?)\s*\]\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map table and key paths (``("sensor", "1", "port")``) to 1-based lines. Plain TOML only
    (no dotted keys, no multi-line values): enough to point at the usual mistake."""
    lines: dict[tuple[str, ...], int] = {}
    counts: dict[tuple[str, ...], int] = {}
    current: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        if match := _ARRAY.match(line):
            base = tuple(p.strip() for p in match.group(1).split("."))
            index = counts.get(base, 0)
            counts[base] = index + 1
            current = (*base, str(index))
            lines.setdefault(current, number)
            lines.setdefault(base, number)
        elif match := _TABLE.match(line):
            current = tuple(p.strip() for p in match.group(1).split("."))
            lines.setdefault(current, number)
        elif match := _KEY.match(line):
            lines.setdefault((*current, match.group(1)), number)
    return lines


def _where(loc: tuple[Any, ...], lines: dict[tuple[str, ...], int]) -> tuple[str, int | None]:
    parts = [str(p) for p in loc]
    # A discriminated union puts the driver name after the list index: sensor.1.sds011.port
    if len(parts) >= 3 and parts[1].isdigit() and parts[0] == "sensor":
        parts = parts[:2] + parts[3:] if len(parts) > 3 else parts
    dotted = ""
    for part in parts:
        dotted += f"[{part}]" if part.isdigit() else (f".{part}" if dotted else part)
    for end in range(len(parts), 0, -1):
        line = lines.get(tuple(parts[:end]))
        if line is not None:
            return dotted, line
    return dotted, None


def parse_config(text: str, source: str = "<config>") -> AgentConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        lines = _key_lines(text)
        messages = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            dotted, line = _where(loc, lines)
            where = f"{source}:{line}" if line else source
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                message = "unknown key (check the spelling; see the driver's README)"
            messages.append(f"{dotted or '(top level)'} ({where}): {message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(messages)) from None


def load_config(path: str | Path) -> AgentConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return parse_config(text, str(path))
