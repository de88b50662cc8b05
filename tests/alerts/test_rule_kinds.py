"""Every rule kind of alerts/rules/, table-driven at the official breakpoints.

The thresholds are read from kota/standards (gauges.yaml, bmkg_rain.yaml, ispu.yaml) and the
settings from the shipped alerts/rules/jakarta.yaml, so a changed table is tested as it is.
Pure: no broker, no database (the polled rules against InfluxDB: test_polled_rules.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.model import LANGUAGES
from alerts.rules import RULE_KINDS, Finding, Reading, RuleContext, RuleKind, _known_fields
from kota.registry import Device, Registry
from kota.standards import load_gauges_table, load_ispu_table, load_rain_tables

REPO = Path(__file__).resolve().parents[2]
REGISTRY = Registry.load(REPO / "simulators" / "cities" / "jakarta" / "devices.yaml")
CONTEXT = RuleContext(REGISTRY, "jakarta")
SHIPPED = {rule["id"]: rule for rule in yaml.safe_load(
    (REPO / "alerts" / "rules" / "jakarta.yaml").read_text(encoding="utf-8"))["rules"]}
GAUGES = load_gauges_table()
T0 = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)


def make_rule(rule_id: str, **changes: Any) -> RuleKind[Any]:
    """The shipped rule ``rule_id`` with ``changes`` to its settings."""
    raw = {**SHIPPED[rule_id], **changes}
    kind = RULE_KINDS[raw["kind"]]
    return kind(kind.settings_model.model_validate(raw), CONTEXT)


def device(device_id: str) -> Device:
    found = REGISTRY.get(device_id)
    assert found is not None, device_id
    return found


def gauge_device(gauge_id: str) -> Device:
    return next(d for d in REGISTRY.of_kind("water") if d.params.get("gauge_id") == gauge_id)


def reading(dev: Device, fields: Mapping[str, object], at: datetime = T0,
            device_at: datetime | None = None, received_at: datetime | None = None) -> Reading:
    return Reading(city="jakarta", kind=dev.kind, device_id=dev.device_id, fields=fields, at=at,
                   received_at=received_at or at, device_at=device_at or at, device=dev)


def level(rule: RuleKind[Any], gauge_id: str, level_cm: float, at: datetime = T0) -> Finding:
    [finding] = rule.on_reading(reading(gauge_device(gauge_id), {"level_cm": level_cm}, at))
    return finding


def assert_texts(rule: RuleKind[Any], finding: Finding, *figures: str,
                 id_id: Sequence[str] = (), en_us: Sequence[str] = ()) -> None:
    """Both languages render, no figure is left as "?", ``figures`` appear in each and
    ``id_id`` / ``en_us`` in that language's text."""
    texts = rule.texts(finding)
    own = {"id-ID": tuple(id_id), "en-US": tuple(en_us)}
    assert set(texts) == set(LANGUAGES)
    for language, text in texts.items():
        whole = " ".join((text.headline, text.description, text.instruction))
        assert text.headline and text.description, language
        assert "?" not in whole, f"{language}: {whole}"
        assert "None" not in whole, f"{language}: {whole}"
        for figure in (*figures, *own[language]):
            assert figure in whole, f"{figure!r} not in {language}: {whole}"


# -- siaga --------------------------------------------------------------------------------
# The simulated city has devices at some of the table's gauges (BPBD DKI reports more).
SIMULATED = {str(d.params.get("gauge_id")) for d in REGISTRY.of_kind("water")}
BREAKPOINTS = [(gauge_id, status, threshold.value_cm, threshold.at_equal)
               for gauge_id, gauge in GAUGES.gauges.items() if gauge_id in SIMULATED
               for status, threshold in gauge.thresholds() if threshold.value_cm is not None]
STATUS_NAMES = {status: name.name for status, name in GAUGES.status_names.names.items()}


def test_the_table_has_a_breakpoint_reached_at_equal_and_the_table_every_simulated_gauge(
        ) -> None:
    assert any(at_equal for *_, at_equal in BREAKPOINTS)      # manggarai's Siaga 3: ≥ 750
    assert any(not at_equal for *_, at_equal in BREAKPOINTS)  # katulampa's: > 80
    assert set(GAUGES.gauges) >= SIMULATED


@pytest.mark.parametrize(("gauge_id", "status", "value_cm", "at_equal"), BREAKPOINTS,
                         ids=[f"{g}-siaga{s}" for g, s, *_ in BREAKPOINTS])
