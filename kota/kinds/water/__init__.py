"""The ``water`` kind: see kind.yaml beside this file for its fields, units and ranges.

An ultrasonic gauge may send the raw ``distance_cm``; with the device's ``mount_height_cm`` from
the registry, the level against the gauge datum is ``mount_height_cm - distance_cm``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kota.kinds._spec import KindSpec

SPEC = KindSpec.load(Path(__file__).parent)


def derive(fields: dict[str, object], params: Mapping[str, object]) -> None:
    """Fill in ``level_cm`` from ``distance_cm`` when the registry knows the mount height."""
    if "level_cm" in fields or "distance_cm" not in fields:
        return
    mount_height_cm = params.get("mount_height_cm")
    if isinstance(mount_height_cm, int | float):
        distance_cm = fields["distance_cm"]
        assert isinstance(distance_cm, float)
        fields["level_cm"] = float(mount_height_cm) - distance_cm
