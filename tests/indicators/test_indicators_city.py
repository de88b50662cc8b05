"""City indicators as pure functions: the district table's city column keeps two cities'
populations apart, and the flood-coverage share counts only gauges that can alert (Siaga
thresholds configured), not every gauge that reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from indicators.city import CityInputs, Limits, city_points
from indicators.context import District, DistrictTable, load_districts
from indicators.points import Point
from indicators.safety import safety_points
from indicators.settings import DATA_DIR
from indicators.windows import Window

DAY = Window(1_700_000_000_000, 1_700_000_000_000 + 86_400_000, "1d")
LIMITS = Limits(pm25_national=55.0, pm25_who=15.0, min_hours=18, live_min_hours=18)
TABLE = DistrictTable([
    District("Menteng", 6.53, 68_000.0, 2020, "jakarta"),
    District("Tebet", 9.03, 210_000.0, 2020, "jakarta"),
    District("Coblong", 7.35, 120_000.0, 2020, "bandung"),
])


def by_scope(points: list[Point]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p.tags["city"], p.tags.get("district", "")): p.fields for p in points}


@pytest.mark.parametrize(("gauges", "alerting", "live", "can_alert", "share"), [
    # Menteng's gauge reports all day but has no thresholds; Tebet's can alert
    ({"Menteng": [24.0], "Tebet": [24.0]}, {"Tebet": [24.0]},
     {"Menteng": True, "Tebet": True}, {"Menteng": False, "Tebet": True}, 210 / 278),
    # both can alert
    ({"Menteng": [24.0], "Tebet": [24.0]}, {"Menteng": [24.0], "Tebet": [24.0]},
     {"Menteng": True, "Tebet": True}, {"Menteng": True, "Tebet": True}, 1.0),
    # Tebet's alerting gauge was live only 17 hours (< live_min_hours): it does not count
    ({"Menteng": [24.0], "Tebet": [17.0]}, {"Tebet": [17.0]},
     {"Menteng": True, "Tebet": False}, {"Menteng": False, "Tebet": False}, 0.0),
    # one live alerting gauge among two in Tebet is enough
    ({"Tebet": [3.0, 20.0]}, {"Tebet": [3.0, 20.0]},
     {"Tebet": True}, {"Tebet": True}, 210 / 278),
])
def test_flood_coverage_counts_gauges_that_can_alert(
        gauges: dict[str, list[float]], alerting: dict[str, list[float]],
        live: dict[str, bool], can_alert: dict[str, bool], share: float) -> None:
    inputs = CityInputs(
        gauge_hours={("jakarta", d): h for d, h in gauges.items()},
        alerting_gauge_hours={("jakarta", d): h for d, h in alerting.items()},
        sensor_events={("jakarta", "Menteng"): 0.0})
    points = by_scope(city_points(DAY, inputs, TABLE, LIMITS))
    for district, expected in live.items():
        assert points[("jakarta", district)]["flood_gauge_live"] is expected
        assert points[("jakarta", district)]["flood_gauge_alerting"] is can_alert[district]
    assert points[("jakarta", "")]["population_share_flood_gauge"] == pytest.approx(share)
    assert points[("jakarta", "")]["population"] == 278_000.0


def test_each_city_uses_its_own_rows_of_the_district_table() -> None:
    inputs = CityInputs(sensor_events={("jakarta", "Menteng"): 3.0, ("bandung", "Coblong"): 6.0},
                        safety_heard={("bandung", "Coblong")})
    points = by_scope(city_points(DAY, inputs, TABLE, LIMITS))
    assert points[("bandung", "")]["population"] == 120_000.0
    assert points[("bandung", "")]["safety_sensor_events_per_100k"] == pytest.approx(5.0)
    assert points[("bandung", "")]["area_km2"] == pytest.approx(7.35)
    assert points[("bandung", "")]["districts_safety_monitored_share"] == 1.0
    assert points[("jakarta", "")]["population"] == 278_000.0
    assert points[("jakarta", "")]["safety_sensor_events_per_100k"] == pytest.approx(
        3 / 278_000 * 1e5)
    assert points[("jakarta", "")]["districts_safety_monitored_share"] == 0.0

    events = safety_points(DAY, {("bandung", "Coblong", "fire"): (6.0, 6.0)},
                           [("bandung", "Coblong")], TABLE)
    city_fire = [p for p in events
                 if p.tags["scope"] == "city" and p.tags["event"] == "fire"]
    assert city_fire[0].fields["per_100k"] == pytest.approx(5.0)  # not over 398,000


def test_a_table_without_a_city_column_applies_to_every_city(tmp_path: Path) -> None:
    path = tmp_path / "districts.csv"
    path.write_text("kecamatan,area_km2,population,population_year\nMenteng,6.53,68000,2020\n")
    table = load_districts(path)
    menteng = table.get("jakarta", "Menteng")
    assert menteng is not None and menteng.population == 68_000.0
    assert table.get("surabaya", "Menteng") == menteng
    assert [d.name for d in table.of_city("anywhere")] == ["Menteng"]


def test_a_district_listed_twice_for_one_city_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "districts.csv"
    path.write_text("city,kecamatan,area_km2,population,population_year\n"
                    "jakarta,Menteng,6.53,68000,2020\njakarta,Menteng,6.5,1,2019\n"
                    "bandung,Menteng,1,1,2020\n")
    with pytest.raises(ValueError, match="'Menteng' is listed twice in city 'jakarta'"):
        load_districts(path)


def test_the_shipped_jakarta_table() -> None:
    table = load_districts(DATA_DIR / "jakarta" / "districts.csv")
    assert len(table) == 44 and {d.city for d in table} == {"jakarta"}
    unknown = sorted(d.name for d in table if d.population is None or d.area_km2 is None)
    assert unknown == ["Pademangan"]  # see indicators/data/jakarta/README.md
    # densities stay within what a Jakarta kecamatan can have (Seribu's islands to Johar Baru)
    densities = [d.population / d.area_km2 for d in table if d.population and d.area_km2]
    assert all(1_000 < density < 60_000 for density in densities)


def test_a_generic_row_does_not_count_again_where_the_city_has_its_own(tmp_path: Path) -> None:
    path = tmp_path / "districts.csv"
    path.write_text("city,kecamatan,area_km2,population,population_year\n"
                    ",Menteng,6.53,68000,2010\njakarta,Menteng,6.53,70000,2020\n"
                    "jakarta,Tebet,9.03,210000,2020\n,Coblong,7.35,120000,2020\n")
    table = load_districts(path)
    jakarta = table.of_city("jakarta")
    assert sorted((d.name, d.population) for d in jakarta) == [
        ("Coblong", 120_000.0), ("Menteng", 70_000.0), ("Tebet", 210_000.0)]
    menteng = table.get("jakarta", "Menteng")
    assert menteng is not None and menteng.population == 70_000.0
    generic = table.get("bandung", "Menteng")
    assert generic is not None and generic.population == 68_000.0


def test_same_district_names_in_two_cities_stay_apart() -> None:
    table = DistrictTable([District("Menteng", 6.53, 68_000.0, 2020, "jakarta"),
                           District("Menteng", 3.0, 50_000.0, 2020, "bogor")])
    inputs = CityInputs(sensor_events={("jakarta", "Menteng"): 1.0, ("bogor", "Menteng"): 1.0},
                        safety_heard={("jakarta", "Menteng")})
    points = by_scope(city_points(DAY, inputs, table, LIMITS))
    assert points[("jakarta", "")]["districts_safety_monitored"] == 1.0
    assert points[("bogor", "")]["districts_safety_monitored"] == 0.0
    assert points[("bogor", "Menteng")]["safety_sensor_events_per_100k"] == pytest.approx(2.0)


def test_a_city_that_is_not_a_registry_tag_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "districts.csv"
    path.write_text("city,kecamatan,area_km2,population,population_year\n"
                    "Jakarta,Menteng,6.53,68000,2020\n")
    with pytest.raises(ValueError, match=r"districts.csv:2: city 'Jakarta' is not a city tag"):
        load_districts(path)
