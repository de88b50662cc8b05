"""SDS011 and PMS5003/7003 drivers fed real byte frames through a pseudo-terminal.

A fake sensor thread sits on the pty's master side: it reads the driver's commands (so duty
cycling and passive mode are checked byte for byte) and answers with scripted bytes — valid
frames, corrupted checksums, truncated frames and garbage — to check that the driver verifies
every frame and resynchronises on the next good one.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.drivers.base import SensorError
from agent.drivers.pms5003.driver import PASSIVE, READ, SLEEP, WAKE, Pms5003, PmsFrames
from agent.drivers.pms5003.driver import Config as PmsConfig
from agent.drivers.sds011.driver import Config as SdsConfig
from agent.drivers.sds011.driver import Sds011, Sds011Frames, decode, work_command
from agent.runner import screen_for_kind


def sds_frame(pm25: float, pm10: float, *, corrupt: bool = False) -> bytes:
    raw25, raw10 = round(pm25 * 10), round(pm10 * 10)
    data = bytes([raw25 & 0xFF, raw25 >> 8, raw10 & 0xFF, raw10 >> 8, 0x12, 0x34])
    checksum = (sum(data) + (1 if corrupt else 0)) & 0xFF
    return b"\xaa\xc0" + data + bytes([checksum]) + b"\xab"


SDS_REPLY = b"\xaa\xc5\x06\x01\x01\x00\x12\x34\x4e\xab"  # answer to "set work", skipped


def pms_frame(pm1: int, pm25: int, pm10: int, *, cf1: tuple[int, int, int] = (1, 2, 3),
              corrupt: bool = False) -> bytes:
    words = [*cf1, pm1, pm25, pm10, 900, 300, 60, 10, 2, 1, 0x9700]
    body = b"\x42\x4d" + (28).to_bytes(2, "big") + b"".join(
        w.to_bytes(2, "big") for w in words)
    checksum = (sum(body) + (7 if corrupt else 0)) & 0xFFFF
    return body + checksum.to_bytes(2, "big")


PMS_ACK = bytes.fromhex("424d0004e1000174")  # reply to "passive mode", skipped


class FakeSensor:
    """The master side of a pty: records commands, answers via ``respond(command)``."""

    def __init__(self, command_length: int, respond: Callable[[bytes], bytes]) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.command_length = command_length
        self.respond = respond
        self.commands: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                pending += os.read(self.master, 256)
            except OSError:
                return
            while len(pending) >= self.command_length:
                command, pending = (pending[:self.command_length],
                                    pending[self.command_length:])
                self.commands.append(command)
                answer = self.respond(command)
                for start in range(0, len(answer), 7):  # in dribs, as a UART delivers
                    os.write(self.master, answer[start:start + 7])

    def received(self, count: int, timeout_s: float = 3.0) -> list[bytes]:
        """The commands, once at least ``count`` arrived (bounded wait)."""
        deadline = time.monotonic() + timeout_s
        while len(self.commands) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.commands)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def fake_sensor() -> Iterator[Callable[[int, Callable[[bytes], bytes]], FakeSensor]]:
    made: list[FakeSensor] = []

    def make(command_length: int, respond: Callable[[bytes], bytes]) -> FakeSensor:
        made.append(FakeSensor(command_length, respond))
        return made[-1]

    yield make
    for sensor in made:
        sensor.close()


# -- SDS011 --------------------------------------------------------------------------------

def _sds(path: str, **overrides: object) -> Sds011:
    config = SdsConfig.model_validate({"driver": "sds011", "port": path, "warmup_s": 0,
                                       "samples": 2, "timeout_s": 2, **overrides})
    return Sds011(config)


def test_sds011_duty_cycle_and_average_of_valid_frames(fake_sensor) -> None:
    wake = work_command(1)
    sensor = fake_sensor(19, lambda c: SDS_REPLY + sds_frame(12.3, 45.6)
                         + sds_frame(14.5, 50.0) if c == wake else b"")
    driver = _sds(sensor.path)
    driver.open()
    try:
        readings = driver.read()
    finally:
        driver.close()
    assert [r.fields for r in readings] == [{"pm25": 13.4, "pm10": 47.8}]
    assert readings[0].kind == "air"
    sleep = work_command(0)
    assert sleep == bytes.fromhex("aab406010000000000000000000000ffff05ab")
    assert wake == bytes.fromhex("aab406010100000000000000000000ffff06ab")
    # asleep after open, awake only for the read, asleep again straight after it
    assert sensor.received(4) == [sleep, wake, sleep, sleep]  # the last from close()


def test_sds011_skips_corrupt_and_truncated_frames_and_resynchronises(fake_sensor) -> None:
    stream = (b"\x00\x13\xab\xaa"  # garbage, including a lone header byte
              + sds_frame(99.9, 99.9, corrupt=True)
              + sds_frame(88.8, 88.8)[:6]  # truncated: the rest never came
              + sds_frame(20.0, 30.0)
              + b"\xaa\xc0\x01"  # another torn start
              + sds_frame(22.0, 34.0))
    sensor = fake_sensor(19, lambda c: stream if c == work_command(1) else b"")
    driver = _sds(sensor.path)
    driver.open()
    try:
        readings = driver.read()
    finally:
        driver.close()
    assert readings[0].fields == {"pm25": 21.0, "pm10": 32.0}
    assert driver.scanner.bad_frames >= 2


@pytest.mark.slow
def test_sds011_without_a_valid_frame_fails_the_read(fake_sensor) -> None:
    garbage = sds_frame(10, 10, corrupt=True) * 3 + sds_frame(10, 10)[:9]
    sensor = fake_sensor(19, lambda c: garbage if c == work_command(1) else b"")
    driver = _sds(sensor.path, timeout_s=0.5)
    driver.open()
    try:
        with pytest.raises(SensorError, match="no valid SDS011 frame"):
            driver.read()
    finally:
        driver.close()
    assert sensor.received(4)[2] == work_command(0)  # put back to sleep even after a failure


def test_sds011_value_beyond_its_range_is_flagged_not_published(fake_sensor) -> None:
    sensor = fake_sensor(19, lambda c: sds_frame(1200.0, 40.0) if c == work_command(1) else b"")
    driver = _sds(sensor.path, samples=1)
    driver.open()
    try:
        reading = screen_for_kind(driver.read()[0], driver.limits)
    finally:
        driver.close()
    assert reading.fields == {"pm10": 40.0}
    assert "outside the sensor's range 0..999.9" in reading.flags["pm25"]


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=12),
       noise=st.binary(max_size=20).filter(lambda b: 0xAA not in b))
def test_sds011_scanner_finds_every_frame_however_the_bytes_are_split(cuts, noise) -> None:
    frames = [sds_frame(float(i), float(2 * i)) for i in range(5)]
    stream = noise + b"".join(f + noise for f in frames)
    scanner, found, position = Sds011Frames(), [], 0
    for cut in [*cuts, len(stream)]:
        found += list(scanner.feed(stream[position:position + cut]))
        position += cut
    found += list(scanner.feed(stream[position:]))
    assert [decode(f) for f in found] == [decode(f) for f in frames]


# -- PMS5003 / PMS7003 ---------------------------------------------------------------------

def _pms(path: str, **overrides: object) -> Pms5003:
    config = PmsConfig.model_validate({"driver": "pms5003", "port": path, "warmup_s": 0,
                                       "sample_gap_s": 0, "samples": 2, "timeout_s": 1,
                                       **overrides})
    return Pms5003(config)


def _scripted(answers: list[bytes]) -> Callable[[bytes], bytes]:
    remaining = list(answers)

    def respond(command: bytes) -> bytes:
        if command == PASSIVE:
            return PMS_ACK
        if command == READ and remaining:
            return remaining.pop(0)
        return b""

    return respond


def test_pms5003_passive_mode_duty_cycle_and_atmospheric_values(fake_sensor) -> None:
    sensor = fake_sensor(7, _scripted([pms_frame(8, 15, 22), pms_frame(10, 17, 24)]))
    driver = _pms(sensor.path)
    driver.open()
    try:
        readings = driver.read()
    finally:
        driver.close()
    assert readings[0].fields == {"pm1": 9.0, "pm25": 16.0, "pm10": 23.0}
    assert bytes.fromhex("424de100000170") == PASSIVE
    assert bytes.fromhex("424de200000171") == READ
    assert sensor.received(8) == [PASSIVE, SLEEP, WAKE, PASSIVE, READ, READ, SLEEP, SLEEP]


def test_pms7003_skips_corrupt_and_truncated_frames_and_resynchronises(fake_sensor) -> None:
    answers = [b"\x42\x00\x4d" + pms_frame(50, 60, 70, corrupt=True) + pms_frame(5, 6, 7)[:20]
               + pms_frame(11, 21, 31),
               b"BM\x00\x1c\x00" + pms_frame(13, 23, 33)]
    sensor = fake_sensor(7, _scripted(answers))
    driver = _pms(sensor.path, model="pms7003")
    driver.open()
    try:
        readings = driver.read()
    finally:
        driver.close()
    assert readings[0].fields == {"pm1": 12.0, "pm25": 22.0, "pm10": 32.0}
    assert driver.scanner.bad_frames >= 2


@pytest.mark.slow
def test_pms5003_cf1_values_on_request(fake_sensor) -> None:
    sensor = fake_sensor(7, _scripted([pms_frame(8, 15, 22, cf1=(9, 16, 25))]))
    driver = _pms(sensor.path, samples=1, values="cf1", duty_cycle=False)
    driver.open()
    try:
        assert driver.read()[0].fields == {"pm1": 9.0, "pm25": 16.0, "pm10": 25.0}
    finally:
        driver.close()
    assert sensor.received(3, timeout_s=0.3) == [PASSIVE, READ]  # no wake, no sleep


@pytest.mark.slow
def test_pms5003_silent_sensor_fails_the_read_in_bounded_time(fake_sensor) -> None:
    sensor = fake_sensor(7, _scripted([pms_frame(1, 2, 3, corrupt=True)]))
    driver = _pms(sensor.path, timeout_s=0.3)
    driver.open()
    started = time.monotonic()
    try:
        with pytest.raises(SensorError, match="no valid PMS5003 frame"):
            driver.read()
    finally:
        driver.close()
    assert time.monotonic() - started < 3
    assert sensor.received(7)[:7] == [PASSIVE, SLEEP, WAKE, PASSIVE, READ, READ, SLEEP]


def test_pms_scanner_accepts_command_replies_but_decodes_only_data_frames() -> None:
    scanner = PmsFrames()
    frames = list(scanner.feed(PMS_ACK + pms_frame(1, 2, 3)))
    assert [len(f) for f in frames] == [8, 32]
