"""The generated dashboards against Grafana's dashboard model and our own rules, without a
Grafana server:

- grafana-foundation-sdk's typed models (generated from Grafana 11.6's dashboard schema) read
  every dashboard back and write it out unchanged: no key the schema does not know, no value of
  the wrong shape (no JSON Schema file for dashboards ships in any PyPI package we found);
- structure Grafana needs (ids, 24-column grid, datasource refs, schemaVersion) and labels in
  Bahasa Indonesia / English;
- every measurement, tag, field and tag value a query (panel or annotation) names is one that
  ingest, the indicator service or the alert service writes (dashboards.schema);
- the provisioning files agree with the dashboards.
Each check is also shown to fail on a broken dashboard.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel
from kota_testing import REPO

from dashboards.build import DASHBOARDS, JSON_DIR
from dashboards.flood import CILIWUNG
from dashboards.influxql import ANNOTATION_KEYS, DATASOURCE_UID, InfluxQLQuery
from dashboards.interpolate import interpolate, interval_for, regex_escape
from dashboards.lint import (
    annotation_queries,
    check_names,
    check_structure,
    targets,
    variable_queries,
)
from dashboards.maps import GAZETTEER_FILE, GAZETTEER_PATH
from dashboards.schema import written_schema
from kota.indices.siaga import load_gauges

PROVISIONING = REPO / "dashboards" / "provisioning"
register_default_plugins()  # the SDK's typed panel options and queries, for from_json


def load(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((JSON_DIR / name).read_text(encoding="utf-8"))
    return result


def round_trip(raw: dict[str, Any]) -> dict[str, Any]:
    back: dict[str, Any] = json.loads(json.dumps(Dashboard.from_json(raw), cls=JSONEncoder))
    return back


def without_influx_annotation_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """The SDK's annotation model has only the keys every datasource shares: the InfluxDB
    datasource's own (query, text and tag columns) are checked by check_structure instead."""
    stripped = copy.deepcopy(raw)
    for annotation in (stripped.get("annotations") or {}).get("list") or []:
        for key in ANNOTATION_KEYS:
            annotation.pop(key, None)
    return stripped


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_grafana_dashboard_model_reads_it_back_unchanged(name: str) -> None:
    raw = load(name)
    assert round_trip(raw) == without_influx_annotation_keys(raw)
    model = Dashboard.from_json(raw)
    for panel in model.panels or []:
        assert isinstance(panel, Panel)
        assert not isinstance(panel.options, dict), f"{panel.type_val}: options not typed"
        assert all(isinstance(t, InfluxQLQuery) for t in panel.targets or [])


def test_round_trip_catches_what_the_model_does_not_know() -> None:
    raw = load("flood.json")
    broken = copy.deepcopy(raw)
    broken["panels"][0]["gridpos"] = broken["panels"][0].pop("gridPos")  # a typo
    assert round_trip(broken) != broken


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_structure(name: str) -> None:
    assert check_structure(load(name)) == []


def test_structure_check_finds_broken_layouts_and_references() -> None:
    raw = load("air-quality.json")
    broken = copy.deepcopy(raw)
    broken["panels"][1]["id"] = broken["panels"][0]["id"]
    broken["panels"][2]["gridPos"] = {"x": 20, "y": 0, "w": 8, "h": 4}
    broken["panels"][3]["datasource"] = {"type": "influxdb", "uid": "someone-elses"}
    broken["panels"][4]["title"] = "English only"
    broken["panels"][5]["targets"][0]["query"] = 'SELECT mean("pm25") FROM "air"'
    broken["schemaVersion"] = 16
    problems = "\n".join(check_structure(broken))
    for expected in ("duplicate id", "outside the 24-column grid", "not the provisioned one",
                     "not 'Bahasa / English'", "without $timeFilter", "schemaVersion 16"):
        assert expected in problems
    overlapping = copy.deepcopy(raw)
    overlapping["panels"][1]["gridPos"] = dict(overlapping["panels"][0]["gridPos"])
    assert any("overlaps" in p for p in check_structure(overlapping))


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_queries_name_only_what_is_written(name: str) -> None:
    schema = written_schema()
    problems = [f"{panel['title']}: {problem}" for panel, target in targets(load(name))
                for problem in check_names(target["query"], schema)]
    problems += [f"variable {var}: {problem}" for var, query in variable_queries(load(name))
                 for problem in check_names(query, schema)]
    problems += [f"annotation {annotation['name']}: {problem}"
                 for annotation, query in annotation_queries(load(name))
                 for problem in check_names(query, schema)]
    assert problems == []


