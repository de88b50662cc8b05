"""The declared outputs (indicators/outputs/*.yaml): loaded, consistent with the code that writes
them, and docs/indicators.md's generated tables current."""

from __future__ import annotations

import re

from kota_testing import REPO as REPO_ROOT

from dashboards.schema import indicator_schema
from indicators.outputs import OUTPUTS, output, replaced_measurements
from indicators.outputs._doc import DOC, rewrite
from indicators.service import MEASUREMENTS, RUNS_MEASUREMENT
from kota.indices.ispu import ispu_parameters
from kota.standards import load_aqi_tables

ROOT = REPO_ROOT


def test_docs_tables_are_generated_from_the_specs() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert rewrite(text) == text, "run `python -m indicators.outputs._doc`"


def test_every_spec_names_the_module_that_writes_it() -> None:
    for name, spec in OUTPUTS.items():
        source = (ROOT / spec.source).read_text(encoding="utf-8")
        assert f'output("{name}")' in source, f"{spec.source} does not take {name} from its spec"


def test_no_measurement_name_is_a_literal_in_the_indicator_code() -> None:
    literal = re.compile(r'Point\("')
    for path in sorted((ROOT / "indicators").glob("*.py")):
        assert not literal.search(path.read_text(encoding="utf-8")), path


def test_ispu_params_are_the_ispu_table_s() -> None:
    assert output("ispu").params == list(ispu_parameters())
    assert set(output("aqi_us").params) == set(load_aqi_tables().parameters())


def test_replace_deletes_every_window_measurement_but_the_runs() -> None:
    assert set(MEASUREMENTS) == set(replaced_measurements()) == set(OUTPUTS) - {RUNS_MEASUREMENT}


def test_dashboards_schema_is_the_specs() -> None:
    schema = indicator_schema()
    assert set(schema) == set(OUTPUTS)
    ispu = schema["ispu"]
    assert ispu.tags["window"] == frozenset({"1h", "1d"})
    assert ispu.tags["scope"] == frozenset({"device", "district", "city"})
    assert {"ispu_pm25", "conc_hc", "worst_device"} <= ispu.fields
    assert schema["indicator_runs"].fields >= {"points", "failed", "error"}