def test_siaga_at_each_threshold(gauge_id: str, status: int, value_cm: float,
                                 at_equal: bool) -> None:
    below = status + 1
    # Each level on a fresh rule: no hysteresis from an earlier, higher level.
    under = level(make_rule("flood-siaga"), gauge_id, value_cm - 1)
    at = level(make_rule("flood-siaga"), gauge_id, value_cm)
    over = level(make_rule("flood-siaga"), gauge_id, value_cm + 1)
    assert under.details["status"] == below
    assert at.details["status"] == (status if at_equal else below)
    assert over.details["status"] == status
    assert over.grade == 4 - status
    assert over.level == f"Siaga {status} ({STATUS_NAMES[status]})"
    assert over.scope == gauge_id
    assert under.grade == (4 - below)       # Siaga 4 (Normal) is grade 0
    rule = make_rule("flood-siaga")
    finding = level(rule, gauge_id, value_cm + 1)
    assert_texts(rule, finding, GAUGES.gauges[gauge_id].name, str(round(value_cm + 1)),
                 f"Siaga {status}")


@pytest.mark.parametrize(("gauge_id", "status", "value_cm", "at_equal"), BREAKPOINTS,
                         ids=[f"{g}-siaga{s}" for g, s, *_ in BREAKPOINTS])
def test_siaga_falling_lowers_only_hysteresis_below_the_threshold(
        gauge_id: str, status: int, value_cm: float, at_equal: bool) -> None:
    hysteresis = SHIPPED["flood-siaga"]["hysteresis_cm"]
    rule = make_rule("flood-siaga")
    assert level(rule, gauge_id, value_cm + 1).details["status"] == status
    assert level(rule, gauge_id, value_cm - 1).details["status"] == status
    assert level(rule, gauge_id, value_cm - hysteresis).details["status"] == (
        status + 1 if not at_equal else status)
    lowered = level(rule, gauge_id, value_cm - hysteresis - 1)
    assert lowered.details["status"] == status + 1
    assert lowered.grade == 4 - (status + 1)
    # Rising again counts at once: hysteresis only delays the way down.
    assert level(rule, gauge_id, value_cm + 1).details["status"] == status


def test_siaga_rise_rate_and_hours_to_the_next_threshold_are_in_the_details() -> None:
    gauge = GAUGES.gauges["manggarai"]
    siaga3, siaga2 = gauge.siaga3.value_cm, gauge.siaga2.value_cm
    assert siaga3 is not None and siaga2 is not None
    rule = make_rule("flood-siaga")
    # +15 cm every 30 min: 30 cm/h.
    for minutes, rise in ((0, 10), (30, 25), (60, 40)):
        finding = level(rule, "manggarai", siaga3 + rise, T0 + timedelta(minutes=minutes))
    details = finding.details
    assert details["rise_cm_per_h"] == pytest.approx(30.0)
    assert details["next_status"] == 2
    assert details["hours_to_next"] == pytest.approx(round((siaga2 - (siaga3 + 40)) / 30, 1))
    hours = f"{(siaga2 - (siaga3 + 40)) / 30:.1f}"
    assert_texts(rule, finding, "Tebet",
                 id_id=[f"Naik 30 cm/jam: Siaga 2 tercapai dalam sekitar {hours} jam"],
                 en_us=[f"Rising 30 cm/h: Siaga 2 in about {hours} h"])
    # Falling water: no time to the next threshold, and the texts say none.
    falling = level(rule, "manggarai", siaga3 + 20, T0 + timedelta(minutes=90))
    assert falling.details["hours_to_next"] is None
    assert falling.details["trend_en"] == ""
    assert_texts(rule, falling)


def test_siaga_fire_at_status_2_keeps_siaga_3_at_grade_0() -> None:
    siaga3 = GAUGES.gauges["depok"].siaga3.value_cm
    assert siaga3 is not None
    finding = level(make_rule("flood-siaga", fire_at_status=2), "depok", siaga3 + 1)
    assert finding.details["status"] == 3 and finding.grade == 0


