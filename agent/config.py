"""The agent's one TOML file, validated at start.

Every table refuses keys it does not know (``extra="forbid"``), and each problem is one line
that starts with the file and line and names the setting (``agent.toml:23: sensor 2 (sds011):
port: Field required``; ``agent.toml:9: unknown setting mqtt.prot (did you mean 'port'?)``), so
a typo is found before the agent touches a sensor or the network. Sensors are numbered from 1,
in the order of their ``[[sensor]]`` tables. :func:`problems` then checks what the schema
cannot: files that must exist (password, CA, client certificate), two sensors writing the same
field of the same device, a file without sensors. ``kota-agent sample-config`` prints a complete
commented file; each driver's own keys are in its folder's README and sample.conf.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from agent.drivers import DRIVERS, SensorConfigs, kind_of, published_fields

__all__ = ["AgentConfig", "ConfigError", "Problem", "load_config", "parse_config", "problems",
           "sensor_label"]

DEFAULT_CONFIG = Path("/etc/kota-agent/agent.toml")


class ConfigError(ValueError):
    """The config file is missing, not TOML, or breaks the schema: ``problems`` holds one line
    per mistake, each starting with ``file:line:`` where the line is known."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


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
            if self.password_file.stat().st_mode & stat.S_IROTH:
                raise ValueError(f"mqtt.password_file: {self.password_file} is readable by "
                                 f"every user: refused (chmod 0640, group kota-agent)")
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
    _source: str = PrivateAttr(default="<config>")
    _lines: dict[tuple[str, ...], int] = PrivateAttr(default_factory=dict)

    def where(self, *path: str | int) -> str:
        """``file:line`` of a key (``where("mqtt", "password_file")``), or of the nearest
        enclosing table; just the file when no line is known."""
        parts = tuple(str(p) for p in path)
        for end in range(len(parts), 0, -1):
            line = self._lines.get(parts[:end])
            if line is not None:
                return f"{self._source}:{line}"
        return self._source

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


def sensor_label(index: int, sensor: Any) -> str:
    """How messages name a sensor: by its place among the [[sensor]] tables, counted from 1,
    its driver and its name if it has one: ``sensor 2 (sds011)``, ``sensor 3 "roof" (bme280)``."""
    name = getattr(sensor, "name", None) if not isinstance(sensor, dict) else sensor.get("name")
    driver = getattr(sensor, "driver", None) if not isinstance(sensor, dict) else sensor.get(
        "driver")
    named = f' "{name}"' if isinstance(name, str) and name else ""
    kind = f" ({driver})" if isinstance(driver, str) else ""
    return f"sensor {index + 1}{named}{kind}"


