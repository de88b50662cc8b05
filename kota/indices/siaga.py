"""Water-level alert status (Siaga 4 → 1) per gauge, rate of rise and time to the next threshold.

Pure functions over :class:`kota.standards.GaugeThresholds` (``kota/standards/gauges.yaml``).
A gauge enters Siaga 3, 2 or 1 when its level reaches that threshold (BPBD DKI publishes bands
such as "250–299 cm", so a reading on the threshold has the higher status), or rises above it for
a threshold marked ``reached_at_equal: false``. A threshold that is unknown (null in the table) is
never guessed: the status is then the most severe *known* one reached, ``is_lower_bound`` says
the real status may be more severe, and ``unknown`` lists the missing thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from kota.standards import Confidence, GaugeTable, GaugeThresholds, load_gauges_table

__all__ = [
    "GaugeThresholds",
    "SiagaResult",
    "ThresholdUsed",
    "UnknownGaugeError",
    "find_gauge",
    "hours_to_next_threshold",
    "load_gauges",
    "rate_of_rise_cm_per_h",
    "siaga_status",
]

NORMAL_STATUS = 4


class UnknownGaugeError(LookupError):
    """A gauge id or name not in the table; ``known`` lists the ids."""

    def __init__(self, gauge: str, known: Sequence[str]) -> None:
        super().__init__(f"unknown gauge {gauge!r} (known: {', '.join(known)})")
        self.gauge = gauge
        self.known = list(known)


class ThresholdUsed(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: int
    status_name: str
    value_cm: float | None
    reached: bool | None
    source: str
    confidence: Confidence


class SiagaResult(BaseModel):
    """The status of a gauge at one level, with every threshold it was compared with."""

    model_config = ConfigDict(frozen=True)

    gauge_id: str
    gauge_name: str
    river: str
    level_cm: float
    status: int
    status_name: str
    status_name_confidence: Confidence
    is_lower_bound: bool
    thresholds: list[ThresholdUsed]
    unknown: list[str]


def load_gauges(path: str | Path | None = None) -> dict[str, GaugeThresholds]:
    """The gauges of ``gauges.yaml`` (or ``path``) by id."""
    return dict(load_gauges_table(path).gauges)


def _normalise(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def find_gauge(gauge: str, gauges: dict[str, GaugeThresholds] | None = None) -> GaugeThresholds:
    """A gauge by id (``manggarai``) or name (``Pintu Air Manggarai``), ignoring case,
    spaces, hyphens and underscores."""
    gauges = gauges if gauges is not None else load_gauges()
    wanted = _normalise(gauge)
    for gauge_id, spec in gauges.items():
        if wanted and wanted in (_normalise(gauge_id), _normalise(spec.name)):
            return spec
    raise UnknownGaugeError(gauge, list(gauges))


def _reached(level_cm: float, value_cm: float, at_equal: bool) -> bool:
    return level_cm >= value_cm if at_equal else level_cm > value_cm


def siaga_status(gauge: GaugeThresholds, level_cm: float,
                 table: GaugeTable | None = None) -> SiagaResult:
    """The Siaga status (4 Normal … 1 Awas) of ``gauge`` at ``level_cm`` (its own datum)."""
    if not math.isfinite(level_cm):
        raise ValueError(f"level must be a finite number of cm, got {level_cm}")
    names = (table or load_gauges_table()).status_names.names
    known_reached = {
        threshold_status: _reached(level_cm, threshold.value_cm, threshold.at_equal)
        for threshold_status, threshold in gauge.thresholds() if threshold.value_cm is not None}
    status = min((s for s, reached in known_reached.items() if reached), default=NORMAL_STATUS)
    used: list[ThresholdUsed] = []
    unknown: list[str] = []
    for threshold_status, threshold in gauge.thresholds():
        reached: bool | None
        if threshold_status >= status:
            # Thresholds rise with severity: every milder one is reached, known or not.
            reached = True
        elif threshold.value_cm is not None:
            reached = False
        else:
            # Unknown and more severe: not reached if a milder known threshold is not reached.
            milder_known_unreached = any(not known_reached[s] for s in known_reached
                                         if s > threshold_status)
            reached = False if milder_known_unreached else None
        if threshold.value_cm is None:
            unknown.append(f"siaga{threshold_status}")
        used.append(ThresholdUsed(status=threshold_status,
                                  status_name=names[threshold_status].name,
                                  value_cm=threshold.value_cm, reached=reached,
                                  source=threshold.source, confidence=threshold.confidence))
    is_lower_bound = any(t.reached is None for t in used)
    return SiagaResult(gauge_id=gauge.id, gauge_name=gauge.name, river=gauge.river,
                       level_cm=level_cm, status=status, status_name=names[status].name,
                       status_name_confidence=names[status].confidence,
                       is_lower_bound=is_lower_bound, thresholds=used, unknown=unknown)


def rate_of_rise_cm_per_h(samples: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of level over time, in cm/h, from ``(epoch_s, level_cm)`` samples.

    None with fewer than two samples or when all samples share one time. Negative when the
    water falls. The caller chooses the window (e.g. the last hour of readings).
    """
    if len(samples) < 2:
        return None
    times = [float(t) for t, _ in samples]
    levels = [float(level) for _, level in samples]
    # Centre the times first: epoch seconds squared lose precision in floating point.
    mean_t = math.fsum(times) / len(times)
    mean_level = math.fsum(levels) / len(levels)
    spread = math.fsum((t - mean_t) ** 2 for t in times)
    if spread == 0:
        return None
    covariance = math.fsum((t - mean_t) * (lv - mean_level) for t, lv in zip(times, levels,
                                                                            strict=True))
    return covariance / spread * 3600.0


def hours_to_next_threshold(gauge: GaugeThresholds, level_cm: float,
                            rise_cm_per_h: float | None) -> float | None:
    """Hours until the level crosses the next more severe threshold at the current rate.

    None when the water is not rising, when the next threshold is unknown, or when the gauge
    is already at Siaga 1. 0 when the level sits exactly on a threshold not yet reached.
    """
    if rise_cm_per_h is None or not rise_cm_per_h > 0 or not math.isfinite(level_cm):
        return None
    for _status, threshold in gauge.thresholds():
        if threshold.value_cm is None:
            return None
        if not _reached(level_cm, threshold.value_cm, threshold.at_equal):
            return max(0.0, (threshold.value_cm - level_cm) / rise_cm_per_h)
    return None
