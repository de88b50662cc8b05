"""docs/standards.md, generated from the reference tables (a test keeps the doc current).

Every number in ``kota/standards/*.yaml`` is listed with its source and its confidence, and each
confidence mark is explained in words. Regenerate the doc after editing a YAML file with::

    python -m kota.standards.markdown --write docs/standards.md

Without ``--write`` the document is printed; ``--check FILE`` exits 1 when FILE differs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kota.standards import (
    Confidence,
    load_air_quality_standards,
    load_aqi_tables,
    load_gauges_table,
    load_ispu_table,
    load_noise_standard,
    load_rain_tables,
)

__all__ = ["DOC_PATH", "REGENERATE", "main", "standards_document"]

DOC_PATH = Path("docs") / "standards.md"
REGENERATE = "python -m kota.standards.markdown --write docs/standards.md"


def _n(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _c(confidence: Confidence) -> str:
    """A confidence as a table cell: mark and word (the legend at the top says what they mean)."""
    return f"{confidence.mark} {confidence.value}"


def _basis(basis: str) -> list[str]:
    return [f"**Where these numbers come from:** {basis}.", ""] if basis else []


def _sources_table(rows: Sequence[tuple[str, Confidence, str]]) -> list[str]:
    lines = ["| Numbers | Confidence | Source |", "|---|---|---|"]
    lines += [f"| {what} | {_c(confidence)} | {_cell(source)} |"
              for what, confidence, source in rows]
    return lines


def _legend() -> list[str]:
    lines = [
        "## What the marks mean",
        "",
        "Each number carries one of three confidence marks. The mark says how well the number "
        "was checked against a source; it does not say how official the source is, so each "
        "section below also says what kind of document its numbers come from (an official "
        "text, news reports, a transcription).",
        "",
        "| Mark | In the YAML | Meaning |",
        "|---|---|---|",
    ]
    lines += [f"| {c.mark} | `{c.value}` | {c.meaning} |" for c in Confidence]
    lines += [
        "",
        "In other words: ✅ a source this project cites shows the number as used here; ⚠️ "
        "sources disagree, show it only in part, or are second-hand copies, and the value used "
        "is the most common one; ❌ no source found shows it (a convention of this project, a "
        "widely quoted value nobody here could trace, or a default) — change it in the YAML "
        "when you have a better source.",
        "",
        "`kota ispu`, `kota aqi` and `kota siaga` print the same marks and point here. To use "
        "other numbers (a revised gauge threshold, another city's gauges), edit the YAML file "
        "named in each section or pass a copy to its loader; see [indices.md](indices.md).",
    ]
    return lines


def _ispu() -> list[str]:
    table = load_ispu_table()
    index = table.index_scale.edges
    names = [band.name for band in table.categories.bands]
    labels = [table.parameters[k].label for k in table.parameters]
    lines = [
        "## ISPU breakpoints",
        "",
        f"{table.regulation}. File: `kota/standards/ispu.yaml`.",
        "",
        *_basis(table.basis),
        f"Sub-index: `{table.formula}`.",
        "",
        "Upper edge of each band in µg/m³:",
        "",
        "| ISPU | Kategori | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for band in range(1, len(index)):
        cells = []
        for spec in table.parameters.values():
            edge = spec.edges_ugm3[band]
            cells.append(f"{edge:g} {spec.edge_confidence(edge).mark}")
        lines.append(f"| {index[band - 1]:g}–{index[band]:g} | {names[band - 1]} | "
                     + " | ".join(cells) + " |")
    scale = table.index_scale
    rows: list[tuple[str, Confidence, str]] = [
        ("ISPU value at each band edge (" + ", ".join(f"{e:g}" for e in index) + ")",
         scale.confidence, scale.source),
        (f"Top band ending at ISPU {index[-1]:g}", scale.top_edge_confidence,
         scale.top_edge_note or scale.source),
    ]
    # Parameters whose breakpoints share a source and a confidence share a row.
    groups: dict[tuple[str, Confidence], list[str]] = {}
    for spec in table.parameters.values():
        groups.setdefault((spec.source, spec.confidence), []).append(spec.label)
    rows += [(f"{', '.join(labels)} breakpoints (the table above)", confidence, source)
             for (source, confidence), labels in groups.items()]
    rows += [(f"{spec.label} edge {u.edge_ugm3:g} µg/m³", u.confidence, u.note)
             for spec in table.parameters.values() for u in spec.uncertain_edges]
    above = ("capped at the top of the scale and flagged" if table.above_top_of_scale == "cap"
             else "the top band's slope continued")
    lines += ["", *_sources_table(rows), "",
              f"Above the top edge (`above_top_of_scale: {table.above_top_of_scale}`): {above}; "
              "the regulation lists no value above its top row."]

    categories = table.categories
    rounding = table.rounding
    lines += [
        "",
        "### ISPU categories and colours",
        "",
        "The ISPU is published as a whole number and the category follows that number "
        f"(`rounding.rule: {rounding.rule}`: 50.49 is ISPU 50, Baik; 50.5 is ISPU 51, Sedang).",
        "",
        *_sources_table([("Category names and colour words", categories.confidence,
                          categories.source),
                         ("Hex colours", categories.hex_confidence, categories.hex_source),
                         ("Whole-number ISPU, rounded half up", rounding.confidence,
                          rounding.source),
                         ("What each category means", categories.meaning_confidence,
                          categories.meaning_source)]),
        "",
        "| ISPU | Kategori | Colour | hex |",
        "|---|---|---|---|",
    ]
    low = 0.0
    for b in categories.bands:
        lines.append(f"| {low:g}–{b.index_max:g} | {b.name} | {b.colour} ({b.colour_en}) | "
                     f"`{b.hex}` {categories.hex_confidence.mark} |")
        low = b.index_max + 1
    lines += ["", "#### Health meaning and advice per category", "",
              "| Kategori | Arti dan anjuran | Meaning and advice | Advice: confidence and "
              "source |", "|---|---|---|---|"]
    lines += [f"| {b.name} | {_cell(b.health.meaning_id)} {_cell(b.health.advice_id)} | "
              f"{_cell(b.health.meaning_en)} {_cell(b.health.advice_en)} | "
              f"{_c(b.health.confidence)}: {_cell(b.health.source)} |" for b in categories.bands]

    rules = [(p.label, p.averaging) for p in table.parameters.values()]
    shared = {rule.source for _label, rule in rules}
    lines += [
        "",
        "### ISPU averaging windows and completeness",
        "",
        "| Parameter | Window (h) | Valid hours needed | Confidence | Note |"
        + ("" if len(shared) == 1 else " Source |"),
        "|---|---|---|---|---|" + ("" if len(shared) == 1 else "---|"),
    ]
    for label, rule in rules:
        source = "" if len(shared) == 1 else f" {_cell(rule.source)} |"
        lines.append(f"| {label} | {rule.window_hours} | {rule.min_valid_hours} | "
                     f"{_c(rule.confidence)} | {_cell(rule.note) or '–'} |{source}")
    if len(shared) == 1:
        lines += ["", f"Source of every window: {next(iter(shared))}."]
    return lines


def _aqi() -> list[str]:
    tables = load_aqi_tables()
    units = {"ug/m3": "µg/m³", "ppm": "ppm", "ppb": "ppb"}
    columns = list(tables.pollutants.values())
    lines = ["## US AQI", "",
             "US EPA Air Quality Index, for comparison with international feeds. "
             "File: `kota/standards/aqi_us.yaml`.", "",
             *_basis(tables.basis),
             "| AQI | Category | Colour | "
             + " | ".join(f"{p.label} ({units[p.unit]}, {p.averaging.window_hours} h)"
                          for p in columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    low = 0
    for category in tables.categories.bands:
        cells = []
        for table in columns:
            band = next((b for b in table.bands if b.i_low == low), None)
            cells.append("–" if band is None else f"{band.c_low:g}–{band.c_high:g}")
        lines.append(f"| {low}–{category.index_max} | {category.name} | {category.colour} "
                     f"`{category.hex}` | " + " | ".join(cells) + " |")
        low = category.index_max + 1
    truncation = ", ".join(
        f"{p.label} to {10 ** -p.truncate_decimals:g} {units[p.unit]}" for p in columns)
    conversion = tables.conversion
    weights = ", ".join(f"{name.upper()} {weight:g}"
                        for name, weight in conversion.molecular_weight_g_per_mol.items())
    nowcast = tables.nowcast
    labels = " and ".join(next(t.label for t in columns if t.parameter == parameter)
                          for parameter in nowcast.parameters)
    lines += ["",
              f"A concentration is truncated before its band is found ({truncation}); the index "
              "`I = (Ihi − Ilo)/(Chi − Clo) × (C − Clo) + Ilo` is rounded half up. A station's "
              "AQI is its highest sub-index, reported with the pollutant that gave it. Gases "
              f"are converted from µg/m³ at {conversion.temperature_c:g} °C and "
              f"{conversion.pressure_kpa:g} kPa: ppb = µg/m³ × "
              f"{conversion.molar_volume_l_per_mol:g} / molecular weight ({weights} g/mol); "
              "ppm = ppb / 1000.", "",
              f"The hourly {labels} figure is EPA's NowCast: of the last "
              f"{nowcast.hours} hourly means, weight w = 1 − (max − min)/max (at least "
              f"{nowcast.min_weight:g}), NowCast = Σ wⁱ·cᵢ / Σ wⁱ with i hours ago, valid when "
              f"{nowcast.min_recent_valid} of the {nowcast.recent_hours} newest hours are.", ""]
    for parameter, group in tables.combine.items():
        first, second = (tables.pollutants[key].label for key in group.tables)
        rule = (f"the larger of the {first} and {second} indices, each where its table "
                "defines one" if group.rule == "larger" else
                f"{first} up to the top of its table, {second} above it")
        lines.append(f"- {parameter.upper()}: {rule} (`{group.rule}`, {_c(group.confidence)}). "
                     f"{group.note}".rstrip())
    rows: list[tuple[str, Confidence, str]] = [("The tables as a whole", tables.confidence,
                                                tables.source)]
    rows += [(f"{p.label} breakpoints", p.confidence, p.source) for p in columns]
    rows += [(f"{p.label} averaging: {p.averaging.window_hours} h, "
              f"{p.averaging.min_valid_hours} valid hour(s) needed", p.averaging.confidence,
              p.averaging.source) for p in columns]
    rows += [(f"{parameter.upper()}: which table gives the index", group.confidence,
              group.source) for parameter, group in tables.combine.items()]
    rows += [(f"Conversion at {conversion.temperature_c:g} °C, {conversion.pressure_kpa:g} kPa, "
              f"{conversion.molar_volume_l_per_mol:g} L/mol; molecular weights",
              conversion.confidence, conversion.source),
             (f"NowCast ({nowcast.hours} h, weight ≥ {nowcast.min_weight:g}, "
              f"{nowcast.min_recent_valid} of {nowcast.recent_hours} newest hours)",
              nowcast.confidence, nowcast.source),
             ("Category names", tables.categories.confidence, tables.categories.source),
             ("Colour words (" + ", ".join(c.colour for c in tables.categories.bands) + ")",
              tables.categories.colour_confidence, tables.categories.source),
             ("Hex colours (" + ", ".join(c.hex for c in tables.categories.bands) + ")",
              tables.categories.hex_confidence, tables.categories.hex_source)]
    above = ("capped at 500 and flagged" if tables.above_top_of_scale == "cap"
             else "the top band's slope continued")
    lines += ["", *_sources_table(rows), "",
              f"Above the table (`above_top_of_scale: {tables.above_top_of_scale}`): {above}."]
    return lines


def _rain() -> list[str]:
    tables = load_rain_tables()
    day = tables.observation_day
    lines = ["## BMKG rain categories", "", "File: `kota/standards/bmkg_rain.yaml`.", "",
             *_basis(tables.basis),
             f"A daily figure is BMKG's rain day, {day.start_hour:02d}:00 to "
             f"{day.start_hour:02d}:00 local time the next day, reported under the date it starts "
             f"(`observation_day`, {_c(day.confidence)}): {day.source}.", ""]
    for scale in (tables.hourly, tables.daily):
        period = "Hourly" if scale is tables.hourly else "Daily"
        lines += [f"### {period} rain ({scale.unit})", "",
                  f"{_c(scale.confidence)}: {scale.source}.", "",
                  "| Kategori | up to | Confidence |", "|---|---|---|"]
        for category in scale.categories:
            edge = "open" if category.max_mm is None else (
                f"< {category.max_mm:g}" if category.exclusive_max else f"≤ {category.max_mm:g}")
            lines.append(f"| {category.name} | {edge} | "
                         f"{_c(category.confidence or scale.confidence)} |")
        lines.append("")
    lines.append(f"Which side of a shared edge a value falls on (the upper edge belongs to its "
                 f"category): {_c(tables.edge_convention_confidence)}, a convention of this "
                 "project; the sources give shared edges without saying.")
    return lines


def _gauges() -> list[str]:
    table = load_gauges_table()
    names = table.status_names.names
    equal = table.reached_at_equal
    lines = ["## Siaga gauge thresholds", "",
             "Water-level alert thresholds in cm against each gauge's own datum. "
             "File: `kota/standards/gauges.yaml`.", "",
             *_basis(table.basis),
             f"A reading exactly on a threshold {'has' if equal.default else 'does not have'} "
             f"that status (`reached_at_equal.default: {str(equal.default).lower()}`, "
             f"{_c(equal.confidence)}): {equal.source}. {equal.note}".rstrip(), "",
             "In the table, `≥ 750` means the gauge enters the status at 750 cm and `> 80` "
             "only above 80 cm (a threshold with its own `reached_at_equal: false`).", "",
             "Status names: " + ", ".join(f"Siaga {s} = {names[s].name} {names[s].confidence.mark}"
                                          for s in (4, 3, 2, 1))
             + f". Source: {table.status_names.source}.", ""]
    lines += [f"- Siaga {s} ({names[s].name}): {names[s].note}" for s in (4, 3, 2, 1)
              if names[s].note]
    lines += ["",
              "| Gauge | id | River | Siaga 3 | Siaga 2 | Siaga 1 | Valid from |",
              "|---|---|---|---|---|---|---|"]
    for gauge in table.gauges.values():
        cells = []
        for _status, threshold in gauge.thresholds():
            sign = "≥ " if threshold.at_equal else "> "
            value = "unknown" if threshold.value_cm is None else f"{sign}{threshold.value_cm:g}"
            cells.append(f"{value} {threshold.confidence.mark}")
        river = gauge.river + ("" if gauge.river_confidence is Confidence.VERIFIED
                               else f" {gauge.river_confidence.mark}")
        lines.append(f"| {gauge.name} | `{gauge.id}` | {river} | " + " | ".join(cells)
                     + f" | {gauge.valid_from or '–'} |")
    rows: list[tuple[str, Confidence, str]] = []
    for gauge in table.gauges.values():
        for status, threshold in gauge.thresholds():
            value = ("unknown" if threshold.value_cm is None else
                     f"{'≥' if threshold.at_equal else '>'} {threshold.value_cm:g} cm")
            rows.append((f"{gauge.name}, Siaga {status}: {value}", threshold.confidence,
                         threshold.source))
    lines += ["", *_sources_table(rows), "",
              "`valid_from` is the date of the report that gave the figures; the date of the "
              "decision behind them is unknown. A river marked ❌ is this project's reading of "
              "where the gauge stands."]
    lines += ["", "### Travel times between gauges", "",
              "How long a flood wave takes from one gauge to the next, as BPBD DKI and BNPB "
              "state it in their warnings. The one table for these figures: "
              "[indices.md](indices.md), the Flood dashboard and the `routes` of "
              "`alerts/rules/jakarta.yaml` (checked by a test) take them from here.", "",
              "| From | To | Hours | Confidence | Source |", "|---|---|---|---|---|"]
    for route in table.travel_times:
        low, high = route.hours
        hours = f"{low:g}" if low == high else f"{low:g}–{high:g}"
        to = table.gauges[route.downstream].name + (f" ({route.reaches})" if route.reaches
                                                    else "")
        lines.append(f"| {table.gauges[route.upstream].name} | {_cell(to)} | {hours} | "
                     f"{_c(route.confidence)} | {_cell(route.source)} |")
    return lines


def _noise() -> list[str]:
    standard = load_noise_standard()
    lines = ["## Noise limits", "", f"{standard.regulation}. File: `kota/standards/noise.yaml`.",
             "", *_basis(standard.basis),
             f"Zone limits: {_c(standard.confidence)}: {standard.source}.", "",
             "| Zone | id | Limit (dBA) | Note |", "|---|---|---|---|"]
    lines += [f"| {z.name} | `{key}` | {_n(z.limit_dba)} | {_cell(z.note) or '–'} |"
              for key, z in standard.zones.items()]
    lines += ["", *_sources_table([
        (f"Day {standard.day_start_hour:02d}–{standard.night_start_hour:02d}, night "
         f"{standard.night_start_hour:02d}–{standard.day_start_hour:02d} local time "
         f"(UTC+{standard.timezone_utc_offset_hours:g}); night penalty "
         f"{standard.night_penalty_db:g} dB; tolerance +{standard.tolerance_db:g} dB",
         standard.periods_confidence, standard.periods_source),
        ("Comparing a day, night or hourly level (not the day-night Lsm) with the limit",
         standard.per_period_convention_confidence, "a convention of this project; the decree "
         "compares the day-night level Lsm with the limit"),
    ])]
    return lines


def _air_standards() -> list[str]:
    standards = load_air_quality_standards()
    lines = ["## Air-quality standards", "",
             "Concentration standards and guidelines that daily means are compared with. "
             "File: `kota/standards/air_quality_standards.yaml`.", "",
             *_basis(standards.basis),
             "| id | Body | Parameter | Averaging (h) | Limit (µg/m³) | Confidence | Source |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| `{key}` | {_cell(s.body)} | {s.parameter} | {s.averaging_hours} | "
              f"{s.limit_ugm3:g} | {_c(s.confidence)} | {_cell(s.source)} |"
              for key, s in standards.standards.items()]
    return lines


def standards_document() -> str:
    """The whole of docs/standards.md: every reference number, its source and its confidence."""
    header = [
        "# Standards: every threshold, its source and how sure it is",
        "",
        f"<!-- Generated from kota/standards/*.yaml by `{REGENERATE}`. Do not edit by hand: "
        "edit the YAML and regenerate (tests/project/test_docs_links.py fails when this file is "
        "out of date). -->",
        "",
        "The indices (`kota/indices/`, `kota ispu`, `kota aqi`, `kota siaga`, the indicator "
        "service) use only the numbers below. They live as data in `kota/standards/*.yaml`, "
        "each with its source and a confidence mark, and this page is generated from those "
        "files. "
        "[indices.md](indices.md) explains how the numbers are used.",
        "",
        "Contents: [what the marks mean](#what-the-marks-mean) · "
        "[ISPU breakpoints](#ispu-breakpoints) · [US AQI](#us-aqi) · "
        "[BMKG rain categories](#bmkg-rain-categories) · "
        "[Siaga gauge thresholds](#siaga-gauge-thresholds) · [noise limits](#noise-limits) · "
        "[air-quality standards](#air-quality-standards)",
    ]
    sections = [header, _legend(), _ispu(), _aqi(), _rain(), _gauges(), _noise(),
                _air_standards()]
    return "\n\n".join("\n".join(section).rstrip() for section in sections) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kota.standards.markdown",
                                     description="Print, write or check docs/standards.md.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="FILE", type=Path, help="write the document to FILE")
    group.add_argument("--check", metavar="FILE", type=Path,
                       help="exit 1 when FILE differs from the generated document")
    args = parser.parse_args(argv)
    document = standards_document()
    if args.write is not None:
        args.write.write_text(document, encoding="utf-8")
    elif args.check is not None:
        current = args.check.read_text(encoding="utf-8") if args.check.exists() else ""
        if current != document:
            print(f"{args.check} is out of date: run {REGENERATE}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
