"""The driver contract, sample configs, config errors, the command and DHT22 drivers, the
screening of readings, the heartbeat fields and the CLI — everything that needs no broker."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kota_testing import REPO

from agent.config import ConfigError, parse_config
from agent.drivers import DRIVERS, DRIVERS_DIR, build, kind_of
from agent.drivers.base import Reading, SensorError
from agent.drivers.command.driver import CommandDriver
from agent.drivers.command.driver import Config as CommandConfig
from agent.drivers.dht22.driver import Config as DhtConfig
from agent.drivers.dht22.driver import Dht22
from agent.heartbeat import collect, rssi_dbm
from agent.runner import Agent

HEADER = '[agent]\nid = "jkt-pi-01"\ncity = "jakarta"\nstate_dir = "{state}"\n\n'
DRIVER_FOLDERS = sorted(p.name for p in DRIVERS_DIR.iterdir()
                        if p.is_dir() and not p.name.startswith(("_", ".")))


def test_every_driver_folder_is_registered_and_complete() -> None:
    assert sorted(DRIVERS) == DRIVER_FOLDERS
    for name in DRIVER_FOLDERS:
        folder = DRIVERS_DIR / name
        for part in ("__init__.py", "driver.py", "README.md", "sample.conf"):
            assert (folder / part).is_file(), f"{name}/{part} missing"
        module = DRIVERS[name]
        for method in ("open", "read", "close"):
            assert callable(getattr(module.DRIVER, method)), f"{name}: no {method}()"
        assert module.Config.model_fields["driver"].annotation.__args__ == (name,)


@pytest.mark.parametrize("name", DRIVER_FOLDERS)
def test_sample_config_validates_and_is_in_the_readme(name: str, tmp_path: Path) -> None:
    sample = (DRIVERS_DIR / name / "sample.conf").read_text(encoding="utf-8")
    config = parse_config(HEADER.format(state=tmp_path) + sample, f"{name}/sample.conf")
    assert [s.driver for s in config.sensor] and {s.driver for s in config.sensor} == {name}
    readme = (DRIVERS_DIR / name / "README.md").read_text(encoding="utf-8")
    assert sample.strip() in readme, f"{name}/README.md does not show sample.conf verbatim"
    assert "| " in readme and "Wiring" in readme, f"{name}/README.md has no wiring table"
    for sensor in config.sensor:
        driver = build(sensor)  # builds without touching hardware
        assert kind_of(sensor) in {"air", "water", "rain", "noise", "safety"}
        assert driver.kind == kind_of(sensor)


@pytest.mark.slow
def test_complete_sample_config_validates(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "agent", "sample-config"], cwd=REPO,
                          capture_output=True, text=True, check=True, timeout=60)
    config = parse_config(done.stdout, "sample")
    assert config.agent.id == "jkt-pi-gambir-01" and config.mqtt.tls is not None
    assert config.sensor == []  # every driver's sample is there, commented out
    for name in DRIVERS:
        assert f'# driver = "{name}"' in done.stdout


# -- config errors name the key and the line -----------------------------------------------

def _error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "agent.toml")
    return str(caught.value)


def test_unknown_key_is_named_with_its_line(tmp_path: Path) -> None:
    text = HEADER.format(state=tmp_path) + ('[mqtt]\nhost = "b"\n\n[[sensor]]\ndriver = "sds011"'
                                            '\n\n[[sensor]]\ndriver = "bme280"\nadress = 0x77\n')
    assert _error(text) == ("agent.toml:14: sensor 2 (bme280): unknown setting adress (did you "
                            "mean 'address'? bme280's settings: agent/drivers/bme280/README.md)")


def test_missing_and_wrong_values_are_named(tmp_path: Path) -> None:
    text = HEADER.format(state=tmp_path) + ('[mqtt]\nport = "eighty"\n\n[[sensor]]\n'
                                            'driver = "ultrasonic"\ntrigger_pin = 23\n')
    message = _error(text)
    assert "agent.toml:7: mqtt.port: Input should be a valid integer" in message
    assert "(got 'eighty')" in message
    assert "agent.toml:9: sensor 1 (ultrasonic): echo_pin: Field required" in message
    assert message.index("agent.toml:7") < message.index("agent.toml:9")  # in file order


def test_unknown_driver_and_bad_city_are_refused() -> None:
    assert "agent.toml:5: sensor 1 (sds012): unknown driver 'sds012' (did you mean 'sds011'?)" \
        in _error('[agent]\nid = "a"\ncity = "jakarta"\n[[sensor]]\ndriver = "sds012"\n')
    assert "agent.toml:3: agent.city: " in _error('[agent]\nid = "a"\ncity = "Jakarta Pusat"\n')
    assert _error("[agent\n").startswith("agent.toml:1:7: not valid TOML: ")


def test_device_ids_default_to_agent_id_and_kind(tmp_path: Path) -> None:
    config = parse_config(HEADER.format(state=tmp_path) + (
        '[[sensor]]\ndriver = "sds011"\n[[sensor]]\ndriver = "ultrasonic"\ntrigger_pin = 23\n'
        'echo_pin = 24\ndevice_id = "jkt-water-manggarai"\n'))
    assert [config.topic(kind_of(s), config.device_id(s)) for s in config.sensor] == [
        "kota/jakarta/air/jkt-pi-01-air", "kota/jakarta/water/jkt-water-manggarai"]
    assert config.topic("status", config.status_device) == "kota/jakarta/status/jkt-pi-01-status"


# -- command and DHT22 drivers ---------------------------------------------------------------

def _command(*args: str, kind: str = "air") -> CommandDriver:
    return CommandDriver(CommandConfig(driver="command", kind=kind, command=list(args),
                                       timeout_s=5))


def test_command_driver_reads_json_objects_and_arrays() -> None:
    single = _command(sys.executable, "-c", "print('{\"co\": 812, \"no2\": null}')")
    assert [r.fields for r in single.read()] == [{"co": 812.0}]
    batch = _command(sys.executable, "-c",
                     "import json; print(json.dumps([{'ts': 1764201600, 'laeq_db': 61.5},"
                     "{'ts': 1764201660, 'laeq_db': 63}]))", kind="noise")
    readings = batch.read()
    assert [(r.ts, r.fields) for r in readings] == [(1764201600.0, {"laeq_db": 61.5}),
                                                    (1764201660.0, {"laeq_db": 63.0})]


@pytest.mark.slow
@pytest.mark.parametrize(("code", "error"), [
    ("print('not json')", "printed no JSON"),
    ("import sys; sys.exit(3)", "exited with 3"),
    ("import time; time.sleep(10)", "timed out"),
    ("print('[1, 2]')", "expected a JSON object"),
])
def test_command_driver_failures_are_read_errors(code: str, error: str) -> None:
    driver = CommandDriver(CommandConfig(driver="command", kind="air",
                                         command=[sys.executable, "-c", code], timeout_s=1))
    with pytest.raises(SensorError, match=error):
        driver.read()


def test_command_driver_output_is_bounded() -> None:
    """Issue 10: 300 MB of output made the agent 605 MB in 0.9 s. Now the read stops at
    max_output_bytes, kills the command, and the agent's memory stays small."""
    import tracemalloc

    flood = ("import sys\nchunk = b'x' * (1 << 20)\n"
             "for _ in range(300):\n    sys.stdout.buffer.write(chunk)\n")
    driver = CommandDriver(CommandConfig(driver="command", kind="air",
                                         command=[sys.executable, "-c", flood], timeout_s=30))
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(SensorError, match=r"more than 1048576 bytes \(max_output_bytes\)"):
            driver.read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"the read held {peak} bytes"
    assert time.monotonic() - started < 10
    # stderr is read too (a command cannot block on a full pipe) and only its start is kept
    noisy = _command(sys.executable, "-c", "import sys; sys.stderr.write('e' * 5_000_000); "
                                           "print('{\"co\": 1}')")
    assert [r.fields for r in noisy.read()] == [{"co": 1.0}]