def test_alerts_show_on_the_overview_flood_and_air() -> None:
    """The recent-alerts table on the city overview, alert annotations on flood and air, each
    of the right hazards."""
    overview = [target["query"] for _, target in targets(load("city-overview.json"))]
    assert any('FROM "alert_events"' in query for query in overview)
    for name, hazards in (("flood.json", {"flood", "rain"}), ("air-quality.json", {"air"})):
        ((_annotation, query),) = annotation_queries(load(name))
        assert 'FROM "alert_events"' in query
        assert set(re.findall(r'"hazard" = \'(\w+)\'', query)) == hazards, name


def test_annotation_checks_find_broken_annotations() -> None:
    raw = load("flood.json")
    broken = copy.deepcopy(raw)
    (annotation,) = broken["annotations"]["list"]
    annotation["query"] = annotation["query"].replace(" AND $timeFilter", "")
    annotation["textColumn"] = "message"
    annotation["datasource"] = {"type": "influxdb", "uid": "other"}
    del annotation["tagsColumn"]
    problems = "\n".join(check_structure(broken))
    for expected in ("without $timeFilter", "column 'message' is not selected",
                     "not the provisioned one", "lacks 'tagsColumn'"):
        assert expected in problems, problems
    assert any("alert_events has no field 'head'" in p for p in check_names(
        'SELECT "head" FROM "alert_events" WHERE $timeFilter', written_schema()))
    assert any("tag 'hazard' never has the value 'banjir'" in p for p in check_names(
        'SELECT "headline" FROM "alert_events" WHERE "hazard" = \'banjir\' AND $timeFilter',
        written_schema()))


@pytest.mark.parametrize(("query", "expected"), [
    ('SELECT mean("pm2_5") FROM "air" WHERE $timeFilter', "air has no field 'pm2_5'"),
    ('SELECT last("ispu") FROM "ispu_index" WHERE $timeFilter',
     "measurement 'ispu_index' is written by neither"),
    ('SELECT last("ispu") FROM "ispu" WHERE "window" = \'2h\' AND $timeFilter',
     "tag 'window' never has the value '2h'"),
    ('SELECT last("ispu") FROM "ispu" WHERE "station" =~ /^x$/ AND $timeFilter',
     "ispu has no tag or field 'station'"),
    ('SELECT sum("events") FROM "safety_events" WHERE $timeFilter GROUP BY "device"',
     "safety_events has no tag 'device' to group by"),
    ('SELECT count("count") FROM "safety" WHERE "event" = \'earthquake\' AND $timeFilter',
     "tag 'event' never has the value 'earthquake'"),
    ('SELECT last(level_cm) FROM "siaga" WHERE $timeFilter', "unquoted identifier 'level_cm'"),
    ('SHOW TAG VALUES FROM "air" WITH KEY = "station"', "air has no tag 'station'"),
])
def test_name_check_refuses_names_nobody_writes(query: str, expected: str) -> None:
    problems = check_names(query, written_schema())
    assert any(expected in problem for problem in problems), problems


def test_variables_cascade_city_district_device() -> None:
    for name in DASHBOARDS:
        variables = {v["name"]: v for v in load(name)["templating"]["list"]}
        assert list(variables)[:2] == ["city", "district"]
        assert "$city" in variables["district"]["query"]
        if "device" in variables:
            assert "$city" in variables["device"]["query"]
            assert "$district" in variables["device"]["query"]
        for variable in variables.values():
            assert " / " in variable["label"]
            assert variable["includeAll"] and variable["allValue"] == ".*"
            assert variable["datasource"]["uid"] == DATASOURCE_UID


