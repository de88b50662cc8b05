"""What a chart of a kind's field needs besides the points: the field's unit and words, and the
bands of the standard that applies to it — ISPU categories at the pollutant's breakpoint
concentrations (kota/standards/ispu.yaml) for air, the gauge's Siaga thresholds
(kota/standards/gauges.yaml) for water. Pure: the tables and the registry come in.
"""

from __future__ import annotations

from api.schemas import FieldBand, FieldScale, FieldScales
from kota.kinds import KINDS
from kota.registry import Registry
from kota.standards import GaugeTable, IspuTable

__all__ = ["field_scales"]

ISPU_SOURCE = "kota/standards/ispu.yaml (ISPU, Permen LHK P.14/2020)"
GAUGES_SOURCE = "kota/standards/gauges.yaml (Siaga thresholds)"


def _ispu_bands(table: IspuTable, field: str) -> list[FieldBand]:
    """One band per ISPU category, between the field's concentrations at the category's index
    edges; none for a field that is not an ISPU parameter."""
    parameter = table.parameters.get(field)
    if parameter is None:
        return []
    index_edges = table.index_scale.edges
    bands = []
    for category in table.categories.bands:
        if category.index_max not in index_edges:
            continue
        top = index_edges.index(category.index_max)
        if top == 0:
            continue
        bands.append(FieldBand(label=category.name, lower=parameter.edges_ugm3[top - 1],
                               upper=parameter.edges_ugm3[top], hex=category.hex,
                               source=ISPU_SOURCE))
    return bands


def _siaga_bands(gauges: GaugeTable, gauge_id: str) -> list[FieldBand]:
    """Siaga 4 below the first known threshold, then each status from its threshold up; a
    threshold the table does not know (null) is left out (the band below it runs on)."""
    gauge = gauges.gauges.get(gauge_id)
    if gauge is None:
        return []
    names = gauges.status_names.names
    edges = [(4, None)] + [(status, t.value_cm) for status, t in gauge.thresholds()
                           if t.value_cm is not None]
    bands = []
    for index, (status, lower) in enumerate(edges):
        upper = edges[index + 1][1] if index + 1 < len(edges) else None
        bands.append(FieldBand(label=f"Siaga {status} · {names[status].name}", lower=lower,
                               upper=upper, hex=None, status=status,
                               source=f"{GAUGES_SOURCE}: {gauge.name}"))
    return bands


def field_scales(kind: str, device_id: str | None, registry: Registry, ispu: IspuTable,
                 gauges: GaugeTable) -> FieldScales:
    """Every numeric field of ``kind`` with its unit, description and bands; water bands need
    ``device_id`` (the gauge is the device's ``gauge_id``)."""
    spec = KINDS[kind].spec
    device = registry.get(device_id) if device_id else None
    gauge_id = str(device.params.get("gauge_id", "")) if device is not None else ""
    fields = []
    for name, field in spec.fields.items():
        if field.type != "float":
            continue
        if kind == "air":
            bands = _ispu_bands(ispu, name)
        elif kind == "water" and name == "level_cm" and gauge_id:
            bands = _siaga_bands(gauges, gauge_id)
        else:
            bands = []
        fields.append(FieldScale(field=name, unit=field.unit, description=field.description,
                                 bands=bands))
    return FieldScales(kind=kind, title=spec.title, device=device_id, fields=fields)
