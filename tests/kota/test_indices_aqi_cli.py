"""``kota aqi`` run as a field team would (``python -m kota aqi ...``), and its bad input.

``python -m kota`` finds commands through the installed entry points: after adding ``aqi`` to
pyproject.toml, reinstall (``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kota.indices.aqi import overall_aqi

pytestmark = pytest.mark.slow  # a subprocess per test


def kota(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kota", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_aqi_text_output_names_the_responsible_pollutant_and_the_epa_colour() -> None:
    run = kota("aqi", "pm25=30", "o3_8h=140", "o3_1h=260", "co=5000")
    assert run.returncode == 0, run.stderr
    expected = overall_aqi({"pm25": 30, "o3_8h": 140, "o3_1h": 260, "co": 5000})
    assert expected.category is not None and expected.responsible == "o3"
    assert f"AQI {expected.aqi}: {expected.category.name} (orange, #ff7e00" in run.stdout
    assert "Responsible pollutant: O3" in run.stdout
    assert "o3_1h" in run.stdout and "0.132 ppm" in run.stdout  # the 1-hour table decided
    assert "gases converted at 25 °C and 101.325 kPa (24.45 L/mol)" in run.stdout
    assert "docs/standards.md#us-aqi" in run.stdout


def test_aqi_marks_a_lower_bound() -> None:
    run = kota("aqi", "so2_1h=900")
    assert run.returncode == 0, run.stderr
    assert "≥200" in run.stdout and "give so2_24h" in run.stdout


def test_aqi_json() -> None:
    run = kota("aqi", "pm25=80", "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["aqi"] == overall_aqi({"pm25": 80}).aqi and data["responsible"] == "pm25"
    assert data["category"]["hex"] == "#ff0000"
    assert data["concentrations_ugm3"] == {"pm25": 80.0}


@pytest.mark.parametrize(("args", "message"), [
    ((), "give at least one TABLE=CONCENTRATION"),
    (("pm1=3",), "unknown AQI table 'pm1' (known: pm25, pm10, o3_8h"),
    (("pm25=-1",), "concentration must be a number ≥ 0"),
    (("pm25=lots",), "'lots' is not a number"),
    (("pm25=3", "pm2.5=4"), "given twice"),
    (("pm25",), "write TABLE=CONCENTRATION"),
    (("o3_1h=100",), "no AQI: none of the values given defines an index"),
])
def test_aqi_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    run = kota("aqi", *args)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert message in run.stderr