def test_dht22_reads_the_kernel_iio_files(tmp_path: Path) -> None:
    (tmp_path / "in_temp_input").write_text("29400\n")
    (tmp_path / "in_humidityrelative_input").write_text("78250\n")
    driver = Dht22(DhtConfig(driver="dht22", iio_device=tmp_path, retry_gap_s=0))
    driver.open()
    assert driver.read()[0].fields == {"temperature": 29.4, "humidity": 78.2}
    (tmp_path / "in_humidityrelative_input").unlink()  # what a failed read looks like
    with pytest.raises(SensorError, match="no reading after 3 tries"):
        driver.read()


def test_dht22_without_the_overlay_fails_to_open(tmp_path: Path) -> None:
    with pytest.raises(SensorError, match="dtoverlay=dht11"):
        Dht22(DhtConfig(driver="dht22", iio_device=tmp_path / "absent")).open()


# -- screening and queueing in the runner ----------------------------------------------------

def test_flagged_values_go_to_the_local_log_not_the_queue(tmp_path: Path) -> None:
    config = parse_config(HEADER.format(state=tmp_path))
    agent = Agent(config, clock=lambda: 1764201600.0)
    limits = {"pm25": (0.0, 999.9), "pm10": (0.0, 999.9)}
    seq = agent.enqueue("jkt-pi-01-air", Reading("air", {"pm25": 1500.0, "pm10": 40.0,
                                                         "ozone_ppb": 3.0}), limits)
    assert seq == 0
    rows = agent.queue.after(0, 10)
    assert [(r.topic, json.loads(r.payload)) for r in rows] == [
        ("kota/jakarta/air/jkt-pi-01-air", {"ts": 1764201600.0, "seq": 0, "pm10": 40.0})]
    flagged = [json.loads(line) for line in (tmp_path / "flagged.jsonl").read_text().splitlines()]
    assert flagged[0]["raw"] == {"pm25": 1500.0, "pm10": 40.0, "ozone_ppb": 3.0}
    assert set(flagged[0]["flags"]) == {"pm25", "ozone_ppb"}
    # a reading with nothing valid left is not queued at all
    assert agent.enqueue("jkt-pi-01-air", Reading("air", {"pm25": -1.0}), limits) is None
    assert agent.queue.depth == 1
    agent.queue.close()


