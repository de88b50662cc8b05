"""US EPA AQI: every breakpoint of every table, truncation, conversion, EPA's rules between the
ozone and SO2 tables, the overall AQI, the NowCast and the EPA colours.

Reference tables transcribed independently of kota/standards/aqi_us.yaml from EPA's Technical
Assistance Document for the Reporting of Daily Air Quality (EPA-454/B-24-002, May 2024) Table 6
and 89 FR 16202 (docs/standards.md, section "US AQI", lists the numbers and sources in use).
Truncation (O3 to 0.001 ppm, PM2.5 0.1 µg/m³, PM10 1 µg/m³, CO 0.1 ppm, SO2 and NO2 1 ppb) and
rounding the index to the nearest whole number follow the TAD and AirNow's "The AQI Equation
(2024 - Valid Beginning May 6th, 2024)". The NowCast example is EPA's "Computing the NowCast"
(12 hours 50 … 13 µg/m³, weight 0.5, NowCast 17.4 µg/m³).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from kota.indices.aqi import (
    aqi_category,
    average_for_aqi,
    nowcast,
    overall_aqi,
    parameter_aqi,
    table_aqi,
    to_table_unit,
    truncate_concentration,
    us_aqi,
)
from kota.standards import STANDARDS_DIR, AqiTables, StandardsError, load_aqi_tables, load_standard

Band = tuple[float, float, int, int]

# (c_low, c_high, i_low, i_high): PM in µg/m³, O3 and CO in ppm, SO2 and NO2 in ppb.
REFERENCE: dict[str, list[Band]] = {
    "pm25": [(0.0, 9.0, 0, 50), (9.1, 35.4, 51, 100), (35.5, 55.4, 101, 150),
             (55.5, 125.4, 151, 200), (125.5, 225.4, 201, 300), (225.5, 325.4, 301, 500)],
    "pm10": [(0, 54, 0, 50), (55, 154, 51, 100), (155, 254, 101, 150), (255, 354, 151, 200),
             (355, 424, 201, 300), (425, 604, 301, 500)],
    "o3_8h": [(0.000, 0.054, 0, 50), (0.055, 0.070, 51, 100), (0.071, 0.085, 101, 150),
              (0.086, 0.105, 151, 200), (0.106, 0.200, 201, 300)],
    "o3_1h": [(0.125, 0.164, 101, 150), (0.165, 0.204, 151, 200), (0.205, 0.404, 201, 300),
              (0.405, 0.604, 301, 500)],
    "co": [(0.0, 4.4, 0, 50), (4.5, 9.4, 51, 100), (9.5, 12.4, 101, 150), (12.5, 15.4, 151, 200),
           (15.5, 30.4, 201, 300), (30.5, 50.4, 301, 500)],
    "no2": [(0, 53, 0, 50), (54, 100, 51, 100), (101, 360, 101, 150), (361, 649, 151, 200),
            (650, 1249, 201, 300), (1250, 2049, 301, 500)],
    "so2_1h": [(0, 35, 0, 50), (36, 75, 51, 100), (76, 185, 101, 150), (186, 304, 151, 200)],
    "so2_24h": [(305, 604, 201, 300), (605, 1004, 301, 500)],
}
DECIMALS = {"pm25": 1, "pm10": 0, "o3_8h": 3, "o3_1h": 3, "co": 1, "no2": 0, "so2_1h": 0,
            "so2_24h": 0}
CATEGORIES = [("Good", 50, "#00e400"), ("Moderate", 100, "#ffff00"),
              ("Unhealthy for Sensitive Groups", 150, "#ff7e00"), ("Unhealthy", 200, "#ff0000"),
              ("Very Unhealthy", 300, "#8f3f97"), ("Hazardous", 500, "#7e0023")]
MOLECULAR_WEIGHT = {"o3": 48.00, "no2": 46.01, "so2": 64.07, "co": 28.01}
MOLAR_VOLUME = 24.45  # L/mol at 25 °C, 1 atm


def category_of(index: int) -> str:
    return next(name for name, top, _hex in CATEGORIES if index <= top)


BREAKPOINTS = [(table, c, i) for table, bands in REFERENCE.items()
               for c_low, c_high, i_low, i_high in bands
               for c, i in ((c_low, i_low), (c_high, i_high))]


def test_the_shipped_tables_are_the_reference() -> None:
    tables = load_aqi_tables()
    shipped = {key: [(b.c_low, b.c_high, b.i_low, b.i_high) for b in table.bands]
               for key, table in tables.pollutants.items()}
    assert shipped == REFERENCE
    assert {k: t.truncate_decimals for k, t in tables.pollutants.items()} == DECIMALS
    assert tables.conversion.molecular_weight_g_per_mol == MOLECULAR_WEIGHT
    assert tables.conversion.molar_volume_l_per_mol == MOLAR_VOLUME
    assert (tables.conversion.temperature_c, tables.conversion.pressure_kpa) == (25, 101.325)


@pytest.mark.parametrize(("table", "concentration", "expected"), BREAKPOINTS)
def test_aqi_at_every_breakpoint(table: str, concentration: float, expected: int) -> None:
    result = table_aqi(table, concentration)
    assert result is not None
    assert result.aqi == expected
    assert result.category == category_of(expected)
    assert not result.beyond_scale


def _epa(table: str, truncated: float) -> int:
    for c_low, c_high, i_low, i_high in REFERENCE[table]:
        if c_low <= truncated <= c_high:
            return math.floor((i_high - i_low) / (c_high - c_low) * (truncated - c_low)
                              + i_low + 0.5)
    raise AssertionError(truncated)


@pytest.mark.parametrize(("table", "concentration", "truncated"), [
    ("pm25", 9.05, 9.0),      # in the gap between 9.0 and 9.1: truncates into Good
    ("pm25", 35.49, 35.4),    # not rounded up into the next band
    ("pm25", 100.37, 100.3),
    ("pm10", 54.9, 54),
    ("pm10", 154.99, 154),
    ("o3_8h", 0.0549, 0.054),  # Good, not Moderate
    ("o3_8h", 0.07853, 0.078),
    ("o3_8h", 0.2009, 0.200),  # still in the 8-hour table
    ("o3_1h", 0.1649, 0.164),
    ("co", 4.49, 4.4),
    ("co", 9.45, 9.4),
    ("no2", 53.9, 53),
    ("no2", 100.99, 100),
    ("so2_1h", 35.99, 35),
    ("so2_1h", 304.9, 304),   # the top of the 1-hour table
    ("so2_24h", 604.7, 604),
])
def test_truncation_then_formula(table: str, concentration: float, truncated: float) -> None:
    result = table_aqi(table, concentration)
    assert result is not None
    assert result.truncated == truncated
    assert result.aqi == _epa(table, truncated)


def test_truncation_is_exact_in_decimal() -> None:
    # 0.3 * 10 is 2.9999999999999996 in binary floating point; truncation must still give 0.3.
    assert truncate_concentration(0.3, 1) == 0.3
    assert truncate_concentration(35.49, 1) == 35.4
    assert truncate_concentration(0.071, 3) == 0.071


# EPA's worked examples (TAD "Using the table and the equation"): 8-hour ozone 0.07853 ppm is
# truncated to 0.078 and gives 126; PM2.5 35.9 µg/m³ gives 102; CO 8.4 ppm gives 90.
@pytest.mark.parametrize(("table", "concentration", "expected"), [
    ("o3_8h", 0.07853, 126), ("pm25", 35.9, 102), ("co", 8.4, 90)])
def test_epa_worked_examples(table: str, concentration: float, expected: int) -> None:
    result = table_aqi(table, concentration)
    assert result is not None and result.aqi == expected


def ugm3(table: str, value: float) -> float:
    """A concentration in the table's ppm/ppb back in µg/m³ (25 °C, 1 atm)."""
    parameter = table.split("_")[0]
    ppb = value * 1000 if table in ("o3_8h", "o3_1h", "co") else value
    return ppb * MOLECULAR_WEIGHT[parameter] / MOLAR_VOLUME


