"""The measurements, tags and fields that ingest and the indicator service write, so a test can
refuse a panel that reads a name nobody writes.

- Raw measurements: from each kind's ``kind.yaml`` (kota.kinds) plus the tags ingest adds
  (docs/protocol.md) and the fields it adds (``seq``, ``ts_from_receive``).
- ``kota_ingest``: ingest's own counters (``IngestCounters.fields()``); ``kota_deadletter``:
  the line ingest/service.py builds (docs/ingest.md).
- Indicator measurements: their specs, indicators/outputs/<measurement>.yaml (the same files
  docs/indicators.md's tables are generated from). The test that runs the real indicator
  service checks that what it writes is declared there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alerts.outputs import ALERT_OUTPUTS
from indicators.outputs import OUTPUTS, OutputSpec
from ingest.metrics import IngestCounters
from kota.kinds import KINDS
from kota.registry import POINT_TAGS

__all__ = ["MeasurementSchema", "alert_schema", "indicator_schema", "raw_schema",
           "written_schema"]

# Tags ingest puts on every raw point (docs/protocol.md, "Tags").
RAW_TAGS = POINT_TAGS
RAW_EXTRA_FIELDS = ("seq", "ts_from_receive")
DEADLETTER_TAGS = ("reason", "kind", "device", "instance")
DEADLETTER_FIELDS = ("count", "detail", "payload")


@dataclass
class MeasurementSchema:
    """Tag names (with their allowed values where the source lists them) and field names."""

    name: str
    source: str
    tags: dict[str, frozenset[str] | None] = field(default_factory=dict)
    fields: set[str] = field(default_factory=set)


def raw_schema() -> dict[str, MeasurementSchema]:
    result = {}
    for kind in KINDS.values():
        spec = kind.spec
        schema = MeasurementSchema(spec.measurement, f"kota/kinds/{spec.name}/kind.yaml")
        schema.tags = {tag: None for tag in RAW_TAGS}
        schema.tags["kind"] = frozenset({spec.name})
        for tag, tag_spec in spec.tags.items():
            schema.tags[tag] = None if tag_spec.allow_other else frozenset(tag_spec.values)
        schema.fields = set(spec.fields) | set(RAW_EXTRA_FIELDS)
        result[spec.measurement] = schema
    result["kota_ingest"] = MeasurementSchema(
        "kota_ingest", "ingest/metrics.py IngestCounters.fields()", {"instance": None},
        set(IngestCounters().fields()))
    result["kota_deadletter"] = MeasurementSchema(
        "kota_deadletter", "ingest/service.py _deadletter_line (docs/ingest.md)",
        {tag: None for tag in DEADLETTER_TAGS}, set(DEADLETTER_FIELDS))
    return result


def _declared(specs: dict[str, OutputSpec], folder: str) -> dict[str, MeasurementSchema]:
    return {name: MeasurementSchema(name, f"{folder}/{name}.yaml", spec.tag_values(),
                                    set(spec.field_names()))
            for name, spec in specs.items()}


def indicator_schema() -> dict[str, MeasurementSchema]:
    """The indicator service's measurements, from their specs (indicators/outputs/*.yaml)."""
    return _declared(OUTPUTS, "indicators/outputs")


def alert_schema() -> dict[str, MeasurementSchema]:
    """The alert service's measurement, from alerts/outputs/alert_events.yaml."""
    return _declared(ALERT_OUTPUTS, "alerts/outputs")


def written_schema() -> dict[str, MeasurementSchema]:
    """Every measurement a panel may read: raw, ingest's own, the indicators' and the
    alerts'."""
    return {**raw_schema(), **indicator_schema(), **alert_schema()}