_SECTIONS: dict[tuple[str, ...], type[BaseModel]] = {
    (): AgentConfig, ("agent",): AgentSection, ("mqtt",): MqttSection,
    ("mqtt", "tls"): TlsSection, ("queue",): QueueSection, ("heartbeat",): HeartbeatSection,
}


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _describe_error(error: Any, data: dict[str, Any], lines: dict[tuple[str, ...], int],
                    source: str) -> str:
    """One line for one pydantic error: ``file:line: setting: what is wrong``."""
    loc = [str(p) for p in error["loc"]]
    kind = error["type"]
    message = error["msg"]
    if loc[:1] == ["sensor"] and len(loc) >= 2 and loc[1].isdigit():
        index = int(loc[1])
        tables = data.get("sensor")
        raw = tables[index] if isinstance(tables, list) and index < len(tables) else None
        raw = raw if isinstance(raw, dict) else {}
        rest = loc[3:] if len(loc) > 2 and loc[2] in DRIVERS else loc[2:]
        where = _line(lines, source, ("sensor", str(index), *rest))
        label = sensor_label(index, raw)
        driver = raw.get("driver")
        if kind == "extra_forbidden" and rest:
            hint = ""
            if isinstance(driver, str) and driver in DRIVERS:
                hint = _suggest(rest[-1], DRIVERS[driver].Config.model_fields)
                hint = (hint[:-1] + f" {driver}'s settings: agent/drivers/{driver}/README.md)"
                        if hint else f" ({driver}'s settings: agent/drivers/{driver}/README.md)")
            return f"{where}: {label}: unknown setting {'.'.join(rest)}{hint}"
        if kind == "union_tag_invalid":
            where = _line(lines, source, ("sensor", str(index), "driver"))
            return (f"{where}: {label}: unknown driver {driver!r}"
                    f"{_suggest(str(driver), DRIVERS)}; drivers: {', '.join(DRIVERS)}")
        if kind == "union_tag_not_found":
            return f"{where}: {label}: driver missing (one of: {', '.join(DRIVERS)})"
        setting = ".".join(rest)
        return f"{where}: {label}: {setting + ': ' if setting else ''}{message}{_got(error)}"
    where = _line(lines, source, tuple(loc))
    dotted = ".".join(loc)
    if kind == "extra_forbidden":
        parent = tuple(loc[:-1])
        model = _SECTIONS.get(parent)
        hint = _suggest(loc[-1], model.model_fields) if model is not None else ""
        if not parent:
            return f"{where}: unknown table [{loc[-1]}]{hint}"
        return f"{where}: unknown setting {dotted}{hint}"
    if loc == ["sensor"] and kind == "list_type":
        return f"{where}: sensor: write [[sensor]] (two brackets), one table per sensor"
    if kind == "missing" and len(loc) == 1:
        return f"{where}: table [{loc[0]}] missing ({_required(loc[0])})"
    return f"{where}: {dotted or '(top level)'}: {message}{_got(error)}"


def _got(error: Any) -> str:
    value = error.get("input")
    if error["type"] == "missing" or isinstance(value, dict | list) or value is None:
        return ""
    shown = repr(value)
    return f" (got {shown[:40] + '…' if len(shown) > 40 else shown})"


def _required(section: str) -> str:
    model = _SECTIONS.get((section,))
    if model is None:
        return "required"
    needed = [name for name, info in model.model_fields.items() if info.is_required()]
    return "it needs " + " and ".join(needed) if needed else "required"


def _line(lines: dict[tuple[str, ...], int], source: str, parts: tuple[str, ...]) -> str:
    for end in range(len(parts), 0, -1):
        line = lines.get(parts[:end])
        if line is not None:
            return f"{source}:{line}"
    return source


def _line_number(message: str) -> int:
    match = re.search(r":(\d+): ", message)
    return int(match.group(1)) if match else 0