@pytest.mark.parametrize(("table", "concentration_ugm3", "expected"), [
    ("o3_8h", 48.0, 0.02445),        # one molecular weight in µg/m³ is 24.45 ppb
    ("o3_8h", 100.0, 0.0509375),
    ("co", 28.01, 0.02445),
    ("co", 10_000.0, 8.729025348089968),
    ("no2", 46.01, 24.45),
    ("so2_1h", 64.07, 24.45),
    ("so2_24h", 1000.0, 381.6138598407991),
    ("pm25", 12.3, 12.3),            # particles stay in µg/m³
])
def test_conversion_at_25_c_and_1_atm(table: str, concentration_ugm3: float,
                                      expected: float) -> None:
    assert to_table_unit(table, concentration_ugm3) == pytest.approx(expected, rel=1e-12)


def test_us_aqi_converts_from_ugm3() -> None:
    # 100 µg/m³ of O3 is 0.0509375 ppm: truncated 0.050, AQI 46.
    result = us_aqi("o3_8h", 100.0)
    assert (result.unit, result.truncated, result.aqi) == ("ppm", 0.050, _epa("o3_8h", 0.050))
    assert result.concentration_ugm3 == 100.0
    # 10 000 µg/m³ of CO is 8.729 ppm: truncated 8.7
    assert us_aqi("co", 10_000.0).truncated == 8.7
    # An exact conversion lands on the breakpoint, not a hair below it: 48 µg/m³ O3 = 0.024 ppm
    assert us_aqi("o3_8h", 48.0).truncated == 0.024


