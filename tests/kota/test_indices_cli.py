"""``kota ispu`` and ``kota siaga`` run as a field team would: ``python -m kota ...``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kota.indices.ispu import ispu_sub_index, station_ispu
from kota.indices.siaga import find_gauge, siaga_status


def kota(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kota", *args], capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.slow
def test_ispu_text_output() -> None:
    run = kota("ispu", "pm25=80", "pm10=120")
    assert run.returncode == 0, run.stderr
    expected = station_ispu({"pm25": 80, "pm10": 120})
    assert expected.category is not None
    assert f"ISPU {expected.ispu}: {expected.category.name}" in run.stdout
    assert "kuning" in run.stdout and expected.category.hex in run.stdout
    assert expected.category.advice_id in run.stdout and expected.category.advice_en in run.stdout
    assert "Critical parameter: PM2.5" in run.stdout
    assert f"{round(ispu_sub_index('pm10', 120))}  Sedang" in run.stdout


@pytest.mark.slow
def test_ispu_on_a_category_edge_prints_the_whole_number_and_its_category() -> None:
    run = kota("ispu", "pm10=50.01")
    assert run.returncode == 0, run.stderr
    assert "ISPU 50: Baik" in run.stdout and "Sedang" not in run.stdout
    assert "computed 50.005 as a whole number (half up" in run.stdout


@pytest.mark.slow
def test_ispu_json_output() -> None:
    run = kota("ispu", "pm2.5=80", "co=6000", "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    expected = station_ispu({"pm25": 80, "co": 6000})
    assert data["ispu"] == pytest.approx(expected.ispu)
    assert data["critical_parameter"] == "pm25"
    assert data["sub_indices"]["co"] == pytest.approx(ispu_sub_index("co", 6000))
    assert data["averaging_hours"] == {"pm25": 24, "co": 8}


@pytest.mark.slow
def test_ispu_notes_uncertain_breakpoints() -> None:
    run = kota("ispu", "so2=1000")
    assert run.returncode == 0, run.stderr
    assert ("note: SO2: band edge 1200 µg/m³ is ⚠️ partial (sources disagree or only partly "
            "show it)") in run.stdout


@pytest.mark.slow
def test_ispu_notes_say_in_words_what_the_marks_mean_and_where_to_read_more() -> None:
    run = kota("ispu", "pm25=80")
    assert run.returncode == 0, run.stderr
    assert ("Averaging assumed: PM2.5 24 h; ❌ unverified (no source found shows it: a "
            "configurable default)") in run.stdout
    assert ("the hex colour #ffff00 is ❌ unverified (no source found shows it: a configurable "
            "default): No official hex was found.") in run.stdout
    assert "the ISPU breakpoints come from: The breakpoint table of Permen LHK P.14/2020" in (
        run.stdout)
    assert "docs/standards.md#ispu-breakpoints" in run.stdout
    _no_bare_citations(run.stdout)


def _no_bare_citations(text: str) -> None:
    # Split so a search of the repository for such citations does not find this test.
    assert "standards.md" + " §" not in text and "shared" + "/reference" not in text


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), [
    (("ispu", "pm1=5"), "unknown ISPU parameter 'pm1'"),
    (("ispu", "pm25=-4"), "≥ 0"),
    (("ispu", "pm25=lots"), "not a number"),
    (("ispu", "pm25=nan"), "≥ 0"),
    (("ispu", "pm25"), "PARAMETER=CONCENTRATION"),
    (("ispu", "pm25=1", "PM2.5=2"), "given twice"),
    (("ispu",), "at least one"),
    (("siaga", "bogor", "100"), "known: katulampa"),
    (("siaga", "depok", "high"), "LEVEL_CM"),
])
def test_bad_input_exits_2_with_a_clear_error(args: tuple[str, ...], message: str) -> None:
    run = kota(*args)
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_siaga_text_output() -> None:
    run = kota("siaga", "manggarai", "870")
    assert run.returncode == 0, run.stderr
    expected = siaga_status(find_gauge("manggarai"), 870)
    assert f"Status: Siaga {expected.status}: {expected.status_name}" in run.stdout
    for threshold in expected.thresholds:
        assert threshold.source in run.stdout
    assert "≥ 950 cm" in run.stdout and "≥ 850 cm" in run.stdout


@pytest.mark.slow
def test_siaga_exactly_on_a_threshold_has_its_status_and_no_zero_hour_estimate() -> None:
    run = kota("siaga", "manggarai", "750", "--rise", "10")
    assert run.returncode == 0, run.stderr
    assert "Status: Siaga 3: Waspada" in run.stdout and " 0.0 h" not in run.stdout
    assert "next threshold (Siaga 2 Siaga, 850 cm) is reached in 10.0 h" in run.stdout
    strict = kota("siaga", "katulampa", "80", "--rise", "10")
    assert "Status: Siaga 4: Normal" in strict.stdout and " 0.0 h" not in strict.stdout
    assert "on the next threshold (Siaga 3 Waspada, 80 cm, entered above it)" in strict.stdout
    assert "Downstream: Pintu Air Manggarai about 6–9 h later" in strict.stdout


@pytest.mark.slow
def test_siaga_by_name_with_rise_and_unknown_threshold() -> None:
    run = kota("siaga", "Pulo Gadung", "750", "--rise", "10")
    assert run.returncode == 0, run.stderr
    assert "at least Siaga 2" in run.stdout and "unknown" in run.stdout
    assert "no estimate" in run.stdout
    assert "❌ unverified: not found in any source searched" in run.stdout


@pytest.mark.slow
def test_siaga_notes_say_in_words_what_the_marks_mean_and_where_the_numbers_come_from() -> None:
    run = kota("siaga", "katulampa", "170")
    assert run.returncode == 0, run.stderr
    assert ("note: ✅ verified = shown by at least one cited source; ⚠️ partial = sources "
            "disagree or only partly show it") in run.stdout
    assert "❌" not in run.stdout  # only the marks that were printed are explained
    assert ("the thresholds come from: The Dinas PU DKI criteria as reported in news articles"
            in run.stdout)
    assert "not an official BPBD or Dinas SDA table" in run.stdout
    assert "docs/standards.md#siaga-gauge-thresholds" in run.stdout
    _no_bare_citations(run.stdout)


@pytest.mark.slow
def test_siaga_json_output_with_rise() -> None:
    run = kota("siaga", "katulampa", "120", "--rise", "15", "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["status"] == 3 and data["status_name"] == "Waspada"
    assert data["hours_to_next_threshold"] == pytest.approx((150 - 120) / 15)
    assert data["valid_from"] == "2019-10-08"


def test_siaga_names_the_next_threshold() -> None:
    run = kota("siaga", "katulampa", "120", "--rise", "15")
    assert run.returncode == 0, run.stderr
    hours = (150 - 120) / 15
    assert f"next threshold (Siaga 2 Siaga, 150 cm) is reached in {hours:.1f} h" in run.stdout


@pytest.mark.slow
def test_negative_level_after_double_dash() -> None:
    run = kota("siaga", "pasar_ikan", "--", "-20")
    assert run.returncode == 0, run.stderr
    assert "Normal" in run.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", ["ispu", "siaga"])
def test_help_teaches_with_examples(command: str) -> None:
    run = kota(command, "--help")
    assert run.returncode == 0
    assert "Examples:" in run.stdout and f"kota {command} " in run.stdout
