"""The status reading: how the device itself is doing (kind ``status``, docs/protocol.md).

Every value is read from the system where the Pi keeps it; one that cannot be read is left
out (the contract treats a missing field as "not read this time").
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from agent import __version__
from agent.config import HeartbeatSection

__all__ = ["collect", "cpu_temp_c", "rssi_dbm"]

_STARTED = time.monotonic()


def cpu_temp_c(path: Path) -> float | None:
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def rssi_dbm(interface: str, proc_file: Path = Path("/proc/net/wireless")) -> float | None:
    """Signal level of ``interface`` from /proc/net/wireless (``wlan0: 0000 54. -56. …``)."""
    try:
        lines = proc_file.read_text().splitlines()
    except OSError:
        return None
    for line in lines[2:]:
        name, _, rest = line.partition(":")
        if name.strip() == interface:
            parts = rest.split()
            try:
                return float(parts[2].rstrip("."))
            except (IndexError, ValueError):
                return None
    return None


def uptime_s(proc_file: Path = Path("/proc/uptime")) -> float:
    try:
        return round(float(proc_file.read_text().split()[0]), 0)
    except (OSError, ValueError, IndexError):
        return round(time.monotonic() - _STARTED, 0)


def battery(command: list[str] | None) -> dict[str, float]:
    if not command:
        return {}
    try:
        done = subprocess.run(command, capture_output=True, timeout=10, check=False,
                              stdin=subprocess.DEVNULL)
        data = json.loads(done.stdout) if done.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}
    return {key: float(data[key]) for key in ("battery_v", "battery_pct")
            if isinstance(data, dict) and isinstance(data.get(key), int | float)}


def collect(config: HeartbeatSection, queue_depth: int, dropped: int
            ) -> dict[str, float | bool | str]:
    fields: dict[str, float | bool | str] = {
        "online": True,
        "queue_depth": float(queue_depth),
        "dropped": float(dropped),
        "uptime_s": uptime_s(),
        "clock_synced": config.clock_synced_file.exists(),
        "firmware": f"kota-agent {__version__}",
    }
    fields.update(battery(config.battery_command))
    if (temp := cpu_temp_c(config.cpu_temp_file)) is not None:
        fields["cpu_temp_c"] = temp
    if (rssi := rssi_dbm(config.wireless_interface)) is not None:
        fields["rssi_dbm"] = rssi
    return fields
