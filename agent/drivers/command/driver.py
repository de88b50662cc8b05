"""Anything else: run a command, read one JSON object (or an array of them) from its stdout.

The command runs without a shell, with a timeout and a bound on its output (``max_output_bytes``:
past it the command is killed, so a runaway command cannot fill the agent's memory; 300 MB of
output once made the agent 605 MB); a non-zero exit, a timeout, too much output or output that
is not JSON is a failed read (logged, nothing queued). Keys must be fields of the configured kind
(the runner flags any other key); ``ts`` in the output, if present, is the reading's time
(epoch seconds), otherwise the time of the read.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
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
    max_output_bytes: int = Field(default=1 << 20, ge=1, le=64 << 20,
                                  description="Most stdout read; more kills the command and "
                                              "fails the read")
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
            returncode, stdout, stderr = _run_bounded(
                self.config.command, self.config.timeout_s, self.config.max_output_bytes)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SensorError(f"{self.config.command[0]}: {exc}") from None
        if returncode != 0:
            raise SensorError(f"{self.config.command[0]} exited with {returncode}: "
                              f"{stderr.decode(errors='replace').strip()[:200]}")
        try:
            data = json.loads(stdout)
        except ValueError:
            raise SensorError(f"{self.config.command[0]} printed no JSON: "
                              f"{stdout[:100]!r}") from None
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


_STDERR_KEPT = 4096  # bytes of stderr kept for the error message; the rest is read and dropped


def _run_bounded(command: list[str], timeout_s: float,
                 max_output: int) -> tuple[int, bytes, bytes]:
    """Run ``command``; (exit status, stdout, start of stderr). Kills it past ``timeout_s``
    (subprocess.TimeoutExpired) or past ``max_output`` bytes of stdout (SensorError)."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    deadline = time.monotonic() + timeout_s
    stdout, stderr = bytearray(), bytearray()
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, stdout)
            selector.register(process.stderr, selectors.EVENT_READ, stderr)
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise subprocess.TimeoutExpired(command, timeout_s)
                for key, _ in selector.select(remaining):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    elif key.data is stdout:
                        if len(stdout) + len(chunk) > max_output:
                            raise SensorError(f"{command[0]} printed more than {max_output} "
                                              f"bytes (max_output_bytes): killed")
                        stdout += chunk
                    else:
                        stderr += chunk[:max(0, _STDERR_KEPT - len(stderr))]
        returncode = process.wait(max(0.0, deadline - time.monotonic()))
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        process.stdout.close()
        process.stderr.close()
    return returncode, bytes(stdout), bytes(stderr)