# -- rise ---------------------------------------------------------------------------------
def test_rise_warns_before_the_threshold_when_the_rate_gets_there_within_lead_h() -> None:
    siaga3 = GAUGES.gauges["manggarai"].siaga3.value_cm
    lead_h = SHIPPED["flood-rise"]["lead_h"]
    assert siaga3 is not None
    rule = make_rule("flood-rise")
    # 30 cm/h, the last reading 30 cm below Siaga 3: there in 1.0 h (within lead_h).
    for minutes, below in ((0, 60), (30, 45), (60, 30)):
        finding = level(rule, "manggarai", siaga3 - below, T0 + timedelta(minutes=minutes))
    assert (finding.scope, finding.grade) == ("manggarai", 1)
    assert finding.details["hours"] == pytest.approx(1.0)
    assert lead_h >= 1.0
    assert_texts(rule, finding, "Pintu Air Manggarai", str(round(siaga3 - 30)),
                 id_id=["Siaga 3 dalam sekitar 1.0 jam"], en_us=["Siaga 3 in about 1.0 h"])
    # Reached: the siaga rule takes over, this one clears.
    reached = level(rule, "manggarai", siaga3 + 1, T0 + timedelta(minutes=61))
    assert reached.grade == 0


def test_rise_too_slow_or_too_far_is_no_warning() -> None:
    siaga3 = GAUGES.gauges["manggarai"].siaga3.value_cm
    assert siaga3 is not None
    slow = make_rule("flood-rise")
    for minutes, below in ((0, 32), (60, 30)):      # 2 cm/h: under min_rise_cm_per_h
        finding = level(slow, "manggarai", siaga3 - below, T0 + timedelta(minutes=minutes))
    assert finding.grade == 0
    far = make_rule("flood-rise")
    for minutes, below in ((0, 230), (60, 200)):    # 30 cm/h, 200 cm below: 6.7 h away
        finding = level(far, "manggarai", siaga3 - below, T0 + timedelta(minutes=minutes))
    assert finding.grade == 0 and finding.details["hours"] == pytest.approx(6.7)


# -- upstream -----------------------------------------------------------------------------
def test_upstream_warns_each_route_with_its_travel_time() -> None:
    routes = {f"{r['upstream']}>{r['downstream']}": r for r in SHIPPED["flood-upstream"]["routes"]}
    siaga3 = GAUGES.gauges["katulampa"].siaga3.value_cm
    assert siaga3 is not None
    rule = make_rule("flood-upstream")
    findings = {f.scope: f for f in rule.on_reading(
        reading(gauge_device("katulampa"), {"level_cm": siaga3 + 1}))}
    assert set(findings) == {scope for scope in routes if scope.startswith("katulampa>")}
    assert "katulampa>manggarai" in findings
    for scope, finding in findings.items():
        route = routes[scope]
        low, high = (f"{hours:g}" for hours in route["travel_h"])
        assert finding.grade == 1 and finding.certainty == "Likely"
        assert finding.area.districts == tuple(route["districts"])
        downstream = GAUGES.gauges[route["downstream"]].name
        assert_texts(rule, finding, f"{low}–{high}", downstream, "Bendung Katulampa")
    # At the threshold (not reached: "> 80") every route is grade 0.
    quiet = rule.on_reading(reading(gauge_device("katulampa"), {"level_cm": siaga3 - 20}))
    assert [f.grade for f in quiet] == [0] * len(findings)


def test_upstream_ignores_a_gauge_that_starts_no_route() -> None:
    rule = make_rule("flood-upstream")
    assert list(rule.on_reading(reading(gauge_device("karet"), {"level_cm": 900}))) == []
    assert list(rule.on_reading(reading(gauge_device("manggarai"), {"level_cm": 1000}))) == []


# -- ispu ---------------------------------------------------------------------------------
ISPU_BANDS = load_ispu_table().categories.bands
FIRE_AT = SHIPPED["air-ispu"]["fire_at_category"]


def ispu_answer(rows: Sequence[tuple[str, float, str]]) -> list[dict[str, Any]]:
    """What InfluxClient.query returns for the rule's query (GROUP BY city, district)."""
    return [{"name": "ispu", "tags": {"city": "jakarta", "district": district},
             "columns": ["time", "category", "critical_parameter", "ispu", "scope", "window"],
             "values": [[int(T0.timestamp() * 1000), category, "pm25", value, "district", "1h"]]}
            for district, value, category in rows]


def test_the_ispu_rule_knows_the_categories_of_the_standards_table() -> None:
    rule = make_rule("air-ispu")
    assert rule.settings.categories == [band.name for band in ISPU_BANDS]


