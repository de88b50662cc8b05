"""GPIO drivers (ultrasonic, rain gauge, panic button / PIR) on gpiozero's MockFactory.

The mock pins get a test-controlled clock (``ClockedPin``): gpiozero hands a pin's edge
timestamps to callbacks as ``ticks``, so echo durations and debounce intervals are exact here
instead of depending on how fast the test machine's threads run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin

from agent.drivers.gpio_event.driver import Config as EventConfig
from agent.drivers.gpio_event.driver import GpioEvent
from agent.drivers.rain_gauge.driver import Config as RainConfig
from agent.drivers.rain_gauge.driver import RainGauge
from agent.drivers.ultrasonic.driver import Config as SonarConfig
from agent.drivers.ultrasonic.driver import Ultrasonic, distance_cm, speed_of_sound
from agent.runner import screen_for_kind


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0


class ClockedPin(MockPin):
    """A MockPin whose edge timestamps come from the test's clock."""

    clock = Clock()

    def _change_state(self, value: bool) -> bool:
        if self._state != value:
            self._state = value
            self._last_change = self.clock.now
            return True
        return False


class SonarTriggerPin(ClockedPin):
    """TRIG of a fake ultrasonic sensor: after each trigger pulse, the echo pin goes high for
    the next scripted echo time (None = no echo)."""

    def __init__(self, factory: Any, info: Any, echo_pin: MockPin, echoes: list[float | None]
                 ) -> None:
        super().__init__(factory, info)
        self.echo_pin = echo_pin
        self.echoes = echoes
        self.pulses = 0

    def _set_state(self, value: bool) -> None:
        was = self._state
        super()._set_state(value)
        if was and not value:  # falling edge of the trigger pulse
            self.pulses += 1
            echo = self.echoes.pop(0) if self.echoes else None
            if echo is not None:
                self.clock.now += 0.0005
                self.echo_pin.drive_high()
                self.clock.now += echo
                self.echo_pin.drive_low()


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    previous = Device.pin_factory
    mock = MockFactory(pin_class=ClockedPin)
    Device.pin_factory = mock
    yield mock
    mock.reset()
    Device.pin_factory = previous


# -- ultrasonic ----------------------------------------------------------------------------

def test_speed_of_sound_is_corrected_for_air_temperature() -> None:
    assert speed_of_sound(0) == pytest.approx(331.3)
    assert speed_of_sound(30) == pytest.approx(349.0, abs=0.05)
    # the same echo reads 1.7 % longer at 30 °C than a 20 °C assumption would say
    assert distance_cm(0.01, 30) / distance_cm(0.01, 20) == pytest.approx(1.0168, abs=0.001)


def _sonar(factory: MockFactory, echoes: list[float | None], **overrides: Any
           ) -> tuple[Ultrasonic, SonarTriggerPin]:
    echo_pin = factory.pin(24)
    trigger = factory.pin(23, pin_class=SonarTriggerPin, echo_pin=echo_pin, echoes=echoes)
    config = SonarConfig.model_validate({"driver": "ultrasonic", "trigger_pin": 23,
                                         "echo_pin": 24, "pings": 5, "ping_gap_s": 0,
                                         "echo_timeout_s": 0.01, "air_temperature_c": 30,
                                         **overrides})
    driver = Ultrasonic(config)
    driver.open()
    return driver, trigger


def test_ultrasonic_median_of_pings_and_water_level(factory: MockFactory) -> None:
    c = speed_of_sound(30)
    echo_for = [2 * cm / 100 / c for cm in (250.0, 251.0, 900.0, 249.0, 30.0)]  # 2 outliers
    driver, trigger = _sonar(factory, list(echo_for), mount_height_cm=1200)
    try:
        reading = driver.read()[0]
    finally:
        driver.close()
    assert trigger.pulses == 5
    assert reading.kind == "water"
    assert reading.fields == {"distance_cm": 250.0, "level_cm": 950.0}


def test_ultrasonic_missing_echoes_are_skipped_until_too_many(factory: MockFactory) -> None:
    c = speed_of_sound(30)
    one_metre = 2 * 1.0 / c
    driver, trigger = _sonar(factory, [None, one_metre, one_metre, None, one_metre])
    try:
        assert driver.read()[0].fields == {"distance_cm": 100.0}
        trigger.echoes[:] = [None, None, None, one_metre, None]
        with pytest.raises(Exception, match="only 1 of 5 pings echoed"):
            driver.read()
    finally:
        driver.close()


