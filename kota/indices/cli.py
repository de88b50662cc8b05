"""The field-team calculator: ``kota ispu``, ``kota aqi`` and ``kota siaga`` (loaded lazily by
kota.cli).

Bad input (unknown parameter or gauge, a non-number, a negative concentration) is a usage
error: a message on stderr and exit code 2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any

import click

from kota.indices.aqi import overall_aqi
from kota.indices.ispu import (
    UnknownParameterError,
    ispu_category,
    ispu_published,
    parameter_key,
    station_ispu,
)
from kota.indices.siaga import (
    UnknownGaugeError,
    find_gauge,
    hours_to_next_threshold,
    siaga_status,
)
from kota.standards import Confidence, load_aqi_tables, load_gauges_table, load_ispu_table

__all__ = ["STANDARDS_DOC", "aqi", "ispu", "marks_note", "siaga", "sources_note"]

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Where every number, its source and the meaning of ✅ ⚠️ ❌ are listed (in this repository).
STANDARDS_DOC = "docs/standards.md"


def marks_note(confidences: Iterable[Confidence]) -> str:
    """``✅ verified = shown by at least one cited source; ...`` for the marks that were printed."""
    used = set(confidences)
    return "; ".join(f"{c.mark} {c.value} = {c.meaning}" for c in Confidence if c in used)


def sources_note(what: str, basis: str, anchor: str) -> str:
    """Where ``what`` comes from in words, and the section of docs/standards.md that lists it."""
    where = f"{STANDARDS_DOC}#{anchor}"
    if not basis:
        return f"every source of the {what} and what the marks mean: {where}"
    return f"the {what} come from: {basis} (every source and what the marks mean: {where})"


def _parse_pairs(measurements: tuple[str, ...], what: str,
                 key_of: Callable[[str], str]) -> dict[str, float]:
    """NAME=CONCENTRATION arguments as {key: µg/m³}; ``key_of`` names the key or raises
    UsageError for an unknown name."""
    values: dict[str, float] = {}
    for item in measurements:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip() or not raw.strip():
            raise click.UsageError(f"{item!r}: write {what}=CONCENTRATION, e.g. pm25=80")
        key = key_of(name)
        try:
            value = float(raw)
        except ValueError:
            raise click.UsageError(f"{name}: {raw!r} is not a number (µg/m³)") from None
        if not math.isfinite(value) or value < 0:
            raise click.UsageError(f"{name}: concentration must be a number ≥ 0 µg/m³, got {raw}")
        if key in values:
            raise click.UsageError(f"{name}: given twice")
        values[key] = value
    return values


def _parse_measurements(measurements: tuple[str, ...]) -> dict[str, float]:
    table = load_ispu_table()

    def key_of(name: str) -> str:
        try:
            return parameter_key(name, table)
        except UnknownParameterError as exc:
            raise click.UsageError(str(exc)) from None

    return _parse_pairs(measurements, "PARAMETER", key_of)


@click.command(context_settings=_CONTEXT)
@click.argument("measurements", nargs=-1, metavar="PARAMETER=UG_M3...")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def ispu(measurements: tuple[str, ...], as_json: bool) -> None:
    """ISPU (Permen LHK P.14/2020) from concentrations in µg/m³.

    Give each parameter's mean over its averaging window (PM10, PM2.5, SO2 24 h; CO 8 h;
    O3, NO2 1 h; HC 3 h by default, see kota/standards/ispu.yaml). Parameters: pm10, pm25
    (or pm2.5), so2, co, o3, no2, hc. Prints each sub-index, the ISPU (the highest, a whole
    number as KLHK publishes it), its category, colour and health advice, and the critical
    parameter; ✅ ⚠️ ❌ say how sure a number is (docs/standards.md lists every source).

    \b
    Examples:
      kota ispu pm25=80                    # one parameter
      kota ispu pm25=80 pm10=120 co=6000   # the station's ISPU is the highest sub-index
      kota ispu pm25=80 --json             # for scripts
    """
    if not measurements:
        raise click.UsageError("give at least one PARAMETER=CONCENTRATION, e.g. pm25=80")
    table = load_ispu_table()
    values = _parse_measurements(measurements)
    result = station_ispu(values, table)
    if as_json:
        data: dict[str, Any] = result.model_dump(mode="json")
        data["concentrations_ugm3"] = values
        data["averaging_hours"] = {k: table.parameters[k].averaging.window_hours for k in values}
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(f"{'Parameter':<10} {'µg/m³':>10} {'Sub-index':>10}  Category")
    for key, sub_index in result.sub_indices.items():
        label = table.parameters[key].label
        band_name = ispu_category(sub_index, table).name
        click.echo(f"{label:<10} {values[key]:>10g} {ispu_published(sub_index, table):>10d}  "
                   f"{band_name}")
    assert result.ispu is not None and result.category is not None
    assert result.critical_parameter is not None
    category = result.category
    click.echo("")
    click.echo(f"ISPU {result.ispu}: {category.name} ({category.colour} / "
               f"{category.colour_en}, {category.hex} {category.hex_confidence.mark})")
    click.echo(f"{category.meaning_id} {category.advice_id} "
               f"{category.advice_confidence.mark}")
    click.echo(f"{category.meaning_en} {category.advice_en}")
    click.echo(f"Critical parameter: {table.parameters[result.critical_parameter].label}")
    windows = ", ".join(f"{table.parameters[k].label} "
                        f"{table.parameters[k].averaging.window_hours} h" for k in values)
    mark = Confidence.least_sure(table.parameters[k].averaging.confidence for k in values)
    click.echo(f"Averaging assumed: {windows}; {mark.described}")
    for name in result.beyond_scale:
        click.echo(f"note: {table.parameters[name].label} is above the top of the scale; "
                   f"its sub-index is capped at {table.index_scale.edges[-1]:g}")
    for note in result.uncertain:
        click.echo(f"note: {note}")
    click.echo(f"note: ISPU {result.ispu} is the computed {result.ispu_exact:g} as a whole "
               f"number ({table.rounding.rule.replace('_', ' ')}, "
               f"{table.rounding.confidence.described})")
    click.echo(f"note: the hex colour {category.hex} is {category.hex_confidence.described}: "
               f"{table.categories.hex_source}")
    click.echo(f"note: {sources_note('ISPU breakpoints', table.basis, 'ispu-breakpoints')}")


def _parse_aqi_measurements(measurements: tuple[str, ...]) -> dict[str, float]:
    tables = load_aqi_tables()

    def key_of(name: str) -> str:
        key = name.strip().lower().replace(".", "").replace("-", "_")
        if key not in tables.pollutants:
            raise click.UsageError(f"unknown AQI table {name!r} "
                                   f"(known: {', '.join(tables.pollutants)})")
        return key

    return _parse_pairs(measurements, "TABLE", key_of)


@click.command(context_settings=_CONTEXT)
@click.argument("measurements", nargs=-1, metavar="TABLE=UG_M3...")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def aqi(measurements: tuple[str, ...], as_json: bool) -> None:
    """US EPA AQI (2024 table), for comparison with ISPU, from concentrations in µg/m³.

    Give each table's mean over its averaging window: pm25, pm10 (24 h), o3_8h, co (8 h),
    o3_1h, no2, so2_1h (1 h), so2_24h (24 h). Gases are converted to EPA's ppm/ppb at 25 °C
    and 1 atm and truncated as EPA does. Ozone reports the larger of the 8-h and 1-h indices;
    SO2 uses the 24-h mean above 304 ppb (1 h). Prints each sub-index, the AQI (the highest),
    its category and EPA colour, and the pollutant responsible; every number, its source and
    how sure it is: docs/standards.md (section "US AQI").

    \b
    Examples:
      kota aqi pm25=80                       # one pollutant
      kota aqi pm25=30 o3_8h=140 o3_1h=260   # the AQI is the highest sub-index
      kota aqi pm25=80 --json                # for scripts
    """
    if not measurements:
        raise click.UsageError("give at least one TABLE=CONCENTRATION, e.g. pm25=80")
    tables = load_aqi_tables()
    values = _parse_aqi_measurements(measurements)
    result = overall_aqi(values, tables)
    if as_json:
        data: dict[str, Any] = result.model_dump(mode="json")
        data["concentrations_ugm3"] = values
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    for parameter in result.undefined:
        click.echo(f"note: {parameter.upper()}: the values given define no index (1-hour ozone "
                   "below 0.125 ppm or 24-hour SO2 below 305 ppb alone); give the other table",
                   err=True)
    if result.aqi is None or result.category is None or result.responsible is None:
        raise click.UsageError("no AQI: none of the values given defines an index")
    units = {"ug/m3": "µg/m³", "ppm": "ppm", "ppb": "ppb"}

    def label(parameter: str) -> str:
        return tables.pollutants[tables.tables_of(parameter)[0]].label.split()[0]

    click.echo(f"{'Pollutant':<10} {'Table':<9} {'µg/m³':>9} {'Truncated':>13} {'Sub-index':>10}"
               "  Category")
    for parameter, sub in result.sub_indices.items():
        spec = tables.pollutants[sub.pollutant]
        truncated = f"{sub.truncated:.{spec.truncate_decimals}f} {units[sub.unit]}"
        bound = "≥" if sub.at_least else ""
        click.echo(f"{label(parameter):<10} {sub.pollutant:<9} {values[sub.pollutant]:>9g} "
                   f"{truncated:>13} {bound + str(sub.aqi):>10}  {sub.category}")
    category = result.category
    click.echo("")
    click.echo(f"AQI {result.aqi}: {category.name} ({category.colour}, {category.hex} "
               f"{category.hex_confidence.mark})")
    click.echo(f"Responsible pollutant: {label(result.responsible)}")
    for parameter, sub in result.sub_indices.items():
        if sub.at_least:
            other = tables.tables_of(parameter)[-1]
            click.echo(f"note: {sub.pollutant} is above the top of its table: the sub-index is at "
                       f"least {sub.aqi}; give {other} for the value above it")
        if sub.beyond_scale:
            click.echo(f"note: {sub.pollutant} is above the top of the scale; its sub-index is "
                       "capped at 500")
    conversion = tables.conversion
    if any(tables.pollutants[k].unit != "ug/m3" for k in values):
        click.echo(f"note: gases converted at {conversion.temperature_c:g} °C and "
                   f"{conversion.pressure_kpa:g} kPa ({conversion.molar_volume_l_per_mol:g} "
                   f"L/mol) {conversion.confidence.mark}")
    marks = [tables.pollutants[k].confidence for k in values] + [category.hex_confidence]
    click.echo(f"note: {marks_note(marks)}")
    click.echo(f"note: {sources_note('AQI breakpoints', tables.basis, 'us-aqi')}")


@click.command(context_settings=_CONTEXT)
@click.argument("gauge")
@click.argument("level_cm", type=float)
@click.option("--rise", "rise_cm_per_h", type=float,
              help="Current rate of rise in cm/h: also print the hours to the next threshold.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def siaga(gauge: str, level_cm: float, rise_cm_per_h: float | None, as_json: bool) -> None:
    """Water-level status (Siaga 4 Normal → 1 Awas) of GAUGE at LEVEL_CM.

    GAUGE is an id (katulampa, depok, manggarai, karet, pulo_gadung, pasar_ikan, angke_hulu,
    pesanggrahan, krukut_hulu, cipinang_hulu, sunter_hulu, waduk_pluit, marina) or a name
    ("Pintu Air Manggarai"). LEVEL_CM is the reading in cm against that gauge's own datum; a
    reading on a threshold has that status (≥) unless the table marks the threshold ">".
    Prints the status and every threshold it used, with its source and how sure it is
    (✅ verified, ⚠️ partial, ❌ unknown or unverified), and how long a flood wave takes to the
    gauges downstream. Thresholds and travel times: kota/standards/gauges.yaml; every source and
    what the marks mean: docs/standards.md.

    \b
    Examples:
      kota siaga manggarai 870
      kota siaga katulampa 120 --rise 15     # and hours to the next threshold at 15 cm/h
      kota siaga "Pos Depok" 310 --json
      kota siaga pasar_ikan -- -20           # a level below the datum: put -- first
    """
    table = load_gauges_table()
    try:
        spec = find_gauge(gauge, dict(table.gauges))
    except UnknownGaugeError as exc:
        raise click.UsageError(str(exc)) from None
    if not math.isfinite(level_cm):
        raise click.UsageError(f"LEVEL_CM must be a finite number, got {level_cm}")
    result = siaga_status(spec, level_cm, table)
    hours = hours_to_next_threshold(spec, level_cm, rise_cm_per_h)
    if as_json:
        data: dict[str, Any] = result.model_dump(mode="json")
        data["valid_from"] = spec.valid_from.isoformat() if spec.valid_from else None
        if rise_cm_per_h is not None:
            data["rise_cm_per_h"] = rise_cm_per_h
            data["hours_to_next_threshold"] = hours
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(f"{result.gauge_name} ({result.river}), level {level_cm:g} cm")
    prefix = "at least " if result.is_lower_bound else ""
    click.echo(f"Status: {prefix}Siaga {result.status}: {result.status_name} "
               f"{result.status_name_confidence.mark}")
    valid = f", valid from {spec.valid_from.isoformat()}" if spec.valid_from else ""
    click.echo(f"Thresholds (cm against the gauge datum{valid}):")
    for used in result.thresholds:
        if used.value_cm is None:
            compare, state = "unknown", ""
        else:
            sign = "≥" if getattr(spec, f"siaga{used.status}").at_equal else ">"
            compare = f"{sign} {used.value_cm:g} cm"
            state = "reached" if used.reached else "not reached"
        click.echo(f"  Siaga {used.status} {used.status_name:<8} {compare:<10} {state:<12}"
                   f"{used.confidence.mark} {used.confidence.value}: {used.source}")
    if result.is_lower_bound:
        missing = ", ".join(name.replace("siaga", "Siaga ") for name in result.unknown)
        click.echo(f"note: {missing} threshold unknown for this gauge: the status may be more "
                   "severe")
    downstream = [route for route in table.travel_times if route.upstream == spec.id]
    for route in downstream:
        low, high = route.hours
        hours_text = f"{low:g}" if low == high else f"{low:g}–{high:g}"
        reaches = f" ({route.reaches})" if route.reaches else ""
        click.echo(f"Downstream: {table.gauges[route.downstream].name}{reaches} about "
                   f"{hours_text} h later {route.confidence.mark}")
    marks = [result.status_name_confidence, *(used.confidence for used in result.thresholds),
             *(route.confidence for route in downstream)]
    click.echo(f"note: {marks_note(marks)}")
    click.echo(f"note: {sources_note('thresholds', table.basis, 'siaga-gauge-thresholds')}")
    if rise_cm_per_h is not None:
        if hours is None:
            click.echo(f"At {rise_cm_per_h:g} cm/h: no estimate (not rising, next threshold "
                       "unknown, or already Siaga 1)")
        else:
            upcoming = next(t for t in result.thresholds if t.reached is False)
            name = f"Siaga {upcoming.status} {upcoming.status_name}, {upcoming.value_cm:g} cm"
            if hours == 0:
                # Only a threshold marked ">" can hold a level that sits on it unreached.
                click.echo(f"At {rise_cm_per_h:g} cm/h: the level is on the next threshold "
                           f"({name}, entered above it): any further rise enters it")
            else:
                click.echo(f"At {rise_cm_per_h:g} cm/h the next threshold ({name}) is reached "
                           f"in {hours:.1f} h")