@pytest.mark.parametrize("band", ISPU_BANDS, ids=[band.name for band in ISPU_BANDS])
def test_ispu_finding_per_category(band: Any) -> None:
    rule = make_rule("air-ispu")
    names = [b.name for b in ISPU_BANDS]
    [finding] = rule.findings([ispu_answer([("Tebet", band.index_max, band.name)])], T0)
    assert finding.scope == "Tebet" and finding.city == "jakarta"
    assert finding.level == band.name
    assert finding.details["ispu"] == round(band.index_max)
    if names.index(band.name) < names.index(FIRE_AT):
        assert finding.grade == 0
        return
    assert finding.grade == names.index(band.name) - names.index(FIRE_AT) + 1
    advice = SHIPPED["air-ispu"]["advice"][band.name]
    assert finding.severity == advice["severity"]
    texts = rule.texts(finding)
    # the rule's own text, else the standards' advice for the category (kota/standards/ispu.yaml)
    assert texts["id-ID"].instruction == advice.get("id") or band.health.advice_id
    assert texts["en-US"].instruction == advice.get("en") or band.health.advice_en
    assert_texts(rule, finding, band.name, "Tebet", str(round(band.index_max)), "pm25")


def test_ispu_several_districts_and_unusable_rows() -> None:
    rule = make_rule("air-ispu")
    answer = ispu_answer([("Tebet", 150, "Tidak Sehat"), ("Menteng", 40, "Baik"),
                          ("Senen", 150, "Unknown words")])
    findings = {f.scope: f.grade for f in rule.findings([answer], T0)}
    assert findings == {"Tebet": 1, "Menteng": 0}
    assert list(rule.findings([[]], T0)) == []


# -- rain ---------------------------------------------------------------------------------
RAIN = load_rain_tables()
RAIN_CASES = [(window, category.name, category.max_mm)
              for window, scale in (("1h", RAIN.hourly), ("1d", RAIN.daily))
              for category in scale.categories]


def rain_answer(category: str, rain_mm: float) -> list[dict[str, Any]]:
    return [{"name": "rain_category",
             "tags": {"city": "jakarta", "district": "Tebet", "device": "rain-manggarai"},
             "columns": ["time", "category", "rain_mm", "window"],
             "values": [[int(T0.timestamp() * 1000), category, rain_mm, "1h"]]}]


def test_hourly_and_daily_scales_differ() -> None:
    hourly = {c.name: c.max_mm for c in RAIN.hourly.categories}
    daily = {c.name: c.max_mm for c in RAIN.daily.categories}
    assert hourly["Lebat"] != daily["Lebat"]
    assert "Ekstrem" in daily and "Ekstrem" not in hourly


@pytest.mark.parametrize(("window", "category", "max_mm"), RAIN_CASES,
                         ids=[f"{w}-{c}" for w, c, _ in RAIN_CASES])
def test_rain_finding_per_window_and_category(window: str, category: str,
                                              max_mm: float | None) -> None:
    scale = RAIN.hourly if window == "1h" else RAIN.daily
    names = [c.name for c in scale.categories]
    fire_at = SHIPPED["rain-heavy"]["fire_at"][window]
    rain_mm = max_mm if max_mm is not None else 999.0
    rule = make_rule("rain-heavy", windows=[window])
    [finding] = rule.findings([rain_answer(category, rain_mm)], T0)
    assert finding.scope == f"rain-manggarai:{window}"
    fires = names.index(category) >= names.index(fire_at)
    assert finding.grade == (names.index(category) - names.index(fire_at) + 1 if fires else 0)
    if fires:
        words = {"1h": ("1 jam", "1 hour"), "1d": ("24 jam", "24 hours")}[window]
        assert_texts(rule, finding, category, "Tebet", f"{round(rain_mm, 1)}",
                     id_id=[words[0]], en_us=[words[1]])


def test_rain_reads_each_window_with_its_own_scale() -> None:
    rule = make_rule("rain-heavy")   # windows 1h and 1d, one answer each
    # "Sangat lebat" exists in both scales; "Ekstrem" only in the daily one.
    findings = rule.findings([rain_answer("Ekstrem", 200), rain_answer("Ekstrem", 200)], T0)
    assert [(f.scope, f.grade) for f in findings] == [("rain-manggarai:1d", 3)]


# -- safety_event and incident_open ---------------------------------------------------------
PANIC = device("panic-monas")


