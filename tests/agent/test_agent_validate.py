"""`kota-agent validate`, `check` and `run` on configs that cannot run and files that are broken:
one line per problem, naming file, line and setting, exit status 2, never a traceback; and on a
machine without GPIO, one line that says so instead of gpiozero's warnings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kota_testing import REPO

from agent.config import parse_config, problems
from agent.drivers import DRIVERS, DRIVERS_DIR, GPIO_DRIVERS, published_fields

HEADER = '[agent]\nid = "jkt-pi-01"\ncity = "jakarta"\nstate_dir = "{state}"\n'
SDS = '[[sensor]]\ndriver = "sds011"\n'
LINE = re.compile(r"^(error|warning): \S+?(:\d+)?: .+$")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=60, check=False)


def _write(tmp_path: Path, body: str) -> Path:
    config = tmp_path / "agent.toml"
    config.write_text(HEADER.format(state=tmp_path / "state") + body, encoding="utf-8")
    return config


def _refused(config: Path, command: str = "validate") -> list[str]:
    """stderr lines of a refused config, after checking the common promises."""
    done = _cli(command, "-c", str(config))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.splitlines()
    for line in lines:
        assert LINE.match(line), line
    return [line for line in lines if line.startswith("error: ")]


# -- what the schema cannot see --------------------------------------------------------------

@pytest.mark.slow
def test_missing_password_and_certificate_files_are_errors_with_their_line(
        tmp_path: Path) -> None:
    config = _write(tmp_path, (
        f'[mqtt]\nport = 8883\npassword_file = "{tmp_path}/nope.password"\n'   # line 7
        f'[mqtt.tls]\nca_file = "{tmp_path}"\n'                                 # line 9
        f'cert_file = "{tmp_path}/pi.crt"\nkey_file = "{tmp_path}/pi.key"\n' + SDS))
    errors = _refused(config)
    assert errors == [
        f"error: {config}:7: mqtt.password_file: {tmp_path}/nope.password: no such file",
        f"error: {config}:9: mqtt.tls.ca_file: {tmp_path}: is a folder, not a file",
        f"error: {config}:10: mqtt.tls.cert_file: {tmp_path}/pi.crt: no such file",
        f"error: {config}:11: mqtt.tls.key_file: {tmp_path}/pi.key: no such file",
    ]
    assert not (tmp_path / "state").exists()
    # run refuses the same file before it creates its queue
    assert _refused(config, "run") == errors
    assert not (tmp_path / "state").exists()


@pytest.mark.slow
def test_password_file_readable_by_everyone_is_refused(tmp_path: Path) -> None:
    password = tmp_path / "mqtt.password"
    password.write_text("s3cret\n")
    password.chmod(0o644)
    config = _write(tmp_path, f'[mqtt]\npassword_file = "{password}"\n' + SDS)
    plain = (f"warning: {config}:6: mqtt.password_file: the password is sent in clear text "
             f"over plain MQTT to 127.0.0.1:1883; add [mqtt.tls] and use port 8883")
    assert _refused(config) == [f"error: {config}:6: mqtt.password_file: {password} is "
                                f"readable by every user (chmod 0640, group kota-agent)"]
    assert _refused(config, "run") == _refused(config)
    assert not (tmp_path / "state").exists()
    # and the publisher never reads it either
    with pytest.raises(ValueError, match="readable by every user: refused"):
        parse_config(config.read_text(), str(config)).mqtt.resolved_password()
    password.chmod(0o640)
    done = _cli("validate", "-c", str(config))
    assert done.returncode == 0 and done.stderr == plain + "\n"
    password.write_text("\n")
    assert _refused(config)[0] == f"error: {config}:6: mqtt.password_file: {password} is empty"


@pytest.mark.slow
def test_two_sensors_publishing_one_field_of_one_device(tmp_path: Path) -> None:
    config = _write(tmp_path, (
        SDS                                                                 # line 5
        + '[[sensor]]\nname = "pm"\ndriver = "pms5003"\nport = "/dev/ttyAMA0"\n'  # line 7
        + '[[sensor]]\ndriver = "bme280"\n'                                 # line 11
        + '[[sensor]]\ndriver = "dht22"\ndevice_id = "jkt-pi-01-th"\n'      # own device: fine
        + '[[sensor]]\ndriver = "gpio_event"\npin = 17\nevent = "panic"\n'
        + '[[sensor]]\ndriver = "gpio_event"\npin = 27\nevent = "intrusion"\n'))
    assert _refused(config) == [
        f'error: {config}:7: sensor 1 (sds011) and sensor 2 "pm" (pms5003) both publish pm10, '
        f"pm25 of device jkt-pi-01-air (air): one would overwrite the other; give one of them "
        f"its own device_id"]


@pytest.mark.slow
def test_zero_sensors_is_an_error(tmp_path: Path) -> None:
    config = _write(tmp_path, '[mqtt]\nhost = "127.0.0.1"\n')
    errors = _refused(config)
    assert len(errors) == 1 and errors[0].startswith(f"error: {config}: no [[sensor]] table")
    assert _refused(config, "check") == errors
    # run still starts: an agent without sensors drains its queue and sends heartbeats
    found = problems(parse_config(config.read_text(), str(config)), need_sensors=False)
    assert [(p.warning, p.message.split(":")[0]) for p in found] == [
        (True, "no [[sensor]] table")]


@pytest.mark.slow
def test_sample_conf_is_refused_for_what_this_machine_lacks(tmp_path: Path) -> None:
    if Path("/etc/kota-agent/mqtt.password").exists():
        pytest.skip("this machine has the sample's password file")
    errors = _refused(REPO / "agent" / "sample.conf")
    assert any("no [[sensor]] table" in line for line in errors)
    assert any(":13: mqtt.password_file: /etc/kota-agent/mqtt.password: no such file" in line
               for line in errors)


def test_problems_lists_nothing_for_a_good_config(tmp_path: Path) -> None:
    config = parse_config(HEADER.format(state=tmp_path) + SDS, "agent.toml")
    assert problems(config) == []


def test_every_driver_says_which_fields_it_publishes() -> None:
    for name, module in DRIVERS.items():
        sample = (DRIVERS_DIR / name / "sample.conf").read_text(encoding="utf-8")
        config = parse_config(HEADER.format(state="/tmp") + sample, "sample")
        for sensor in config.sensor:
            fields = published_fields(sensor)
            if name == "gpio_event":
                assert fields == set()  # each event is a point of its own
            elif name != "command" or sensor.limits:
                assert fields, name
        uses_gpio = "_gpio" in (DRIVERS_DIR / name / "driver.py").read_text(encoding="utf-8")
        assert uses_gpio == (name in GPIO_DRIVERS), name
        assert module.DRIVER


# -- typos, wrong types and broken files: one line each, no traceback ------------------------

@pytest.mark.slow
def test_typo_in_mqtt_names_the_setting_and_no_driver_readme(tmp_path: Path) -> None:
    config = _write(tmp_path, '[mqtt]\nprot = 8883\n[mqtt.tls]\ncafile = "x"\n[mqqt]\n' + SDS)
    assert _refused(config) == [
        f"error: {config}:6: unknown setting mqtt.prot (did you mean 'port'?)",
        f"error: {config}:8: unknown setting mqtt.tls.cafile (did you mean 'ca_file'?)",
        f"error: {config}:9: unknown table [mqqt] (did you mean 'mqtt'?)",
    ]


@pytest.mark.slow
def test_typo_in_a_sensor_points_at_its_drivers_readme(tmp_path: Path) -> None:
    config = _write(tmp_path, SDS + '[[sensor]]\ndriver = "ultrasonic"\ntrigger_pin = 23\n'
                                    'echo_pin = 24\nmount_height = 300\n')
    assert _refused(config) == [
        f"error: {config}:11: sensor 2 (ultrasonic): unknown setting mount_height (did you "
        f"mean 'mount_height_cm'? ultrasonic's settings: agent/drivers/ultrasonic/README.md)"]


BROKEN = {
    "not TOML": ('[agent\nid = "a"\n', r":1:7: not valid TOML: "),
    "unclosed string": ('[agent]\nid = "a\n', r":2:\d+: not valid TOML: "),
    "wrong type": ('[agent]\nid = "a"\ncity = "jakarta"\n[queue]\nmax_readings = "lots"\n' + SDS,
                   r":5: queue.max_readings: Input should be a valid integer.* \(got 'lots'\)"),
    "out of range": ('[agent]\nid = "a"\ncity = "jakarta"\n[mqtt]\nport = 70000\n' + SDS,
                     r":5: mqtt.port: Input should be less than or equal to 65535"),
    "table is a value": ('mqtt = 1\n[agent]\nid = "a"\ncity = "jakarta"\n' + SDS,
                         r":1: mqtt: Input should be a valid dictionary"),
    "single brackets": ('[agent]\nid = "a"\ncity = "jakarta"\n[sensor]\ndriver = "sds011"\n',
                        r":4: sensor: write \[\[sensor\]\] \(two brackets\)"),
    "no agent table": ('[mqtt]\nhost = "b"\n' + SDS,
                       r": table \[agent\] missing \(it needs id and city\)"),
    "driver missing": ('[agent]\nid = "a"\ncity = "jakarta"\n[[sensor]]\nport = "/dev/x"\n',
                       r":4: sensor 1: driver missing"),
    "wrong sensor value": ('[agent]\nid = "a"\ncity = "jakarta"\n' + SDS + 'interval_s = -1\n',
                           r":6: sensor 1 \(sds011\): interval_s: Input should be greater"),
}


@pytest.mark.slow
@pytest.mark.parametrize("command", ["validate", "check", "run"])
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_files_get_one_line_each(tmp_path: Path, command: str, case: str) -> None:
    text, expected = BROKEN[case]
    config = tmp_path / "agent.toml"
    config.write_text(text, encoding="utf-8")
    errors = _refused(config, command)
    assert len(errors) == 1 and re.match(rf"error: {re.escape(str(config))}{expected}",
                                         errors[0]), errors


@pytest.mark.slow
@pytest.mark.parametrize("command", ["validate", "check", "run"])
def test_missing_unreadable_and_binary_files(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nope.toml"
    assert _refused(missing, command) == [
        f"error: {missing}: no such file (`kota-agent sample-config > {missing}` writes one "
        f"to start from)"]
    binary = tmp_path / "agent.toml"
    binary.write_bytes(b"[agent]\n\xff\xfe\x00")
    assert _refused(binary, command) == [
        f"error: {binary}:2: not a text file (not UTF-8: byte 0xff)"]
    done = _cli(command, "-c", str(tmp_path))  # a folder: click's own one-line usage error
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "is a directory" in done.stderr


# -- no GPIO here: one line, no gpiozero warnings ---------------------------------------------

GPIO_CONFIG = ('[[sensor]]\ndriver = "gpio_event"\npin = 17\nevent = "panic"\n'
               '[[sensor]]\ndriver = "command"\nname = "gas"\nkind = "air"\n'
               f'command = ["{sys.executable}", "-c", "print(\'{{\\"co\\": 1}}\')"]\n')


def _no_raw_warnings(stderr: str) -> None:
    for noise in ("Warning", "PinFactoryFallback", "Traceback", "Unable to load any default",
                  "warnings.warn"):
        assert noise not in stderr, stderr


@pytest.mark.slow
@pytest.mark.skipif(Path("/proc/device-tree/model").exists(), reason="this may be a Pi")
def test_without_gpio_validate_and_check_say_so_in_one_line(tmp_path: Path) -> None:
    config = _write(tmp_path, GPIO_CONFIG)
    done = _cli("validate", "-c", str(config))
    assert done.returncode == 0, done.stderr
    _no_raw_warnings(done.stderr)
    [line] = done.stderr.splitlines()
    assert line.startswith("warning: GPIO is unavailable here: sensor 1 (gpio_event) cannot be "
                           "read on this machine (")
    assert "python3-lgpio" in line and "GPIOZERO_PIN_FACTORY=mock" in line

    done = _cli("check", "-c", str(config))
    assert done.returncode == 1  # the GPIO sensor could not be read
    _no_raw_warnings(done.stderr)
    assert done.stderr.splitlines() == [line]
    assert "sensor 1 (gpio_event) (jkt-pi-01-safety): SKIPPED: no GPIO on this machine" \
        in done.stdout
    assert "gas (jkt-pi-01-air, air): co=1.0" in done.stdout  # the others are still read


@pytest.mark.slow
def test_with_the_mock_pin_factory_gpio_sensors_are_read(tmp_path: Path) -> None:
    config = _write(tmp_path, GPIO_CONFIG)
    done = _cli("check", "-c", str(config), env={"GPIOZERO_PIN_FACTORY": "mock"})
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "sensor 1 (gpio_event) (jkt-pi-01-safety): no event since start" in done.stdout


@pytest.mark.slow
def test_drivers_raise_one_sentence_without_gpio(tmp_path: Path) -> None:
    """In `run`, a GPIO sensor's open() fails with the same advice (logged, retried)."""
    script = (
        "import warnings, sys\n"
        "warnings.simplefilter('error')\n"  # any gpiozero warning that escaped would raise
        "from agent.drivers import build\n"
        "from agent.drivers.gpio_event.driver import Config\n"
        "from agent.drivers._gpio import GpioUnavailable\n"
        "driver = build(Config(driver='gpio_event', pin=17, event='panic'))\n"
        "try:\n    driver.open()\nexcept GpioUnavailable as exc:\n    print(exc)\n")
    environ = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=environ, text=True,
                          capture_output=True, timeout=60, check=False)
    if Path("/proc/device-tree/model").exists():
        pytest.skip("this may be a Pi")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith("GPIO is unavailable here (")
    assert "python3-lgpio" in done.stdout