def test_heartbeat_fields(tmp_path: Path) -> None:
    wireless = tmp_path / "wireless"
    wireless.write_text("Inter-| sta-|   Quality        |   Discarded packets\n"
                        " face | tus | link level noise |  nwid  crypt   frag\n"
                        "wlan0: 0000   54.  -56.  -256        0      0      0\n")
    assert rssi_dbm("wlan0", wireless) == -56.0
    assert rssi_dbm("wlan1", wireless) is None
    (tmp_path / "temp").write_text("48312\n")
    (tmp_path / "synced").write_text("")
    config = parse_config(HEADER.format(state=tmp_path) + (
        f'[heartbeat]\ncpu_temp_file = "{tmp_path / "temp"}"\n'
        f'clock_synced_file = "{tmp_path / "synced"}"\n'
        f'battery_command = ["{sys.executable}", "-c", "print(\'{{\\"battery_v\\": 12.6}}\')"]\n'))
    fields = collect(config.heartbeat, queue_depth=7, dropped=2)
    assert fields["cpu_temp_c"] == 48.3 and fields["clock_synced"] is True
    assert fields["queue_depth"] == 7.0 and fields["dropped"] == 2.0
    assert fields["battery_v"] == 12.6 and fields["online"] is True
    assert str(fields["firmware"]).startswith("kota-agent ")


# -- the command line ------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.slow
def test_cli_check_reads_each_sensor_once_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(HEADER.format(state=tmp_path) + (
        f'[[sensor]]\ndriver = "command"\nname = "gas"\nkind = "air"\n'
        f'command = ["{sys.executable}", "-c", "print(\'{{\\"co\\": 900, \\"no2\\": 20000}}\')"]\n'
        '[[sensor]]\ndriver = "dht22"\nname = "th"\n'
        f'iio_device = "{tmp_path / "nothing"}"\n'))
    done = _cli("check", "--config", str(config))
    assert done.returncode == 1, done.stderr  # one sensor failed
    assert "gas (jkt-pi-01-air, air): co=900.0" in done.stdout
    assert "FLAGGED no2=20000.0" in done.stdout
    assert "th (jkt-pi-01-air): FAILED" in done.stdout
    assert not (tmp_path / "queue.sqlite3").exists()  # check publishes nothing


@pytest.mark.slow
def test_cli_validate_and_config_errors(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(HEADER.format(state=tmp_path) + '[[sensor]]\ndriver = "sds011"\n')
    done = _cli("validate", "--config", str(config))
    assert done.returncode == 0
    assert "sensor 1 (sds011) → kota/jakarta/air/jkt-pi-01-air" in done.stdout
    config.write_text(HEADER.format(state=tmp_path) + '[[sensor]]\ndriver = "sds011"\nbaud = 1\n')
    done = _cli("run", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {config}:8: sensor 1 (sds011): unknown setting baud")
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_cli_help_teaches() -> None:
    done = _cli("--help")
    assert done.returncode == 0
    for word in ("sample-config", "validate", "check", "run", "systemctl", "QoS 1",
                 "Last Will"):
        assert word in done.stdout
    example = done.stdout.split("unknown one is an error):\n", 1)[1].split("\n\n", 1)[0]
    config = parse_config(textwrap.dedent(example), "--help example")
    assert [s.driver for s in config.sensor] == ["sds011"]


# -- docs and install files ------------------------------------------------------------------

def test_docs_show_every_drivers_wiring_table() -> None:
    doc = (REPO / "docs" / "agent.md").read_text(encoding="utf-8")
    for name in DRIVER_FOLDERS:
        readme = (DRIVERS_DIR / name / "README.md").read_text(encoding="utf-8")
        wiring = readme.split("## Wiring\n", 1)[1].split("\n## ", 1)[0].strip()
        assert wiring in doc, f"docs/agent.md: wiring of {name} differs from its README"


def test_install_script_and_unit_agree() -> None:
    install = REPO / "agent" / "install"
    script = (install / "install.sh").read_text(encoding="utf-8")
    unit = (install / "kota-agent.service").read_text(encoding="utf-8")
    subprocess.run(["bash", "-n", str(install / "install.sh")], check=True, timeout=30)
    assert "/opt/kota-agent/venv/bin/kota-agent run" in unit
    assert 'PREFIX=/opt/kota-agent' in script and '"$PREFIX/venv"' in script
    assert "User=kota-agent" in unit and "SERVICE_USER=kota-agent" in script
    assert "StateDirectory=kota-agent" in unit
    assert "Restart=always" in unit
    for group in ("dialout", "i2c", "gpio"):
        assert group in unit.split("SupplementaryGroups=")[1].splitlines()[0]


def test_safety_event_outside_the_kinds_list_is_flagged() -> None:
    from agent.runner import screen_for_kind

    reading = screen_for_kind(Reading("safety", {"event": "alien", "count": 1.0}), {})
    assert "event" in reading.flags and "event" not in reading.fields
    assert screen_for_kind(Reading("safety", {"event": "panic"}), {}).flags == {}
