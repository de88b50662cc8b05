"""The simulator: deterministic, accepted by the parser, realistic where it matters, and
published for real to the test Mosquitto (no MQTT mocks)."""

from __future__ import annotations

import itertools
import re
import statistics
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from kota_testing import wait_until

from devstack.localstack import LocalService
from kota.config import ConfigError, load_settings
from kota.payload import MessageParser, ParseRules
from kota.registry import Registry
from kota.standards import load_gauges_table
from simulators import SimulateSettings, build_stream, run, simulation_window
from simulators.city import City, load_city, status_twin_id
from simulators.cli import simulate
from simulators.generator import CityStream, SimMessage
from simulators.profile import DataFileError
from simulators.scenario import load_scenario, scenario_names
from simulators.settings import FAULT_TYPES, FaultSettings

# 2026-01-15 00:00 WIB, a Thursday in the wet season: fixed so every run sees the same weather.
START_S = datetime(2026, 1, 14, 17, 0, tzinfo=UTC).timestamp()
HOUR_S = 3600.0
UTC_OFFSET_H = 7
SETTINGS = SimulateSettings()
SHIPPED_REGISTRY = SETTINGS.registry_path()


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(SETTINGS.city_dir(), SHIPPED_REGISTRY)


@pytest.fixture(scope="module")
def day(city: City) -> list[SimMessage]:
    """A clean simulated day of the shipped registry."""
    return list(CityStream(city, seed=3, start_s=START_S, duration_s=24 * HOUR_S))


def _parse_all(messages: list[SimMessage], registry: Registry,
               strict: bool = True) -> list[tuple[SimMessage, list[str]]]:
    parser = MessageParser(registry, ParseRules(strict_registry=strict))
    return [(m, [r.reason for r in parser.parse(m.topic, m.payload,
                                                int(m.sim_time_s * 1000) + 1000).rejections])
            for m in messages]


def _local_hour(time_s: float) -> int:
    return int((time_s / HOUR_S + UTC_OFFSET_H) % 24)


# -- determinism ------------------------------------------------------------------------------
@pytest.mark.slow
def test_same_seed_gives_byte_identical_stream(city: City) -> None:
    faults = FaultSettings(share=0.1)

    def stream(seed: int) -> list[tuple[str, bytes, float]]:
        return [(m.topic, m.payload, m.sim_time_s) for m in CityStream(
            city, seed=seed, start_s=START_S, duration_s=4 * HOUR_S, faults=faults,
            scenario=load_scenario("banjir-ciliwung"))]

    first, second, other = stream(11), stream(11), stream(12)
    assert len(first) > 1000
    assert first == second
    assert first != other


@pytest.mark.slow
def test_same_settings_same_stream_through_build_stream() -> None:
    settings = SimulateSettings(seed=5, start=datetime(2026, 3, 1, tzinfo=UTC), duration_s=3600)
    runs = [[m.payload for m in build_stream(settings)[0]] for _ in range(2)]
    assert runs[0] == runs[1] and runs[0]


# -- acceptance by the real parser ------------------------------------------------------------
@pytest.mark.slow
def test_every_clean_message_is_accepted(city: City, day: list[SimMessage]) -> None:
    results = _parse_all(day, Registry.load(SHIPPED_REGISTRY))
    rejected = [(m.topic, m.payload, reasons) for m, reasons in results if reasons]
    assert rejected == []
    kinds = Counter(m.kind for m in day)
    assert set(kinds) == {"air", "water", "rain", "noise", "safety", "status"}
    # every measuring device sends heartbeats from its -status twin
    senders = {m.device_id for m in day}
    assert {status_twin_id(d.device_id) for d in city.devices} <= senders


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULT_TYPES)
def test_faults_are_rejected_with_expected_reason(city: City, fault: str) -> None:
    share = 0.2
    stream = CityStream(city, seed=4, start_s=START_S, duration_s=6 * HOUR_S,
                        faults=FaultSettings(share=share, types=[fault]))
    messages = list(stream)
    results = _parse_all(messages, city.registry())
    injected = stream.stats.faults[fault]
    total = stream.stats.messages + (injected if fault == "dropout" else 0)
    assert abs(injected / total - share) < 0.03, (injected, total)
    for message, reasons in results:
        if message.fault is None or message.expected_reason is None:
            assert reasons == [], (message.fault, message.payload, reasons)
        else:
            assert reasons and set(reasons) == {message.expected_reason}, (message.payload,
                                                                          reasons)
    expected = {"dropout": set(), "stuck": set(), "spike": set(), "out_of_range": {"out_of_range"},
                "clock_skew": {"timestamp_future", "timestamp_too_old"},
                "malformed": {"not_json", "not_object", "wrong_type", "unknown_field"}}[fault]
    seen = {reason for _, reasons in results for reason in reasons}
    assert seen == expected
    if fault == "dropout":
        assert not any(m.fault for m in messages)


