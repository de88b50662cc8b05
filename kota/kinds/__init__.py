"""Sensor kinds, one folder each (``kind.yaml``, ``README.md``, ``sample.json``, ``testcases/``).

To add a kind, copy a sibling folder, edit its ``kind.yaml`` and add one line to ``KINDS`` below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kota.kinds import air, noise, rain, safety, status, water
from kota.kinds._spec import FieldSpec, KindSpec, TagFieldSpec

__all__ = ["KINDS", "KINDS_DIR", "FieldSpec", "Kind", "KindSpec", "TagFieldSpec"]

KINDS_DIR = Path(__file__).parent

Derive = Callable[[dict[str, object], Mapping[str, object]], None]


@dataclass(frozen=True)
class Kind:
    spec: KindSpec
    derive: Derive | None = None

    @property
    def name(self) -> str:
        return self.spec.name


KINDS: dict[str, Kind] = {
    "air": Kind(air.SPEC),
    "water": Kind(water.SPEC, water.derive),
    "rain": Kind(rain.SPEC),
    "noise": Kind(noise.SPEC),
    "safety": Kind(safety.SPEC),
    "status": Kind(status.SPEC),
}
