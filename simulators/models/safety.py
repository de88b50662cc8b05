"""Public-safety events: a Poisson process per device, shaped by hour of day, with bursts
(follow-up reports of the same incident) and scenario bursts (e.g. flood reports in a flood).

Every event but a self-test opens an incident with an ``incident_id`` (its follow-ups carry the
same id); most incidents are closed later by a ``resolved`` event with that id, sent by the same
device (standing in for the operator's tool) after a delay that depends on the category.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from simulators.models.common import SECONDS_PER_DAY, SECONDS_PER_HOUR, local_hour, uniform
from simulators.profile import SafetyDeviceProfile, SafetyProfile
from simulators.scenario import SafetyBurstEvent

__all__ = ["RESOLUTION", "IncidentEvent", "SafetyDevice", "SafetyModel", "device_profile_name"]

# Share of incidents that get a `resolved` event, and its delay in minutes after the incident's
# last report, by category (plausible handling times; the rest stay open and turn stale).
RESOLUTION: dict[str, tuple[float, tuple[float, float]]] = {
    "panic": (0.9, (10, 90)),
    "fight": (0.9, (15, 120)),
    "fire": (0.9, (30, 240)),
    "smoke": (0.9, (10, 60)),
    "crowd": (0.9, (30, 180)),
    "accident": (0.85, (30, 180)),
    "theft": (0.8, (60, 480)),
    "vandalism": (0.7, (120, 1440)),
    "streetlight_out": (0.6, (240, 2880)),
    "flood_report": (0.8, (60, 720)),
}
_DEFAULT_RESOLUTION = (0.8, (30, 240))
_NO_INCIDENT = frozenset({"test", "resolved"})

# Short reporter texts by event category (what a panic-button app or an operator would attach).
_MESSAGES: dict[str, tuple[str, ...]] = {
    "panic": ("Tombol darurat ditekan", "Butuh bantuan segera"),
    "flood_report": ("Air masuk rumah warga", "Genangan setinggi lutut",
                     "Jalan tidak bisa dilalui"),
    "fire": ("Api terlihat dari atap", "Kebakaran di kios"),
    "theft": ("Laporan pencurian",),
}


def device_profile_name(device_id: str, profiles: dict[str, SafetyDeviceProfile]) -> str:
    """The safety profile a device id names (panic-*, smoke-*, crowd-*, cctv-*), else other."""
    for part in device_id.lower().split("-"):
        if part in profiles:
            return part
    return "other"


class IncidentEvent(str):
    """An event category that also names its incident (``incident_id``, "" for none): the
    generator passes the category back to ``payload`` as it got it from ``next_event``."""

    incident_id: str

    def __new__(cls, event: str, incident_id: str = "") -> IncidentEvent:
        made = super().__new__(cls, event)
        made.incident_id = incident_id
        return made


@dataclass(slots=True)
class SafetyDevice:
    profile: SafetyDeviceProfile
    profile_name: str
    bursts: list[tuple[float, SafetyBurstEvent]]  # scenario bursts with this device's share
    # follow-ups and resolutions, (time, event) sorted by time
    pending: list[tuple[float, str]] = field(default_factory=list)
    last_s: float = 0.0
    device_id: str = ""
    incidents: int = 0  # incidents opened so far, for the next incident_id


class SafetyModel:
    def __init__(self, profile: SafetyProfile, utc_offset_h: float, start_s: float) -> None:
        self.profile = profile
        self.utc_offset_h = utc_offset_h
        self.start_s = start_s

    def device(self, device_id: str, bursts: list[tuple[float, SafetyBurstEvent]]) -> SafetyDevice:
        name = device_profile_name(device_id, self.profile.profiles)
        profile = self.profile.profiles.get(name) or next(iter(self.profile.profiles.values()))
        return SafetyDevice(profile, name, bursts, last_s=self.start_s, device_id=device_id)

    def hour_factor(self, time_s: float) -> float:
        hour = local_hour(time_s, self.utc_offset_h)
        if hour < self.profile.night_end_hour_local:
            return self.profile.hour_factor_night
        evening_from, evening_to = self.profile.evening_hours_local
        if evening_from <= hour < evening_to:
            return self.profile.hour_factor_evening
        return self.profile.hour_factor_day

    def _burst_rates(self, device: SafetyDevice, time_s: float) -> list[tuple[float, str]]:
        hours = (time_s - self.start_s) / SECONDS_PER_HOUR
        return [(share * event.rate_per_h / SECONDS_PER_HOUR, event.event)
                for share, event in device.bursts if event.active(hours)]

    def next_event(self, device: SafetyDevice, rng: random.Random,
                   until_s: float) -> tuple[float, str] | None:
        """The device's next (time, event category) after its last one, or None before until_s.

        New incidents keep arriving while earlier ones wait for follow-ups or resolution; the
        category returned is an ``IncidentEvent`` carrying its incident's id."""
        pending_s = device.pending[0][0] if device.pending else until_s
        found = self._draw(device, rng, min(until_s, pending_s))
        if found is not None:
            return found
        if device.pending and device.pending[0][0] < until_s:
            time_s, event = device.pending.pop(0)
            device.last_s = time_s
            return time_s, event
        return None

    def _draw(self, device: SafetyDevice, rng: random.Random,
              until_s: float) -> tuple[float, str] | None:
        """A new incident's first event before until_s (a Poisson process, so restarting the
        draw at until_s, as a pending event does, changes nothing about its rate)."""
        base_per_s = device.profile.rate_per_day / SECONDS_PER_DAY
        burst_max = sum(share * event.rate_per_h for share, event in device.bursts)
        factor_max = max(self.profile.hour_factor_night, self.profile.hour_factor_day,
                         self.profile.hour_factor_evening)
        rate_max = base_per_s * factor_max + burst_max / SECONDS_PER_HOUR
        if rate_max <= 0:
            return None
        time_s = device.last_s
        for _ in range(1_000_000):  # thinning; bounded by until_s
            time_s += rng.expovariate(rate_max)
            if time_s >= until_s:
                device.last_s = until_s
                return None
            base = base_per_s * self.hour_factor(time_s)
            bursts = self._burst_rates(device, time_s)
            draw = rng.random() * rate_max
            if draw < base:
                event = self._category(device.profile, rng)
            else:
                draw -= base
                event = ""
                for rate, burst_event in bursts:
                    if draw < rate:
                        event = burst_event
                        break
                    draw -= rate
                if not event:
                    continue
            device.last_s = time_s
            if event in _NO_INCIDENT:
                return time_s, event
            device.incidents += 1
            incident = IncidentEvent(event, _incident_id(device.device_id, device.incidents))
            last_s = time_s
            if rng.random() < self.profile.burst_probability:
                for _ in range(round(uniform(rng, self.profile.burst_size))):
                    last_s += uniform(rng, self.profile.burst_gap_min) * 60.0
                    device.pending.append((last_s, incident))
            share, delay_min = RESOLUTION.get(event, _DEFAULT_RESOLUTION)
            if rng.random() < share:
                resolved_s = last_s + uniform(rng, delay_min) * 60.0
                device.pending.append((resolved_s, IncidentEvent("resolved", incident.incident_id)))
            device.pending.sort(key=lambda item: item[0])
            return time_s, incident
        return None

    @staticmethod
    def _category(profile: SafetyDeviceProfile, rng: random.Random) -> str:
        names = list(profile.events)
        return rng.choices(names, weights=[profile.events[n] for n in names])[0]

    @staticmethod
    def payload(event: str, profile_name: str, rng: random.Random) -> dict[str, object]:
        fields: dict[str, object] = {"event": str(event)}
        incident_id = getattr(event, "incident_id", "")
        if incident_id:
            fields["incident_id"] = incident_id
        if event == "resolved":
            return fields
        if event == "crowd":
            fields["count"] = float(round(rng.lognormvariate(6.0, 0.8)))
            fields["density"] = round(rng.uniform(1.0, 5.5), 2)
        else:
            fields["count"] = 1.0
        if profile_name in ("cctv", "crowd", "smoke"):
            fields["confidence"] = round(rng.uniform(0.55, 0.99), 2)
        messages = _MESSAGES.get(event)
        if messages:
            fields["message"] = rng.choice(messages)
        return fields


def _incident_id(device_id: str, number: int) -> str:
    """Unique per device and deterministic; at most 64 characters (the kind's limit)."""
    suffix = f"-inc-{number:06d}"
    return device_id[:64 - len(suffix)] + suffix