@pytest.mark.slow
def test_mixed_faults_reject_roughly_their_share(city: City) -> None:
    share = 0.1
    stream = CityStream(city, seed=9, start_s=START_S, duration_s=6 * HOUR_S,
                        faults=FaultSettings(share=share))
    results = _parse_all(list(stream), city.registry())
    rejected = sum(1 for _, reasons in results if reasons)
    rejecting_types = 3 / len(FAULT_TYPES)  # out_of_range, clock_skew, malformed
    assert rejected / len(results) == pytest.approx(share * rejecting_types, abs=0.015)


# -- realism ------------------------------------------------------------------------------------
def _levels_by_gauge(messages: list[SimMessage],
                     city: City) -> dict[str, list[tuple[float, float]]]:
    devices = {d.device_id: d for d in city.devices}
    levels: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for message in messages:
        if message.kind != "water":
            continue
        device = devices[message.device_id]
        body = orjson.loads(message.payload)
        level = body.get("level_cm")
        if level is None:
            level = float(device.params["mount_height_cm"]) - body["distance_cm"]
        levels[str(device.params["gauge_id"])].append((message.sim_time_s, level))
    return levels


@pytest.mark.slow
def test_ciliwung_flood_wave_reaches_katulampa_then_depok_then_manggarai(city: City) -> None:
    stream = CityStream(city, seed=2, start_s=START_S, duration_s=30 * HOUR_S,
                        scenario=load_scenario("banjir-ciliwung"))
    levels = _levels_by_gauge(list(stream), city)
    peak = {gauge: max(series, key=lambda p: p[1]) for gauge, series in levels.items()}
    # The wave keeps the travel times of the one table (kota/standards/gauges.yaml).
    table = load_gauges_table()
    for downstream in ("depok", "manggarai"):
        reported = table.travel_time("katulampa", downstream)
        assert reported is not None, downstream
        low_h, high_h = reported.hours
        lag_s = peak[downstream][0] - peak["katulampa"][0]
        assert low_h * HOUR_S <= lag_s <= high_h * HOUR_S, (downstream, lag_s / HOUR_S)
    # a flood, by each gauge's own Siaga thresholds (kota/standards/gauges.yaml)
    assert peak["katulampa"][1] > 150 and peak["depok"][1] > 270 and peak["manggarai"][1] > 850
    # and normal (Siaga 4) before the rain
    assert levels["manggarai"][0][1] < 750 and levels["katulampa"][0][1] <= 80
    # rain gauges see the storm that makes the flood
    upstream_rain = sum(orjson.loads(m.payload)["rain_mm"] for m in stream
                        if m.device_id == "rain-katulampa")
    assert upstream_rain > 50


@pytest.mark.slow
def test_air_has_rush_hours_and_a_diurnal_weather_cycle(day: list[SimMessage]) -> None:
    pm25: dict[int, list[float]] = defaultdict(list)
    temperature: dict[int, list[float]] = defaultdict(list)
    humidity: dict[int, list[float]] = defaultdict(list)
    for message in day:
        if message.kind == "air":
            body = orjson.loads(message.payload)
            pm25[_local_hour(message.sim_time_s)].append(body["pm25"])
            temperature[_local_hour(message.sim_time_s)].append(body["temperature"])
            humidity[_local_hour(message.sim_time_s)].append(body["humidity"])
            assert 1007 <= body["pressure"] <= 1013
            assert body["pm10"] > body["pm25"]

    def mean(values: dict[int, list[float]], hours: range) -> float:
        return statistics.mean(v for h in hours for v in values[h])

    assert mean(pm25, range(7, 9)) > 1.5 * mean(pm25, range(12, 15))   # morning rush
    assert mean(pm25, range(18, 21)) > 1.2 * mean(pm25, range(12, 15))  # evening rush
    everything = [v for values in pm25.values() for v in values]
    assert 20 <= statistics.median(everything) <= 80
    assert 23 <= mean(temperature, range(4, 6)) <= 27
    assert 31 <= mean(temperature, range(13, 15)) <= 35
    assert 85 <= mean(humidity, range(3, 6)) <= 97    # humid nights (rain pushes RH to ~100)
    assert 58 <= mean(humidity, range(13, 15)) <= 72  # drier afternoons


