"""Anything else: run a command, read one JSON object (or an array of them) from its stdout.

The command runs without a shell, with a timeout; a non-zero exit, a timeout or output that is
not JSON is a failed read (logged, nothing queued). Keys must be fields of the configured kind
(the runner flags any other key); ``ts`` in the output, if present, is the reading's time
(epoch seconds), otherwise the time of the read.
"""

from __future__ import annotations

import json
import subprocess
from typing import ClassVar, Literal

from pydantic import Field

from agent.drivers.base import FieldValue, Limits, Reading, SensorConfig, SensorError

__all__ = ["CommandDriver", "Config"]


class Config(SensorConfig):
    driver: Literal["command"]
    kind: Literal["air", "water", "rain", "noise", "safety"] = Field(
        description="Platform kind of the values the command prints")
    command: list[str] = Field(min_length=1, description="Program and arguments (no shell)")
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    limits: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="Physical range per field, e.g. {co = [0, 1000]}")


class CommandDriver:
    limits: Limits

    kinds: ClassVar[tuple[str, ...]] = ("air", "water", "rain", "noise", "safety")

    @staticmethod
    def published_fields(config: Config) -> set[str]:
        """The fields named in ``limits``: the command's output is not known before it runs."""
        return set(config.limits)

    def __init__(self, config: Config) -> None:
        self.config = config
        self.kind = config.kind
        self.limits = dict(config.limits)

    def open(self) -> None:
        pass

    def read(self) -> list[Reading]:
        try:
            done = subprocess.run(self.config.command, capture_output=True,
                                  timeout=self.config.timeout_s, check=False,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SensorError(f"{self.config.command[0]}: {exc}") from None
        if done.returncode != 0:
            raise SensorError(f"{self.config.command[0]} exited with {done.returncode}: "
                              f"{done.stderr.decode(errors='replace').strip()[:200]}")
        try:
            data = json.loads(done.stdout)
        except ValueError:
            raise SensorError(f"{self.config.command[0]} printed no JSON: "
                              f"{done.stdout[:100]!r}") from None
        items = data if isinstance(data, list) else [data]
        readings = []
        for item in items:
            if not isinstance(item, dict):
                raise SensorError("expected a JSON object or an array of objects")
            ts = item.pop("ts", None)
            fields: dict[str, FieldValue] = {}
            for key, value in item.items():
                if value is None:
                    continue
                if not isinstance(value, int | float | str | bool):
                    raise SensorError(f"{key}: not a number, text or boolean")
                fields[key] = float(value) if isinstance(value, int) and not isinstance(
                    value, bool) else value
            readings.append(Reading(self.kind, fields,
                                    ts=float(ts) if isinstance(ts, int | float) else None))
        return readings

    def close(self) -> None:
        pass
