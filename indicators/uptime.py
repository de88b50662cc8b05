"""Device uptime share from status heartbeats. Pure functions; the step at the
end (registered in indicators.steps) queries for them.

A device is up in a slot of ``slot_s`` seconds when it sent at least one heartbeat there that did
not say ``online=false`` (a Last Will). A heartbeat from ``<id>-status`` stands for device
``<id>``, whose registry kind is the ``kind`` tag; registered devices never heard count 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from indicators import queries as q
from indicators import steps
from indicators.context import Context
from indicators.outputs import output
from indicators.points import Point
from indicators.queries import DeviceKey, Sample
from indicators.windows import Window

__all__ = ["Uptime", "device_shares", "uptime_points"]

DEVICE_UPTIME = output("device_uptime").measurement
# Any of these makes a heartbeat row (a Last Will carries only online=false).
HEARTBEAT_FIELDS = ["online", "uptime_s", "battery_pct", "battery_v", "rssi_dbm", "cpu_temp_c",
                    "queue_depth", "clock_synced"]


def device_shares(window: Window, heartbeats: Mapping[DeviceKey, list[Sample]],
                  slot_s: int) -> dict[DeviceKey, tuple[int, int]]:
    """(slots up, slots in the window) per heartbeat device."""
    slot_ms = slot_s * 1000
    total = max(1, -(-(window.end_ms - window.start_ms) // slot_ms))
    shares = {}
    for key, rows in heartbeats.items():
        slots = {(t - window.start_ms) // slot_ms for t, values in rows
                 if window.start_ms <= t < window.end_ms and values.get("online") is not False}
        shares[key] = (len(slots), total)
    return shares


@dataclass
class Uptime:
    points: list[Point]
    # mean share over each (city, district)'s registered devices
    district_share: dict[tuple[str, str], float]
    heard: set[tuple[str, str, str]]  # (city, district, measured kind) with any device heard


def uptime_points(window: Window, heartbeats: Mapping[DeviceKey, list[Sample]],
                  context: Context, slot_s: int, city: str | None) -> Uptime:
    """Points per device, per district and kind, per city and kind; and, for city_indicators,
    each district's mean share and which kinds were heard in which district."""
    shares = device_shares(window, heartbeats, slot_s)
    total = max(1, -(-(window.end_ms - window.start_ms) // (slot_s * 1000)))
    # Every registered heartbeat device, heard or not.
    per_device: dict[DeviceKey, tuple[int, int]] = {}
    for device in context.registered("status", city):
        per_device[DeviceKey(device.city, device.district, device.device_id)] = (0, total)
    per_device.update(shares)
    points = []
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    district_all: dict[tuple[str, str], list[float]] = defaultdict(list)
    heard: set[tuple[str, str, str]] = set()
    for key, (up, slots) in sorted(per_device.items()):
        kind = context.measured_kind(key.device)
        share = up / slots
        if up:
            heard.add((key.city, key.district, kind))
        point = Point(DEVICE_UPTIME, {"window": window.name, "scope": "device",
                                        "city": key.city, "district": key.district,
                                        "device": key.device, "kind": kind}, window.start_ms)
        point.put("uptime_share", share)
        point.put("slots_up", float(up))
        point.put("slots_total", float(slots))
        points.append(point)
        groups[(key.city, key.district, kind)].append(share)
        groups[(key.city, "", kind)].append(share)
        district_all[(key.city, key.district)].append(share)
    for (city_name, district, kind), values in sorted(groups.items()):
        tags = {"window": window.name, "scope": "district" if district else "city",
                "city": city_name, "kind": kind}
        if district:
            tags["district"] = district
        point = Point(DEVICE_UPTIME, tags, window.start_ms)
        point.put("uptime_share", sum(values) / len(values))
        point.put("devices", float(len(values)))
        points.append(point)
    means = {group: sum(v) / len(v) for group, v in district_all.items()}
    return Uptime(points, means, heard)


async def _span_step(span: steps.Span) -> list[Point]:
    window = span.window
    heartbeats = q.rows_by_device(await span.query(
        q.raw_query("status", HEARTBEAT_FIELDS, window.start_ms, window.end_ms, span.city)))
    span.uptime = uptime_points(window, heartbeats, span.context, span.settings.uptime.slot_s,
                                span.city)
    return span.uptime.points


steps.add("uptime", ("1h", "1d"), 60, _span_step)