@pytest.mark.parametrize(("index", "name", "hex_colour"), [
    (index, name, hex_colour) for low, (name, top, hex_colour)
    in zip([0, 51, 101, 151, 201, 301], CATEGORIES, strict=True) for index in (low, top)])
def test_epa_colour_at_every_category_edge(index: int, name: str, hex_colour: str) -> None:
    category = aqi_category(index)
    assert (category.name, category.hex) == (name, hex_colour)


# -- ozone: 8-hour up to 300, 1-hour from 101, the larger ---------------------------------------
def o3(eight_ppm: float | None, one_ppm: float | None) -> dict[str, float | None]:
    return {"o3_8h": None if eight_ppm is None else ugm3("o3_8h", eight_ppm),
            "o3_1h": None if one_ppm is None else ugm3("o3_1h", one_ppm)}


@pytest.mark.parametrize(("eight", "one", "table", "expected", "at_least"), [
    (0.0505, None, "o3_8h", _epa("o3_8h", 0.050), False),
    (0.0785, 0.1005, "o3_8h", 126, False),              # 1-hour below 0.125: no 1-hour index
    (0.0785, 0.1625, "o3_1h", _epa("o3_1h", 0.162), False),  # the 1-hour is larger
    (0.1505, 0.1305, "o3_8h", _epa("o3_8h", 0.150), False),  # the 8-hour is larger
    (0.2505, 0.4505, "o3_1h", _epa("o3_1h", 0.450), False),  # 8-hour above its table
    (0.2505, None, "o3_8h", 300, True),                  # … and no 1-hour: at least 300
    (None, 0.1705, "o3_1h", _epa("o3_1h", 0.170), False),
])
def test_ozone_rule(eight: float | None, one: float | None, table: str, expected: int,
                    at_least: bool) -> None:
    result = parameter_aqi("o3", o3(eight, one))
    assert result is not None
    assert (result.pollutant, result.aqi, result.at_least) == (table, expected, at_least)


def test_ozone_one_hour_below_its_table_alone_gives_no_index() -> None:
    assert parameter_aqi("o3", o3(None, 0.100)) is None
    assert overall_aqi(o3(None, 0.100)).undefined == ["o3"]


# -- SO2: 1-hour up to 200 (304 ppb), the 24-hour mean above ------------------------------------
def so2(one_ppb: float | None, day_ppb: float | None) -> dict[str, float | None]:
    return {"so2_1h": None if one_ppb is None else ugm3("so2_1h", one_ppb),
            "so2_24h": None if day_ppb is None else ugm3("so2_24h", day_ppb)}


@pytest.mark.parametrize(("one", "day", "table", "expected", "at_least"), [
    (20.5, None, "so2_1h", _epa("so2_1h", 20), False),
    (250.5, 500.5, "so2_1h", _epa("so2_1h", 250), False),  # 1-hour ≤ 304: the 24-hour is unused
    (304.5, None, "so2_1h", 200, False),
    (400.5, 500.5, "so2_24h", _epa("so2_24h", 500), False),  # above 304: the 24-hour mean
    (400.5, 200.5, "so2_1h", 200, False),  # 24-hour below its table: the 1-hour top
    (400.5, None, "so2_1h", 200, True),    # no 24-hour mean: at least 200
    (None, 700.5, "so2_24h", _epa("so2_24h", 700), False),
])
def test_so2_rule(one: float | None, day: float | None, table: str, expected: int,
                  at_least: bool) -> None:
    result = parameter_aqi("so2", so2(one, day))
    assert result is not None
    assert (result.pollutant, result.aqi, result.at_least) == (table, expected, at_least)


def test_so2_24h_alone_below_its_table_gives_no_index() -> None:
    assert parameter_aqi("so2", so2(None, 200.5)) is None