@pytest.mark.parametrize("event", ["panic", "fire", "smoke"])
def test_safety_event_fires_at_once(event: str) -> None:
    rule = make_rule("safety-event")
    [finding] = rule.on_reading(reading(PANIC, {"event": event, "incident_id": "inc-9",
                                                "message": "Tolong"}))
    assert (finding.scope, finding.grade, finding.level) == ("inc-9", 1, event)
    assert finding.severity == {"panic": "Extreme", "fire": "Extreme", "smoke": "Severe"}[event]
    assert rule.audience == "operators"
    assert finding.area.districts == (PANIC.district,)
    assert_texts(rule, finding, "Tolong", PANIC.device_id, PANIC.district, "WIB")


def test_an_unlisted_safety_event_is_nothing_and_resolved_clears_the_incident() -> None:
    rule = make_rule("safety-event")
    assert list(rule.on_reading(reading(PANIC, {"event": "fight", "incident_id": "inc-9"}))) == []
    [resolved] = rule.on_reading(reading(PANIC, {"event": "resolved", "incident_id": "inc-9"}))
    assert (resolved.scope, resolved.grade) == ("inc-9", 0)
    # Without an incident id the device is the scope.
    [finding] = rule.on_reading(reading(PANIC, {"event": "panic"}))
    assert finding.scope == PANIC.device_id


