"""I2C drivers (BME280, ADS1115 sound level) against fake smbus2 buses.

BME280: the compensation is checked against the worked example in Bosch's BMP280 data sheet
(BST-BMP280-DS001, §3.12 "Calculating pressure and temperature": trimming values dig_T1 =
27504 … dig_P9 = 6000, adc_T = 519888, adc_P = 415148 → T = 25.08 °C, p = 100653.27 Pa). The
BME280 uses the same temperature and pressure formulas and register map (BME280 data sheet
BST-BME280-DS002 §4.2.3 and §5.2 "Register compatibility to BMP280"). Humidity has no worked
example in the data sheet, so the integer code under test (§4.2.3) is checked against the data
sheet's other, floating-point formula (§8.1), written out independently in this file.
The data sheet PDF itself could not be opened here; the example's numbers (all twelve trimming
values, both raw readings, t_fine = 128422, 25.08 °C) agree with several independent public
implementations that quote it in their own tests.
"""

from __future__ import annotations

import struct
import time

import pytest

from agent.drivers.base import SensorError
from agent.drivers.bme280.driver import Bme280, Calibration, compensate
from agent.drivers.bme280.driver import Config as BmeConfig
from agent.drivers.sound.driver import Config as SoundConfig
from agent.drivers.sound.driver import SoundLevel, ads1115_config, laeq
from agent.runner import screen_for_kind

# BMP280 data sheet §3.12 example
T_P_TRIM = dict(T1=27504, T2=26435, T3=-1000, P1=36477, P2=-10685, P3=3024, P4=2855, P5=140,
                P6=-7, P7=15500, P8=-14600, P9=6000)
ADC_T, ADC_P = 519888, 415148
# Humidity trimming of a real BME280 (typical values; H4/H5 share register 0xE5)
H_TRIM = dict(H1=75, H2=362, H3=0, H4=333, H5=-30, H6=30)


class FakeBme280Bus:
    """Answers like a BME280 at one address: chip id, trimming and measurement registers."""

    def __init__(self, address: int, adc_t: int, adc_p: int, adc_h: int,
                 chip_id: int = 0x60) -> None:
        self.address = address
        self.registers = bytearray(256)
        self.registers[0xD0] = chip_id
        trim = T_P_TRIM
        self.registers[0x88:0xA0] = struct.pack(
            "<HhhHhhhhhhhh", *(trim[k] for k in ("T1", "T2", "T3", "P1", "P2", "P3", "P4",
                                                "P5", "P6", "P7", "P8", "P9")))
        h = H_TRIM
        self.registers[0xA1] = h["H1"]
        self.registers[0xE1:0xE3] = struct.pack("<h", h["H2"])
        self.registers[0xE3] = h["H3"]
        self.registers[0xE4] = (h["H4"] >> 4) & 0xFF
        self.registers[0xE5] = (h["H4"] & 0x0F) | ((h["H5"] & 0x0F) << 4)
        self.registers[0xE6] = (h["H5"] >> 4) & 0xFF
        self.registers[0xE7] = h["H6"] & 0xFF
        self.registers[0xF7:0xFA] = bytes([adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0xF) << 4])
        self.registers[0xFA:0xFD] = bytes([adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0xF) << 4])
        self.registers[0xFD:0xFF] = bytes([adc_h >> 8, adc_h & 0xFF])
        self.writes: list[tuple[int, int]] = []

    def read_byte_data(self, address: int, register: int) -> int:
        assert address == self.address
        return self.registers[register]

    def read_i2c_block_data(self, address: int, register: int, length: int) -> list[int]:
        assert address == self.address
        return list(self.registers[register:register + length])

    def write_byte_data(self, address: int, register: int, value: int) -> None:
        assert address == self.address
        self.writes.append((register, value))


def humidity_double(cal: Calibration, t_fine: int, adc_h: int) -> float:
    """BME280 data sheet §8.1, bme280_compensate_H_double, as printed."""
    var_h = t_fine - 76800.0
    var_h = (adc_h - (cal.H4 * 64.0 + cal.H5 / 16384.0 * var_h)) * (
        cal.H2 / 65536.0 * (1.0 + cal.H6 / 67108864.0 * var_h
                            * (1.0 + cal.H3 / 67108864.0 * var_h)))
    var_h = var_h * (1.0 - cal.H1 * var_h / 524288.0)
    return min(max(var_h, 0.0), 100.0)


def test_bme280_compensation_matches_the_datasheet_example() -> None:
    cal = Calibration(**T_P_TRIM, **H_TRIM)
    values = compensate(cal, ADC_T, ADC_P, None)
    assert values["temperature"] == 25.08
    # 100653.27 Pa in the data sheet (floating point); the 64-bit integer code gives
    # 100653.25 Pa — both are within 0.03 Pa of each other.
    assert values["pressure"] == pytest.approx(1006.5327, abs=0.0003)


@pytest.mark.parametrize("adc_h", [18000, 25000, 30000, 36000])
def test_bme280_integer_humidity_agrees_with_the_datasheet_double_formula(adc_h: int) -> None:
    cal = Calibration(**T_P_TRIM, **H_TRIM)
    t_fine = 128422  # the data sheet example's, for adc_T = 519888
    assert compensate(cal, ADC_T, ADC_P, adc_h)["humidity"] == pytest.approx(
        humidity_double(cal, t_fine, adc_h), abs=0.01)