@pytest.mark.parametrize(("zone_device", "day_low", "day_high"), [
    ("noise-thamrin", 62, 75),        # commercial
    ("noise-kelapa-gading", 53, 65),  # residential
    ("noise-tanjung-priok", 63, 75),  # industrial
])
def test_noise_is_louder_by_day_than_at_night(day: list[SimMessage], zone_device: str,
                                              day_low: float, day_high: float) -> None:
    by_hour: dict[int, list[float]] = defaultdict(list)
    for message in day:
        if message.device_id == zone_device:
            by_hour[_local_hour(message.sim_time_s)].append(
                orjson.loads(message.payload)["laeq_db"])
    daytime = statistics.mean(v for h in range(9, 17) for v in by_hour[h])
    night = statistics.mean(v for h in range(1, 5) for v in by_hour[h])
    assert day_low <= daytime <= day_high
    assert daytime - night >= 7


def test_heartbeats_drain_batteries_and_report_rssi(day: list[SimMessage]) -> None:
    panic = [orjson.loads(m.payload) for m in day if m.device_id == "panic-monas-status"]
    assert len(panic) > 100
    assert panic[-1]["battery_pct"] < panic[0]["battery_pct"]  # no solar panel: only drains
    assert all(-125 <= beat["rssi_dbm"] <= -35 for beat in panic)
    reboots = sum(1 for a, b in itertools.pairwise(panic) if b["uptime_s"] < a["uptime_s"])
    assert reboots <= 2  # uptime grows, except for a rare reboot