_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def parse_config(text: str, source: str = "<config>") -> AgentConfig:
    """The validated config; :class:`ConfigError` (one line per problem) if it is not."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        reason = str(exc)
        match = _TOML_AT.search(reason)
        if match:
            reason = reason[:match.start()]
            where = f"{source}:{match.group(1)}:{match.group(2)}"
        else:
            where = source
        raise ConfigError([f"{where}: not valid TOML: {reason}"]) from None
    lines = _key_lines(text)
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(sorted((_describe_error(error, data, lines, source)
                                  for error in exc.errors()), key=_line_number)) from None
    config._source = source
    config._lines = lines
    return config


def load_config(path: str | Path) -> AgentConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file (`kota-agent sample-config > {path}` "
                           f"writes one to start from)"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise ConfigError([f"{path}:{line}: not a text file (not UTF-8: byte "
                           f"0x{exc.object[exc.start]:02x})"]) from None
    return parse_config(text, str(path))


@dataclass(frozen=True)
class Problem:
    """Something :func:`problems` found: an error stops validate and run, a warning does not."""

    where: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _readable(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, or None."""
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except FileNotFoundError:
        return "no such file"
    except IsADirectoryError:
        return "is a folder, not a file"
    except PermissionError:
        return f"permission denied (the agent runs as a user that must be able to read it; " \
               f"this is uid {os.getuid()})"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _file_problems(config: AgentConfig) -> list[Problem]:
    found: list[Problem] = []
    mqtt = config.mqtt
    secrets: list[tuple[tuple[str, ...], Path]] = []
    if mqtt.password_file is not None:
        secrets.append((("mqtt", "password_file"), mqtt.password_file))
    if mqtt.tls is not None:
        for key in ("ca_file", "cert_file", "key_file"):
            value = getattr(mqtt.tls, key)
            if value is not None:
                secrets.append((("mqtt", "tls", key), value))
    for path_keys, path in secrets:
        dotted = ".".join(path_keys)
        where = config.where(*path_keys)
        why = _readable(path)
        if why is not None:
            found.append(Problem(where, f"{dotted}: {path}: {why}"))
            continue
        if path_keys[-1] == "password_file" and not path.read_bytes().strip():
            found.append(Problem(where, f"{dotted}: {path} is empty"))
        if path_keys[-1] in ("password_file", "key_file"):
            mode = path.stat().st_mode
            if mode & stat.S_IROTH:
                # A password readable by every user is refused (issue 10); a key stays a warning.
                found.append(Problem(where, f"{dotted}: {path} is readable by every user "
                                            f"(chmod 0640, group kota-agent)",
                                     warning=path_keys[-1] != "password_file"))
    return found


def _plain_password_problems(config: AgentConfig) -> list[Problem]:
    """A password over plain MQTT crosses the network in clear text: a warning."""
    mqtt = config.mqtt
    if mqtt.tls is not None or (mqtt.password is None and mqtt.password_file is None):
        return []
    key = "password_file" if mqtt.password_file is not None else "password"
    return [Problem(config.where("mqtt", key),
                    f"mqtt.{key}: the password is sent in clear text over plain MQTT to "
                    f"{mqtt.host}:{mqtt.port}; add [mqtt.tls] and use port 8883",
                    warning=True)]


def _sensor_problems(config: AgentConfig, need_sensors: bool) -> list[Problem]:
    if not config.sensor:
        if not need_sensors:
            return [Problem(config.where("sensor"), "no [[sensor]] table: only heartbeats are "
                            "sent (and what the queue still holds)", warning=True)]
        return [Problem(config.where("sensor"),
                        "no [[sensor]] table: there is nothing to read (add one per sensor "
                        "you wired; `kota-agent sample-config` shows every driver's)")]
    found: list[Problem] = []
    owners: dict[tuple[str, str, str], int] = {}
    for index, sensor in enumerate(config.sensor):
        key = (kind_of(sensor), config.device_id(sensor))
        clashes: dict[int, list[str]] = {}
        for field in sorted(published_fields(sensor)):
            first = owners.setdefault((*key, field), index)
            if first != index:
                clashes.setdefault(first, []).append(field)
        for first, fields in clashes.items():
            found.append(Problem(
                config.where("sensor", str(index)),
                f"{sensor_label(first, config.sensor[first])} and {sensor_label(index, sensor)}"
                f" both publish {', '.join(fields)} of device {key[1]} ({key[0]}): one would "
                f"overwrite the other; give one of them its own device_id"))
    return found


def problems(config: AgentConfig, *, files: bool = True,
             need_sensors: bool = True) -> list[Problem]:
    """What the schema cannot see: no sensors (a warning only without ``need_sensors``: `run`
    still drains a queue and sends heartbeats), two sensors writing the same field of the same
    device, a password sent over plain MQTT (a warning) and, with ``files``, the password, CA
    and client-certificate files (each must exist and be readable; a password file readable by
    every user is an error, such a key a warning)."""
    found = (_sensor_problems(config, need_sensors) + _plain_password_problems(config)
             + (_file_problems(config) if files else []))
    return sorted(found, key=lambda problem: _line_number(f"{problem}: "))
