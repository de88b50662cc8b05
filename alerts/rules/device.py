"""Device-health rules for field teams: a device that went away (its Last Will, ``online:
false``, or silence), a low battery, an unsynchronised clock. One alert per device."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field

from alerts.model import Area
from alerts.rules._contract import Finding, Reading, RuleContext, RuleKind, RuleSettings

__all__ = ["BatteryRule", "BatterySettings", "ClockRule", "ClockSettings", "OfflineRule",
           "OfflineSettings"]

# The figures every device rule fills; each kind adds its own (a figure a kind does not fill
# would pass the rules loader and print "?" in the message).
_MESSAGE_FIELDS = frozenset({"device", "name", "district", "kind"})


def _area(reading_or_device: Any) -> tuple[Area, dict[str, Any]]:
    device = reading_or_device
    return (Area(description=f"{device.name or device.device_id}, {device.district}",
                 districts=(device.district,), circle_km=(device.lat, device.lon, 0.1)),
            {"device": device.device_id, "name": device.name or device.device_id,
             "district": device.district, "kind": device.kind})


class OfflineSettings(RuleSettings):
    silent_s: float = Field(default=900, gt=0,
                            description="No message for this long: the device is offline")
    kinds: list[str] | None = Field(default=None,
                                    description="Only devices of these kinds; all if unset")


class OfflineRule(RuleKind[OfflineSettings]):
    kind = "device_offline"
    settings_model = OfflineSettings
    hazard = "device"
    default_audience = "field"
    reading_kinds: ClassVar[frozenset[str]] = frozenset({"*"})
    detail_fields = _MESSAGE_FIELDS | {"silent_min"}
    default_messages: ClassVar[dict[str, dict[str, str]]] = {
        "id-ID": {"headline": "Perangkat {name} ({district}) tidak mengirim data",
                  "description": "{device} ({kind}) tidak mengirim data selama {silent_min} "
                                 "menit.",
                  "instruction": "Periksa daya, jaringan dan sensor di lokasi."},
        "en-US": {"headline": "Device {name} ({district}) is offline",
                  "description": "{device} ({kind}) has sent nothing for {silent_min} min.",
                  "instruction": "Check power, network and the sensor on site."},
    }

    def __init__(self, settings: OfflineSettings, context: RuleContext) -> None:
        super().__init__(settings, context)
        # Every registered device counts as heard at start: one that stays silent through a
        # restart is still reported after silent_s.
        started = datetime.now(UTC)
        self.last_seen: dict[str, datetime] = {
            device.device_id: started for device in context.registry
            if self._watched(device.kind)}
        self.went_away: set[str] = set()
        # Devices this rule reported offline: only they need an "online again" finding, so the
        # stream's every reading costs a dict update, not a finding.
        self.alerting: set[str] = set()
        self.city: dict[str, str] = {device.device_id: device.city
                                     for device in context.registry}

    def _watched(self, kind: str) -> bool:
        return self.settings.kinds is None or kind in self.settings.kinds

    def heard(self, city: str, kind: str, device_id: str, at: datetime) -> Sequence[Finding]:
        device = self.context.registry.get(device_id)
        if device is None or not self._watched(kind):
            return ()
        self.city[device_id] = city
        self.went_away.discard(device_id)
        self.last_seen[device_id] = at
        if device_id not in self.alerting:
            return ()
        self.alerting.discard(device_id)
        area, details = _area(device)
        return [Finding(scope=device_id, at=at, grade=0, level="online", severity="Minor",
                        urgency="Past", certainty="Observed", city=city, area=area,
                        details={**details, "silent_min": 0})]

    def on_reading(self, reading: Reading) -> Sequence[Finding]:
        if reading.device is None or not self._watched(reading.kind):
            return ()
        self.city[reading.device_id] = reading.city
        if reading.fields.get("online") is False:   # the Last Will
            self.went_away.add(reading.device_id)
            self.alerting.add(reading.device_id)
            area, details = _area(reading.device)
            return [Finding(scope=reading.device_id, at=reading.received_at, grade=1,
                            level="offline", severity="Minor", urgency="Expected",
                            certainty="Observed", city=reading.city, area=area,
                            details={**details, "silent_min": 0})]
        return self.heard(reading.city, reading.kind, reading.device_id, reading.received_at)

    def restore(self, scope: str, grade: int) -> None:
        self.alerting.add(scope)

    def on_tick(self, now: datetime) -> Sequence[Finding]:
        limit = timedelta(seconds=self.settings.silent_s)
        findings = []
        for device_id, seen in self.last_seen.items():
            device = self.context.registry.get(device_id)
            if device is None or now - seen < limit:
                continue
            area, details = _area(device)
            self.alerting.add(device_id)
            findings.append(Finding(
                scope=device_id, at=now, grade=1, level="offline", severity="Minor",
                urgency="Expected", certainty="Observed", city=self.city[device_id],
                area=area,
                details={**details, "silent_min": int((now - seen).total_seconds() // 60)}))
        return findings


class BatterySettings(RuleSettings):
    below_pct: float = Field(default=20, gt=0, le=100,
                             description="battery_pct below this is an alert")
    below_v: float | None = Field(default=None, gt=0,
                                  description="battery_v below this is an alert (per hardware)")


class BatteryRule(RuleKind[BatterySettings]):
    kind = "battery"
    settings_model = BatterySettings
    hazard = "device"
    default_audience = "field"
    reading_kinds: ClassVar[frozenset[str]] = frozenset({"status"})
    detail_fields = _MESSAGE_FIELDS | {"battery"}
    default_messages: ClassVar[dict[str, dict[str, str]]] = {
        "id-ID": {"headline": "Baterai {name} ({district}) lemah: {battery}",
                  "description": "Baterai perangkat {device} tinggal {battery}.",
                  "instruction": "Ganti atau isi baterai sebelum perangkat mati."},
        "en-US": {"headline": "Low battery at {name} ({district}): {battery}",
                  "description": "Device {device}'s battery is down to {battery}.",
                  "instruction": "Replace or charge the battery before the device stops."},
    }

    def on_reading(self, reading: Reading) -> Sequence[Finding]:
        if reading.device is None:
            return ()
        percent, volts = reading.fields.get("battery_pct"), reading.fields.get("battery_v")
        if isinstance(percent, (int, float)):
            low, shown = percent < self.settings.below_pct, f"{percent:.0f} %"
        elif isinstance(volts, (int, float)) and self.settings.below_v is not None:
            low, shown = volts < self.settings.below_v, f"{volts:.2f} V"
        else:
            return ()
        area, details = _area(reading.device)
        return [Finding(scope=reading.device_id, at=reading.at, grade=int(low),
                        level="battery low" if low else "battery ok", severity="Minor",
                        urgency="Expected", certainty="Observed", city=reading.city, area=area,
                        details={**details, "battery": shown})]


class ClockSettings(RuleSettings):
    max_skew_s: float = Field(default=120, gt=0,
                              description="A device clock further off than this is an alert")


class ClockRule(RuleKind[ClockSettings]):
    kind = "clock"
    settings_model = ClockSettings
    hazard = "device"
    default_audience = "field"
    reading_kinds: ClassVar[frozenset[str]] = frozenset({"status"})
    detail_fields = _MESSAGE_FIELDS | {"skew_s"}
    default_messages: ClassVar[dict[str, dict[str, str]]] = {
        "id-ID": {"headline": "Jam perangkat {name} ({district}) tidak sinkron",
                  "description": "Jam {device} selisih {skew_s} detik atau tidak tersinkron "
                                 "NTP; waktu bacaannya tidak dapat dipercaya.",
                  "instruction": "Periksa NTP dan koneksi jaringan perangkat."},
        "en-US": {"headline": "Clock of {name} ({district}) is not synchronised",
                  "description": "{device}'s clock is {skew_s} s off or not NTP-synchronised; "
                                 "its reading times cannot be trusted.",
                  "instruction": "Check NTP and the device's network."},
    }

    def on_reading(self, reading: Reading) -> Sequence[Finding]:
        if reading.device is None:
            return ()
        if reading.device_at is None:
            return ()
        skew_s = abs((reading.received_at - reading.device_at).total_seconds())
        unsynced = reading.fields.get("clock_synced") is False or skew_s > self.settings.max_skew_s
        area, details = _area(reading.device)
        return [Finding(scope=reading.device_id, at=reading.received_at, grade=int(unsynced),
                        level="clock unsynced" if unsynced else "clock ok", severity="Minor",
                        urgency="Expected", certainty="Observed", city=reading.city, area=area,
                        details={**details, "skew_s": round(skew_s)})]