@pytest.mark.slow
def test_safety_events_arrive_in_bursts_and_follow_the_scenario(city: City) -> None:
    stream = CityStream(city, seed=2, start_s=START_S, duration_s=30 * HOUR_S,
                        scenario=load_scenario("banjir-ciliwung"))
    events = [(m.sim_time_s, orjson.loads(m.payload)["event"]) for m in stream
              if m.kind == "safety"]
    flood_reports = [t for t, event in events if event == "flood_report"]
    assert len(flood_reports) >= 20  # ~6 per hour for 9 hours
    assert all(t - START_S >= 13 * HOUR_S for t in flood_reports)
    gaps = sorted(b - a for a, b in itertools.pairwise(flood_reports))
    assert gaps[len(gaps) // 4] < 0.5 * statistics.mean(gaps)  # clustered, not evenly spaced


# -- scenarios ----------------------------------------------------------------------------------
def test_shipped_scenarios_load() -> None:
    assert {"banjir-ciliwung", "kabut-asap"} <= set(scenario_names())
    for name in scenario_names():
        scenario = load_scenario(name)
        assert scenario.name == name and scenario.events


@pytest.mark.slow
def test_haze_scenario_raises_pm(city: City) -> None:
    def median_pm25(scenario: str | None, day_number: int) -> float:
        stream = CityStream(city, seed=1, start_s=START_S + day_number * 24 * HOUR_S,
                            duration_s=6 * HOUR_S,
                            scenario=load_scenario(scenario) if scenario else None)
        return statistics.median(orjson.loads(m.payload)["pm25"] for m in stream
                                 if m.kind == "air")

    # the scenario's clock starts at the window start: compare day 0 with and without haze
    stream = CityStream(city, seed=1, start_s=START_S, duration_s=80 * HOUR_S,
                        scenario=load_scenario("kabut-asap"),
                        intervals=SETTINGS.intervals_s.model_copy(update={"air": 1800}))
    late = [orjson.loads(m.payload)["pm25"] for m in stream
            if m.kind == "air" and m.sim_time_s - START_S > 60 * HOUR_S]
    assert statistics.median(late) > 2 * median_pm25(None, 0)


@pytest.mark.parametrize(("text", "named"), [
    ("name: x\nevents: []\nweather: hot\n", "weather"),
    ("name: x\nevents:\n  - {type: haze, at_h: 0, duration_h: 5, pm_factor: 2, colour: grey}\n",
     "colour"),
    ("name: x\nevents:\n  - {type: haze, at_h: 0, duration_h: -5, pm_factor: 2}\n",
     "duration_h"),
    ("name: x\nevents:\n  - {type: volcano, at_h: 0, duration_h: 5}\n", "type"),
    ("name: x\nevents:\n  - {type: safety_burst, at_h: 1, duration_h: 2, event: riot, "
     "rate_per_h: 2}\n", "event"),
    ("name: x\nevents:\n  - {type: rain_cell, at_h: 1, duration_h: 2, lat: -6.2, lon: 106.8,"
     " radius_km: 5}\n", "peak_mm_h"),
])
def test_bad_scenario_names_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(DataFileError) as error:
        load_scenario(path)
    assert named in str(error.value) and str(path) in str(error.value)
    assert "line" in str(error.value)


def test_unknown_scenario_name_lists_the_shipped_ones() -> None:
    with pytest.raises(DataFileError, match="banjir-ciliwung"):
        load_scenario("tsunami")


# -- settings and the clock ---------------------------------------------------------------------
def test_settings_section_forbids_unknown_keys(tmp_path: Path) -> None:
    config = tmp_path / "kota.yaml"
    config.write_text("simulate:\n  speed: 120\n  faults:\n    share: 0.05\n    colour: red\n")
    with pytest.raises(ConfigError, match=r"simulate\.faults\.colour"):
        load_settings(SimulateSettings, "simulate", config, environ={})
    config.write_text("simulate:\n  speed: 120\n  faults: {share: 0.05, types: [spike]}\n")
    settings = load_settings(SimulateSettings, "simulate", config,
                             environ={"KOTA_SIMULATE__SEED": "42"})
    assert (settings.speed, settings.seed, settings.faults.types) == (120, 42, ["spike"])
    with pytest.raises(ConfigError, match="unknown fault type"):
        load_settings(SimulateSettings, "simulate", config, {"faults": {"types": ["gremlin"]}},
                      environ={})


@pytest.mark.parametrize(("speed", "duration_s"), [(1, 3600), (60, 86400), (3600, 7 * 86400),
                                                   (0, 86400), (0.5, 600)])
def test_window_never_runs_ahead_of_the_real_clock(speed: float, duration_s: float) -> None:
    now = 1_800_000_000.0
    window = simulation_window(SimulateSettings(speed=speed, duration_s=duration_s), None, now)
    assert window.duration_s == duration_s
    # at every real moment of the run, simulated time <= real time
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        real = now + fraction * window.real_duration_s
        simulated = window.start_s + (real - now) * speed if speed else window.end_s
        assert simulated <= real + 1e-6


@pytest.mark.slow
def test_paced_run_never_sends_a_future_ts() -> None:
    settings = SimulateSettings(speed=1200, duration_s=600, devices=30, progress_interval_s=0.2)
    sent: list[tuple[float, float]] = []
    progress: list[str] = []
    summary = run(settings, sink=lambda m: sent.append((m.sim_time_s, time.time())),
                  on_progress=progress.append)
    assert summary.sent == len(sent) > 0
    assert all(sim <= real + 0.001 for sim, real in sent)
    assert 0.3 < summary.elapsed_s < 5  # 600 simulated seconds at x1200, plus start-up
    # a sink took the messages: nothing was published, nothing acknowledged
    assert (summary.published, summary.acknowledged, summary.failed) == (0, 0, 0)
    assert summary.line().startswith(f"delivered {len(sent)} messages in ")
    assert "nothing published over MQTT" in summary.line() and "faults 0" in summary.line()
    assert "acknowledged" not in summary.line()
    assert progress and all(" delivered (" in line for line in progress), progress


@pytest.mark.slow
def test_device_count_subsets_and_extends_the_registry(city: City) -> None:
    small = load_city(SETTINGS.city_dir(), SHIPPED_REGISTRY, devices=6)
    assert len(small.devices) == 6 and len({d.kind for d in small.devices}) == 5  # + status
    big = load_city(SETTINGS.city_dir(), SHIPPED_REGISTRY, devices=400, seed=1)
    assert len(big.devices) == 400 and len(big.registry()) == 800
    messages = list(CityStream(big, seed=1, start_s=START_S, duration_s=HOUR_S))
    assert {m.device_id for m in messages if m.kind != "safety"} >= {
        d.device_id for d in big.devices if d.kind not in ("safety",)}
    registry = Registry.load(_dump(big))
    assert [r for _, r in _parse_all(messages, registry) if r] == []


def _dump(city: City) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "registry.yaml"
    path.write_text(city.registry().dump_yaml())
    return path


# -- the command line ---------------------------------------------------------------------------
def test_cli_help_teaches_with_examples() -> None:
    result = CliRunner().invoke(simulate, ["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "--scenario banjir-ciliwung" in result.output
    assert "simulate.faults.share" in result.output


@pytest.mark.slow
def test_cli_print_is_deterministic_and_counts(tmp_path: Path) -> None:
    args = ["--print", "--speed", "0", "--count", "25", "--seed", "8", "--start",
            "2026-02-01T00:00:00+07:00", "--duration", "2h", "--fault-share", "0.2",
            "--write-registry", str(tmp_path / "reg.yaml")]
    first = CliRunner().invoke(simulate, args)
    second = CliRunner().invoke(simulate, args)
    assert first.exit_code == 0, first.output
    lines = [line for line in first.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 25
    assert first.stdout == second.stdout
    # the summary tells the truth: printed, not published, nothing acknowledged
    summary = first.stderr.strip().splitlines()[-1]
    assert re.match(r"printed 25 messages in [\d.]+ s \([\d.]+ msg/s; nothing published: "
                    r"--print\) \[", summary), summary
    assert "published 25" not in first.stderr and "acknowledged" not in first.stderr
    assert len(Registry.load(tmp_path / "reg.yaml")) == 118


def test_cli_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nevents:\n  - {type: haze, at_h: 0, duration_h: 1, pm: 3}\n")
    result = CliRunner().invoke(simulate, ["--scenario", str(bad), "--check"])
    assert result.exit_code != 0 and "pm" in result.output
    result = CliRunner().invoke(simulate, ["--faults", "gremlin", "--check"])
    assert result.exit_code != 0 and "gremlin" in result.output


# -- end to end on the real broker --------------------------------------------------------------
@pytest.mark.slow
def test_publish_to_real_mosquitto_delivers_exactly_n(mosquitto: LocalService) -> None:
    count = 300
    received: list[str] = []
    subscribed = threading.Event()
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sim-test-subscriber",
                             protocol=mqtt.MQTTv5)
    subscriber.on_subscribe = lambda *_: subscribed.set()
    subscriber.on_message = lambda _c, _u, message: received.append(message.topic)
    subscriber.connect("127.0.0.1", mosquitto.port)
    subscriber.loop_start()
    try:
        subscriber.subscribe("kota/#", qos=1)
        assert subscribed.wait(10)
        settings = SimulateSettings.model_validate({
            "mqtt": {"port": mosquitto.port, "client_id": "sim-test-publisher"}, "speed": 0,
            "duration_s": 6 * HOUR_S, "max_messages": count, "faults": {"share": 0.05}})
        summary = run(settings)
        assert (summary.published, summary.acknowledged, summary.failed) == (count, count, 0)
        assert summary.line().startswith(f"published {count} messages in ")
        assert f"acknowledged {count}, failed 0" in summary.line()
        wait_until(lambda: len(received) >= count, 10, f"{count} messages at the subscriber")
        time.sleep(0.3)  # nothing more arrives
        assert len(received) == count
        assert {topic.split("/")[2] for topic in received} >= {"air", "status", "water"}
        assert summary.stopped_by == "max_messages"
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()


def test_outage_silences_the_named_devices(city: City, tmp_path: Path) -> None:
    path = tmp_path / "outage.yaml"
    path.write_text("name: listrik-padam\nevents:\n  - {type: outage, at_h: 1, duration_h: 2, "
                    "districts: [Tebet], kinds: [water, status]}\n")
    stream = CityStream(city, seed=1, start_s=START_S, duration_s=4 * HOUR_S,
                        scenario=load_scenario(path))
    messages = list(stream)
    tebet = {d.device_id for d in city.registry() if d.district == "Tebet"
             and d.kind in ("water", "status")}
    silent = [m for m in messages if m.device_id in tebet
              and 1 * HOUR_S <= m.sim_time_s - START_S < 3 * HOUR_S]
    assert silent == [] and stream.stats.outage_dropped > 0
    assert any(m.device_id in tebet for m in messages)          # before and after
    assert any(m.device_id == "noise-tebet" and 1 * HOUR_S <= m.sim_time_s - START_S < 3 * HOUR_S
               for m in messages)                                # other kinds carry on


# -- the shipped data -----------------------------------------------------------------------------
def test_districts_cover_every_kecamatan_of_dki() -> None:
    from simulators.city import load_districts

    districts = load_districts(SETTINGS.city_dir() / "districts.csv")
    per_kota = Counter(d.kota_administrasi for d in districts)
    assert per_kota == {"Jakarta Pusat": 8, "Jakarta Utara": 6, "Jakarta Barat": 8,
                        "Jakarta Selatan": 10, "Jakarta Timur": 10, "Kepulauan Seribu": 2}
    assert len({d.kecamatan for d in districts}) == 44
    assert all(-6.4 < d.lat < -5.5 and 106.5 < d.lon < 107.0 for d in districts)


def test_shipped_registry_has_the_gauges_and_a_twin_per_device() -> None:
    registry = Registry.load(SHIPPED_REGISTRY)
    gauges = {str(d.params["gauge_id"]) for d in registry.of_kind("water")}
    assert gauges == {"katulampa", "depok", "manggarai", "karet", "pulo_gadung", "pasar_ikan"}
    assert all(d.params.get("river") for d in registry.of_kind("water"))
    assert all("zone" in d.params for d in [*registry.of_kind("air"), *registry.of_kind("noise")])
    assert all("mm_per_tip" in d.params for d in registry.of_kind("rain"))
    measuring = [d for d in registry if d.kind != "status"]
    assert {status_twin_id(d.device_id) for d in measuring} == {
        d.device_id for d in registry.of_kind("status")}


def test_bad_profile_key_is_named(tmp_path: Path) -> None:
    import shutil

    city_dir = tmp_path / "jakarta"
    shutil.copytree(SETTINGS.city_dir(), city_dir)
    profile = city_dir / "profile.yaml"
    profile.write_text(profile.read_text().replace("pm25_background_ugm3:", "pm25_backgroud_ugm3:"))
    with pytest.raises(DataFileError, match=r"air\.pm25_backgroud_ugm3 \(line \d+\)"):
        load_city(city_dir, city_dir / "devices.yaml")


def test_rate_cap_paces_publishing() -> None:
    settings = SimulateSettings(speed=0, duration_s=HOUR_S, max_messages=40, max_rate_per_s=200)
    sent: list[float] = []
    summary = run(settings, sink=lambda _m: sent.append(time.monotonic()))
    assert summary.sent == 40
    assert sent[-1] - sent[0] >= 39 / 200 * 0.95


@pytest.mark.slow
def test_live_after_the_window_follows_the_real_clock() -> None:
    settings = SimulateSettings.model_validate({
        "speed": 600, "duration_s": 300, "live_s": 2, "devices": 6,
        "intervals_s": {kind: 1 for kind in ("air", "water", "rain", "noise", "status")}})
    sent: list[tuple[float, float]] = []
    summary = run(settings, sink=lambda m: sent.append((m.sim_time_s, time.time())))
    assert all(sim <= real + 0.001 for sim, real in sent)
    live = [(sim, real) for sim, real in sent if sim > summary.window.start_s + 300]
    assert len(live) > 10
    # Published as it happens: never ahead of the clock (above) and never a replay's worth behind
    # (a replay at x600 would be minutes behind). The bound leaves room for a loaded CI machine.
    assert all(real - sim < 2.0 for sim, real in live)
    # 0.5 s accelerated, then 2 s live; the run ends with the last message, which comes within
    # the live window's last second (1 s intervals), not necessarily at its very end
    assert 1.5 <= summary.elapsed_s < 10
    assert "then 2 s live" in summary.line()


@pytest.mark.slow
def test_faults_do_not_change_the_clean_signal(city: City) -> None:
    def clean(share: float) -> dict[tuple[str, int], bytes]:
        stream = CityStream(city, seed=6, start_s=START_S, duration_s=2 * HOUR_S,
                            faults=FaultSettings(share=share))
        return {(m.device_id, orjson.loads(m.payload)["seq"]): m.payload for m in stream
                if m.fault is None}

    without, with_faults = clean(0.0), clean(0.3)
    assert len(with_faults) < 0.8 * len(without)
    assert all(without[key] == payload for key, payload in with_faults.items())