def test_incident_open_fires_on_the_tick_after_max_open_s() -> None:
    rule = make_rule("safety-incident-open")
    max_open_s = SHIPPED["safety-incident-open"]["max_open_s"]
    assert list(rule.on_reading(reading(PANIC, {"event": "fire", "incident_id": "inc-4"}))) == []
    assert list(rule.on_tick(T0 + timedelta(seconds=max_open_s - 1))) == []
    [finding] = rule.on_tick(T0 + timedelta(seconds=max_open_s))
    assert (finding.scope, finding.grade) == ("inc-4", 1)
    assert finding.details["open_min"] == max_open_s // 60
    assert_texts(rule, finding, "inc-4", str(max_open_s // 60), PANIC.district)
    [closed] = rule.on_reading(reading(PANIC, {"event": "resolved", "incident_id": "inc-4"}))
    assert (closed.scope, closed.grade) == ("inc-4", 0)
    assert list(rule.on_tick(T0 + timedelta(seconds=2 * max_open_s))) == []


def test_incident_open_clears_an_incident_opened_before_a_restart() -> None:
    # The open incidents are memory only; the alert is in the database and must still close.
    fresh = make_rule("safety-incident-open")
    [closed] = fresh.on_reading(reading(PANIC, {"event": "resolved", "incident_id": "inc-5"}))
    assert (closed.scope, closed.grade) == ("inc-5", 0)


# -- device health --------------------------------------------------------------------------
STATUS = device("air-senen-status") if REGISTRY.get("air-senen-status") else \
    REGISTRY.of_kind("status")[0]


def test_device_offline_by_last_will_by_silence_and_back() -> None:
    rule = make_rule("device-offline")
    silent_s = SHIPPED["device-offline"]["silent_s"]
    # A device the rule never reported offline: a reading only records that it was heard.
    assert list(rule.on_reading(reading(STATUS, {"online": True}))) == []
    assert list(rule.on_tick(T0 + timedelta(seconds=silent_s - 1))) == []
    [silent] = rule.on_tick(T0 + timedelta(seconds=silent_s))
    assert (silent.scope, silent.grade) == (STATUS.device_id, 1)
    assert silent.details["silent_min"] == silent_s // 60
    assert_texts(rule, silent, STATUS.device_id, str(silent_s // 60), STATUS.district)
    later = T0 + timedelta(seconds=silent_s + 60)
    [back] = rule.on_reading(reading(STATUS, {"battery_pct": 90.0}, later))
    assert (back.grade, back.level) == (0, "online")
    assert list(rule.on_tick(later + timedelta(seconds=silent_s - 1))) == []
    # The Last Will: offline at once.
    [will] = rule.on_reading(reading(STATUS, {"online": False}, later))
    assert (will.grade, will.level) == (1, "offline")
    assert_texts(rule, will, STATUS.device_id)


def test_device_offline_watches_only_its_kinds() -> None:
    rule = make_rule("device-offline", kinds=["water"])
    assert list(rule.on_reading(reading(STATUS, {"online": False}))) == []


@pytest.mark.parametrize(("fields", "below_v", "grade", "shown"), [
    ({"battery_pct": 15.0}, None, 1, "15 %"),
    ({"battery_pct": 20.0}, None, 0, "20 %"),      # below 20 %, not at it
    ({"battery_v": 3.2}, 3.3, 1, "3.20 V"),
    ({"battery_v": 3.4}, 3.3, 0, "3.40 V"),
])
def test_battery_by_percent_and_volts(fields: dict[str, float], below_v: float | None,
                                      grade: int, shown: str) -> None:
    rule = make_rule("device-battery", below_v=below_v)
    [finding] = rule.on_reading(reading(STATUS, fields))
    assert (finding.grade, finding.details["battery"]) == (grade, shown)
    if grade:
        assert_texts(rule, finding, shown, STATUS.device_id)


def test_battery_volts_without_a_volt_threshold_is_nothing() -> None:
    assert list(make_rule("device-battery").on_reading(reading(STATUS, {"battery_v": 2.0}))) == []


def test_clock_unsynced_by_flag_and_by_skew() -> None:
    rule = make_rule("device-clock")
    max_skew_s = SHIPPED["device-clock"]["max_skew_s"]
    [flagged] = rule.on_reading(reading(STATUS, {"clock_synced": False}))
    assert (flagged.grade, flagged.details["skew_s"]) == (1, 0)
    assert_texts(rule, flagged, STATUS.device_id)
    late = T0 + timedelta(seconds=max_skew_s + 30)
    [skewed] = rule.on_reading(reading(STATUS, {"clock_synced": True}, at=late, device_at=T0,
                                       received_at=late))
    assert (skewed.grade, skewed.details["skew_s"]) == (1, max_skew_s + 30)
    assert_texts(rule, skewed, str(max_skew_s + 30))
    near = T0 + timedelta(seconds=max_skew_s - 1)
    [fine] = rule.on_reading(reading(STATUS, {"clock_synced": True}, at=near, device_at=T0,
                                     received_at=near))
    assert fine.grade == 0


# -- every figure a kind accepts in messages, it provides ---------------------------------
def _firing(kind: str) -> tuple[RuleKind[Any], Finding]:
    """One firing finding of each kind, as the tests above make them."""
    siaga3 = GAUGES.gauges["manggarai"].siaga3.value_cm
    assert siaga3 is not None
    if kind in ("siaga", "rise"):
        rule = make_rule("flood-siaga" if kind == "siaga" else "flood-rise")
        offset = 40 if kind == "siaga" else -30
        for minutes, step in ((0, -30), (30, -15), (60, 0)):
            finding = level(rule, "manggarai", siaga3 + offset + step,
                            T0 + timedelta(minutes=minutes))
        return rule, finding
    if kind == "upstream":
        rule = make_rule("flood-upstream")
        return rule, rule.on_reading(reading(gauge_device("katulampa"), {"level_cm": 500}))[0]
    if kind == "ispu":
        rule = make_rule("air-ispu")
        return rule, rule.findings([ispu_answer([("Tebet", 150, "Tidak Sehat")])], T0)[0]
    if kind == "rain":
        rule = make_rule("rain-heavy", windows=["1h"])
        return rule, rule.findings([rain_answer("Lebat", 15)], T0)[0]
    if kind == "safety_event":
        rule = make_rule("safety-event")
        return rule, rule.on_reading(reading(PANIC, {"event": "fire", "incident_id": "i"}))[0]
    if kind == "incident_open":
        rule = make_rule("safety-incident-open")
        rule.on_reading(reading(PANIC, {"event": "fire", "incident_id": "i"}))
        return rule, rule.on_tick(T0 + timedelta(days=1))[0]
    rule = make_rule({"device_offline": "device-offline", "battery": "device-battery",
                      "clock": "device-clock"}[kind])
    fields: dict[str, dict[str, object]] = {
        "device_offline": {"online": False}, "battery": {"battery_pct": 5.0},
        "clock": {"clock_synced": False}}
    return rule, rule.on_reading(reading(STATUS, fields[kind]))[0]


@pytest.mark.parametrize("kind", sorted(RULE_KINDS))
def test_every_figure_a_kind_accepts_is_in_its_findings(kind: str) -> None:
    """The loader accepts a message figure when the kind declares it (detail_fields or its own
    templates); one the kind never fills would print "?" in a sent alert."""
    rule, finding = _firing(kind)
    assert finding.grade >= 1
    missing = _known_fields(RULE_KINDS[kind]) - set(finding.details)
    assert not missing, f"{kind} accepts figures it never provides: {sorted(missing)}"
    assert_texts(rule, finding)