# -- the overall AQI ----------------------------------------------------------------------------
def test_overall_is_the_highest_with_its_pollutant_named() -> None:
    # EPA's example in µg/m³: O3 8-h 0.07853 ppm (126), PM2.5 35.9 (102), CO 8.45 ppm (90).
    result = overall_aqi({"o3_8h": ugm3("o3_8h", 0.07853), "pm25": 35.9,
                          "co": ugm3("co", 8.45)})
    assert {p: r.aqi for p, r in result.sub_indices.items()} == {"o3": 126, "pm25": 102,
                                                                  "co": 90}
    assert (result.aqi, result.responsible) == (126, "o3")
    assert result.category is not None
    assert (result.category.name, result.category.hex) == ("Unhealthy for Sensitive Groups",
                                                            "#ff7e00")


def test_overall_with_every_pollutant() -> None:
    result = overall_aqi({"pm25": 20.0, "pm10": 40.0, "o3_8h": ugm3("o3_8h", 0.0605),
                          "o3_1h": ugm3("o3_1h", 0.1005), "co": ugm3("co", 2.05),
                          "no2": ugm3("no2", 400.5), "so2_1h": ugm3("so2_1h", 10.5),
                          "so2_24h": ugm3("so2_24h", 5.5)})
    assert set(result.sub_indices) == {"pm25", "pm10", "o3", "co", "no2", "so2"}
    assert result.responsible == "no2" and result.aqi == _epa("no2", 400)


def test_nothing_measured_gives_no_aqi() -> None:
    result = overall_aqi({"pm25": None})
    assert result.aqi is None and result.responsible is None and result.sub_indices == {}


def test_above_the_scale_caps_at_500() -> None:
    result = us_aqi("pm25", 400)
    assert result.aqi == 500 and result.beyond_scale and result.category == "Hazardous"
    assert parameter_aqi("o3", o3(0.3, 0.9)).aqi == 500  # type: ignore[union-attr]


@pytest.mark.parametrize(("table", "value"), [("pm1", 5), ("pm25", -1), ("pm10", math.nan),
                                               ("o3", 100), ("co", math.inf)])
def test_bad_input_is_refused(table: str, value: float) -> None:
    with pytest.raises(ValueError):
        us_aqi(table, value)


def test_us_aqi_refuses_a_value_its_table_does_not_define() -> None:
    with pytest.raises(ValueError, match="below the table's first breakpoint"):
        us_aqi("o3_1h", ugm3("o3_1h", 0.1))


# -- NowCast ------------------------------------------------------------------------------------
# Oldest first: 13 µg/m³ is the newest hour.
EPA_EXAMPLE: list[float | None] = [50, 80, 75, 90, 82, 53, 64, 74, 21, 10, 16, 13]


@pytest.mark.parametrize(("hours", "expected", "weight"), [
    (EPA_EXAMPLE, 17.4139194, 0.5),                     # EPA: weight 1 − 80/90 → 0.5; 17.4
    ([20.0] * 12, 20.0, 1.0),                            # no spread: the 12-hour mean
    ([10.0, 20.0] * 6, None, 0.5),                       # weight 1 − 10/20 = 0.5 exactly
    ([0.0] * 12, 0.0, 1.0),                              # all zero
    ([30.0, 24.0, None, 27.0], None, 0.8),               # fewer than 12 hours, one missing
])
def test_nowcast(hours: list[float | None], expected: float | None, weight: float) -> None:
    result = nowcast(hours)
    assert not result.insufficient
    assert result.weight == pytest.approx(weight)
    present = [(ago, v) for ago, v in enumerate(reversed(hours)) if v is not None]
    by_hand = (math.fsum(weight ** ago * v for ago, v in present)
               / math.fsum(weight ** ago for ago, _v in present))
    assert result.concentration_ugm3 == pytest.approx(by_hand, rel=1e-12)
    if expected is not None:
        assert result.concentration_ugm3 == pytest.approx(expected, abs=1e-6)


def test_nowcast_epa_example_to_aqi() -> None:
    concentration = nowcast(EPA_EXAMPLE).concentration_ugm3
    assert concentration is not None
    result = us_aqi("pm25", concentration)
    assert result.truncated == 17.4 and result.aqi == _epa("pm25", 17.4) == 66


def test_nowcast_uses_only_the_last_12_hours() -> None:
    assert nowcast([1000.0, 1000.0, 1000.0, *EPA_EXAMPLE]) == nowcast(EPA_EXAMPLE)


@pytest.mark.parametrize(("newest_three", "insufficient"), [
    ((10.0, 10.0, 10.0), False), ((10.0, None, 10.0), False), ((None, 10.0, 10.0), False),
    ((10.0, 10.0, None), False), ((None, None, 10.0), True), ((10.0, None, None), True),
    ((None, None, None), True)])