def test_bme280_driver_reads_trimming_and_measurement_from_the_bus() -> None:
    bus = FakeBme280Bus(0x77, ADC_T, ADC_P, 25000)
    driver = Bme280(BmeConfig(driver="bme280", address=0x77, oversampling=2), bus=bus)
    driver.open()
    assert driver.calibration == Calibration(**T_P_TRIM, **H_TRIM)  # incl. the 0xE5 nibbles
    reading = driver.read()[0]
    driver.close()
    assert reading.kind == "air"
    assert reading.fields["temperature"] == 25.08
    assert reading.fields["pressure"] == 1006.53
    expected_h = humidity_double(driver.calibration, 128422, 25000)
    assert reading.fields["humidity"] == pytest.approx(expected_h, abs=0.01)
    # ctrl_hum before ctrl_meas (it only takes effect then); forced mode, x2 oversampling
    assert bus.writes == [(0xF2, 0b010), (0xF4, 0b010_010_01)]


def test_bme280_refuses_another_chip() -> None:
    driver = Bme280(BmeConfig(driver="bme280"), bus=FakeBme280Bus(0x76, ADC_T, ADC_P, 0,
                                                                  chip_id=0x55))
    with pytest.raises(SensorError, match="not a BME280"):
        driver.open()


def test_bme280_fault_reading_is_flagged() -> None:
    # adc_T near full scale: a broken sensor or bus, far beyond the -40..85 °C range
    bus = FakeBme280Bus(0x76, 0xFFFF0, ADC_P, 25000)
    driver = Bme280(BmeConfig(driver="bme280"), bus=bus)
    driver.open()
    reading = screen_for_kind(driver.read()[0], driver.limits)
    assert "temperature" in reading.flags and "temperature" not in reading.fields


class FakeAds1115Bus:
    """An ADS1115 whose input voltage per channel the test sets."""

    def __init__(self, volts: dict[int, float], full_scale_v: float = 4.096) -> None:
        self.volts = volts
        self.full_scale_v = full_scale_v
        self.config = 0x8583  # power-on default
        self.conversion = 0
        self.configs_written: list[int] = []

    def write_i2c_block_data(self, address: int, register: int, data: list[int]) -> None:
        assert address == 0x48 and register == 0x01
        self.config = data[0] << 8 | data[1]
        self.configs_written.append(self.config)
        channel = (self.config >> 12) & 0b011
        raw = round(self.volts[channel] / self.full_scale_v * 32768)
        self.conversion = max(-32768, min(32767, raw)) & 0xFFFF

    def read_i2c_block_data(self, address: int, register: int, length: int) -> list[int]:
        value = self.conversion if register == 0x00 else self.config | 0x8000
        return [value >> 8, value & 0xFF]

    def close(self) -> None:
        pass


def test_ads1115_config_word() -> None:
    # OS=1, MUX=100 (AIN0/GND), PGA=001 (±4.096 V), MODE=1, DR=100 (128 SPS), COMP_QUE=11
    assert ads1115_config(0, 4.096) == 0b1_100_001_1_100_0_0_0_11
    assert ads1115_config(3, 2.048) == 0b1_111_010_1_100_0_0_0_11


def test_laeq_is_an_energy_mean() -> None:
    assert laeq([60.0, 60.0]) == pytest.approx(60.0)
    assert laeq([50.0, 100.0]) == pytest.approx(96.99, abs=0.01)  # not 75


def test_sound_level_through_ads1115() -> None:
    bus = FakeAds1115Bus({1: 1.3})  # 1.3 V × 50 = 65 dBA
    driver = SoundLevel(SoundConfig(driver="sound", channel=1, sample_hz=100), bus=bus)
    driver.open()
    try:
        time.sleep(0.1)
        first = driver.read()[0]
        bus.volts[1] = 1.0
        time.sleep(0.05)  # some samples at 50 dBA …
        bus.volts[1] = 2.0
        time.sleep(0.05)  # … and some at 100 dBA
        second = driver.read()[0]
    finally:
        driver.close()
    assert first.kind == "noise"
    assert first.fields == {"laeq_db": 65.0, "lamax_db": 65.0}
    assert second.fields["lamax_db"] == 100.0
    assert 90.0 < second.fields["laeq_db"] < 100.0  # energy mean sits near the loud part
    assert all((word >> 12) & 0b111 == 0b101 for word in bus.configs_written)  # AIN1


def test_sound_level_outside_the_sensor_range_is_flagged() -> None:
    bus = FakeAds1115Bus({0: 0.2})  # 10 dBA: the SEN0232 cannot measure below 30
    driver = SoundLevel(SoundConfig(driver="sound", sample_hz=100), bus=bus)
    driver.open()
    try:
        time.sleep(0.05)
        reading = screen_for_kind(driver.read()[0], driver.limits)
    finally:
        driver.close()
    assert reading.fields == {}
    assert set(reading.flags) == {"laeq_db", "lamax_db"}
    assert reading.raw["laeq_db"] == 10.0