def test_ultrasonic_beyond_its_range_is_flagged_and_gives_no_level(factory: MockFactory
                                                                   ) -> None:
    c = speed_of_sound(30)
    driver, _ = _sonar(factory, [2 * 5.0 / 100 / c] * 5, mount_height_cm=1200)  # 5 cm
    try:
        reading = screen_for_kind(driver.read()[0], driver.limits)
    finally:
        driver.close()
    assert reading.fields == {}  # JSN-SR04T blind zone is 20 cm: no level from a fault
    assert "outside the sensor's range 20..600" in reading.flags["distance_cm"]


# -- rain gauge ----------------------------------------------------------------------------

def test_rain_gauge_counts_debounced_tips(factory: MockFactory) -> None:
    driver = RainGauge(RainConfig(driver="rain_gauge", pin=17, mm_per_tip=0.2794))
    driver.open()
    pin = factory.pin(17)
    clock = ClockedPin.clock
    try:
        for start in (0.0, 6.0, 11.5):  # three tips, each with contact bounce
            for offset, level in ((0.0, False), (0.002, True), (0.004, False), (0.006, True),
                                  (0.03, False), (0.05, True)):
                clock.now = 2000.0 + start + offset
                pin.drive_low() if not level else pin.drive_high()
        first = driver.read()[0]
        second = driver.read()[0]
    finally:
        driver.close()
    assert first.kind == "rain"
    assert first.fields == {"rain_mm": 0.8382, "tips": 3.0}
    assert driver.bounces == 6
    assert second.fields == {"rain_mm": 0.0, "tips": 0.0}  # since the previous report


# -- panic button and PIR ------------------------------------------------------------------

def test_panic_button_press_is_one_event_until_hold_passes(factory: MockFactory) -> None:
    driver = GpioEvent(EventConfig(driver="gpio_event", pin=5, event="panic", hold_s=5,
                                   message="Pos RW 03"))
    driver.open()
    pin = factory.pin(5)
    clock = ClockedPin.clock
    try:
        assert driver.read() == []
        for at, low in ((0.0, True), (0.01, False), (0.02, True), (1.0, False),  # bounce
                        (7.0, True), (7.5, False)):
            clock.now = 3000.0 + at
            pin.drive_low() if low else pin.drive_high()
        readings = driver.read()
    finally:
        driver.close()
    assert [r.fields for r in readings] == [{"event": "panic", "count": 1.0,
                                             "message": "Pos RW 03"}] * 2
    assert all(r.ts is not None for r in readings)
    assert driver.ignored == 1


def test_pir_motion_is_an_intrusion_event(factory: MockFactory) -> None:
    driver = GpioEvent(EventConfig(driver="gpio_event", pin=6, event="intrusion",
                                   pull_up=False, hold_s=30))
    driver.open()
    pin = factory.pin(6)
    clock = ClockedPin.clock
    try:
        for at, high in ((0.0, True), (2.0, False), (10.0, True), (12.0, False),
                         (45.0, True)):
            clock.now = 4000.0 + at
            pin.drive_high() if high else pin.drive_low()
        readings = driver.read()
    finally:
        driver.close()
    assert [r.fields["event"] for r in readings] == ["intrusion", "intrusion"]
    assert all(screen_for_kind(r, driver.limits).flags == {} for r in readings)


def test_ultrasonic_uses_the_agents_measured_air_temperature(factory: MockFactory,
                                                             tmp_path: Any) -> None:
    from agent.config import parse_config
    from agent.drivers.base import Reading
    from agent.runner import Agent

    echo_s = 2 * 3.0 / speed_of_sound(30)  # 3 m at 30 °C
    driver, _ = _sonar(factory, [echo_s] * 10, air_temperature_c=20)
    agent = Agent(parse_config(f'[agent]\nid = "p"\ncity = "jakarta"\nstate_dir = "{tmp_path}"'))
    try:
        agent.share_context(driver)  # nothing measured yet: the configured 20 °C
        assert driver.read()[0].fields["distance_cm"] == pytest.approx(
            distance_cm(echo_s, 20), abs=0.05)
        agent.enqueue("p-air", Reading("air", {"temperature": 30.0}), {})  # a BME280 reading
        agent.share_context(driver)
        assert driver.read()[0].fields["distance_cm"] == 300.0
    finally:
        driver.close()
        agent.queue.close()


def test_a_flood_of_presses_beyond_the_pending_limit_is_counted_not_lost(
        factory: MockFactory) -> None:
    driver = GpioEvent(EventConfig(driver="gpio_event", pin=7, event="panic", hold_s=1))
    driver.max_pending = 3
    driver.open()
    pin = factory.pin(7)
    clock = ClockedPin.clock
    try:
        for press in range(5):  # five presses, 2 s apart: all past hold_s
            clock.now = 5000.0 + 2 * press
            pin.drive_low()
            clock.now += 0.5
            pin.drive_high()
        readings = driver.read()
    finally:
        driver.close()
    assert len(readings) == 3
    assert sum(float(r.fields["count"]) for r in readings) == 5.0