def test_flood_gauges_carry_their_siaga_thresholds_in_river_order() -> None:
    flood = load("flood.json")
    gauges = load_gauges()
    for gauge_id in CILIWUNG:
        gauge = gauges[gauge_id]
        panel = next(p for p in flood["panels"] if gauge.name in p["title"]
                     and "Ciliwung dari hulu" not in p["title"])
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [s["value"] for s in steps] == [None, gauge.siaga3.value_cm,
                                               gauge.siaga2.value_cm, gauge.siaga1.value_cm]
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"
        assert f"\"gauge\" = '{gauge_id}'" in panel["targets"][0]["query"]
    river = next(p for p in flood["panels"] if "Ciliwung dari hulu ke hilir" in p["title"])
    order = [re.search(r"\"gauge\" = '([a-z_]+)'", t["query"]).group(1)  # type: ignore[union-attr]
             for t in river["targets"]]
    assert order == ["katulampa", "depok", "manggarai"]


@pytest.mark.parametrize("name", ["air-quality.json", "public-safety.json"])
def test_maps_place_devices_through_the_gazetteer(name: str) -> None:
    maps = [p for p in load(name)["panels"] if p["type"] == "geomap"]
    assert maps
    gazetteer = json.loads((REPO / "dashboards" / "gazetteer" / GAZETTEER_FILE).read_text())
    assert {"key", "latitude", "longitude"} <= set(gazetteer[0])
    for panel in maps:
        layer = panel["options"]["layers"][0]
        assert layer["location"] == {"mode": "lookup", "lookup": "device",
                                     "gazetteer": GAZETTEER_PATH}
        target = panel["targets"][0]
        assert target["resultFormat"] == "table" and 'GROUP BY "device"' in target["query"]
        colour = layer["config"]["style"]["color"]["field"]
        assert f'AS "{colour}"' in target["query"]


def test_provisioning_files_match_the_dashboards() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "influxdb.yaml").read_text())
    (source,) = datasources["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "InfluxQL"
    assert source["jsonData"]["dbName"] == "${KOTA_INFLUX_DATABASE}"
    # A read-only v1 authorization (deploy/influxdb/init/20-kota-tokens.sh), not the operator's.
    assert source["user"] == "${KOTA_GRAFANA_INFLUX_USER}"
    assert source["secureJsonData"] == {"password": "${KOTA_GRAFANA_INFLUX_PASSWORD}"}
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "kota.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/var/lib/")
    env_example = (REPO / ".env.example").read_text()
    text = (PROVISIONING / "datasources" / "influxdb.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)\}", text))
    # KOTA_GRAFANA_INFLUX_* are set by the grafana service itself (docker-compose.yml).
    service_set = {"KOTA_GRAFANA_INFLUX_URL", "KOTA_GRAFANA_INFLUX_USER",
                   "KOTA_GRAFANA_INFLUX_PASSWORD"}
    assert used == {"KOTA_INFLUX_DATABASE", *service_set}
    for name in used - service_set:
        assert re.search(rf"^{name}=", env_example, re.MULTILINE), f"{name} not in .env.example"


def test_interpolation_imitates_grafana() -> None:
    """Our reading of Grafana's interpolation (dashboards.interpolate), pinned down."""
    panel: dict[str, Any] = {"timeFrom": "6h"}
    query = ('SELECT mean("pm25") FROM "air" WHERE "district" =~ /^$district$/ AND $timeFilter '
             'GROUP BY time($__interval) -- $__interval_ms')
    sent = interpolate(query, panel, {"district": regex_escape("Kebayoran Baru (Jaksel)")},
                       now_s=1_800_000_000.0)
    assert sent == ('SELECT mean("pm25") FROM "air" WHERE "district" =~ '
                    r'/^Kebayoran Baru \(Jaksel\)$/ AND time >= now() - 21600s '
                    'GROUP BY time(20s) -- 20000')
    absolute = interpolate("WHERE $timeFilter", {}, {}, now_s=1_800_000_000.0, absolute=True)
    assert absolute == "WHERE time >= 1799913600000ms and time <= 1800000000000ms"
    assert [interval_for(s) for s in (900, 86_400, 7 * 86_400)] == ["10s", "2m", "10m"]