def test_nowcast_needs_two_of_the_three_newest_hours(
        newest_three: tuple[float | None, ...], insufficient: bool) -> None:
    result = nowcast([12.0] * 9 + list(newest_three))
    assert result.insufficient is insufficient
    assert (result.concentration_ugm3 is None) is insufficient


def test_nowcast_missing_hours_keep_their_place() -> None:
    # A gap two hours ago: the hour three ago is still weighted w**3, not w**2.
    result = nowcast([30.0, None, 20.0, 25.0])
    w = 1 - (30 - 20) / 30
    expected = (25 + 20 * w + 30 * w ** 3) / (1 + w + w ** 3)
    assert result.concentration_ugm3 == pytest.approx(expected)


def test_nowcast_is_for_particles_only() -> None:
    with pytest.raises(ValueError, match="NowCast is for"):
        nowcast([1.0, 2.0], "o3")
    with pytest.raises(ValueError):
        nowcast([1.0, -2.0])


# -- averaging ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("table", "valid", "insufficient"), [
    ("o3_8h", 6, False), ("o3_8h", 5, True), ("co", 6, False), ("pm25", 18, False),
    ("pm25", 17, True), ("so2_24h", 18, False), ("no2", 1, False)])
def test_averaging_completeness(table: str, valid: int, insufficient: bool) -> None:
    window = load_aqi_tables().pollutants[table].averaging.window_hours
    hours: list[float | None] = [None] * (window - valid) + [10.0] * valid
    result = average_for_aqi([99.0] * 30 + hours, table)
    assert result.insufficient is insufficient
    assert result.mean_ugm3 == (None if insufficient else 10.0)


# -- the file is checked ------------------------------------------------------------------------
def _broken(tmp_path: Path, change: dict[str, object]) -> Path:
    document = yaml.safe_load((STANDARDS_DIR / "aqi_us.yaml").read_text(encoding="utf-8"))
    for dotted, value in change.items():
        node = document
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    path = tmp_path / "aqi_us.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(("change", "message"), [
    ({"conversion.molar_volume_l_per_mol": 22.41}, "ideal gas"),
    ({"combine.o3.tables": ["o3_8h", "co"]}, "co is a table of co"),
    ({"pollutants.co.parameter": "hc"}, "no molecular weight for hc"),
    ({"nowcast.parameters": ["pm25", "pm1"]}, "unknown parameters"),
    ({"categories.bands": [{"name": "Good", "index_max": 50, "colour": "green",
                            "hex": "green"}]}, "hex"),
])
def test_a_wrong_table_names_the_key(tmp_path: Path, change: dict[str, object],
                                     message: str) -> None:
    with pytest.raises(StandardsError, match=message) as error:
        load_standard(AqiTables, _broken(tmp_path, change))
    assert "aqi_us.yaml" in str(error.value)


# -- properties ---------------------------------------------------------------------------------
@given(st.sampled_from(sorted(REFERENCE)), st.floats(min_value=0, max_value=3000,
                                                     allow_nan=False),
       st.floats(min_value=0, max_value=3000, allow_nan=False))
def test_monotone_and_bounded(table: str, a: float, b: float) -> None:
    low, high = sorted((a, b))
    scale = REFERENCE[table][-1][1] / 600  # spread the draws over each table's own range
    results = [table_aqi(table, low * scale), table_aqi(table, high * scale)]
    indices = [-1 if r is None else r.aqi for r in results]
    assert indices[0] <= indices[1] <= 500


@given(st.sampled_from(sorted(REFERENCE)), st.floats(min_value=0, max_value=1,
                                                     allow_nan=False))
def test_matches_the_epa_formula_everywhere(table: str, fraction: float) -> None:
    top = REFERENCE[table][-1][1]
    result = table_aqi(table, fraction * top)
    if result is None:
        assert fraction * top < REFERENCE[table][0][0]
    else:
        assert result.aqi == _epa(table, result.truncated)


@given(st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=1000,
                                               allow_nan=False)), min_size=1, max_size=24))
def test_nowcast_lies_between_the_hours_it_used(hours: list[float | None]) -> None:
    result = nowcast(hours)
    if result.concentration_ugm3 is None:
        return
    used = [v for v in hours[-12:] if v is not None]
    assert min(used) - 1e-9 <= result.concentration_ugm3 <= max(used) + 1e-9
    assert result.weight is not None and 0.5 <= result.weight <= 1
