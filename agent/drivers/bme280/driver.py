"""Bosch BME280 temperature / humidity / pressure sensor over I2C (smbus2), in forced mode.

The conversion from raw ADC values is the datasheet's own integer code (BME280 data sheet
BST-BME280-DS002, §4.2.3 "Compensation formulas": temperature in 32-bit, pressure in 64-bit,
humidity in 32-bit fixed point), transcribed line for line; Python integers do not overflow,
so the C casts that matter (``>>`` on signed values is arithmetic in both) behave the same.
Trimming parameters: §4.2.2 Table 16 (0x88–0xA1, 0xE1–0xE7). Forced mode (§3.3.3) takes one
measurement and sleeps, so the sensor does not warm itself between reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field

from agent.drivers.base import Limits, Reading, SensorConfig, SensorError

__all__ = ["Bme280", "Calibration", "Config", "compensate"]

CHIP_ID_REG, CTRL_HUM, STATUS, CTRL_MEAS, DATA = 0xD0, 0xF2, 0xF3, 0xF4, 0xF7
BME280_ID, BMP280_IDS = 0x60, (0x56, 0x57, 0x58)
OVERSAMPLING = {1: 1, 2: 2, 4: 3, 8: 4, 16: 5}


class Config(SensorConfig):
    driver: Literal["bme280"]
    bus: int = Field(default=1, ge=0, description="I2C bus number (/dev/i2c-1 on a Pi)")
    address: int = Field(default=0x76, description="0x76 (SDO to GND) or 0x77 (SDO to VDD)")
    interval_s: float = Field(default=60.0, gt=0, le=86400)
    oversampling: Literal[1, 2, 4, 8, 16] = Field(default=1, description="For T, P and H")


def _s16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


def _s12(value: int) -> int:
    return value - 0x1000 if value & 0x800 else value


@dataclass(frozen=True)
class Calibration:
    T1: int
    T2: int
    T3: int
    P1: int
    P2: int
    P3: int
    P4: int
    P5: int
    P6: int
    P7: int
    P8: int
    P9: int
    H1: int = 0
    H2: int = 0
    H3: int = 0
    H4: int = 0
    H5: int = 0
    H6: int = 0

    @classmethod
    def from_registers(cls, tp: bytes, h: bytes | None) -> Calibration:
        """``tp``: 26 bytes from 0x88; ``h``: 7 bytes from 0xE1 (None on a BMP280)."""
        words = [tp[i] | tp[i + 1] << 8 for i in range(0, 24, 2)]
        names = ["T1", "T2", "T3", "P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9"]
        unsigned = {"T1", "P1"}
        values = {name: word if name in unsigned else _s16(word)
                  for name, word in zip(names, words, strict=True)}
        if h is not None:
            values.update(H1=tp[25], H2=_s16(h[0] | h[1] << 8), H3=h[2],
                          H4=_s12(h[3] << 4 | (h[4] & 0x0F)), H5=_s12(h[5] << 4 | h[4] >> 4),
                          H6=h[6] - 256 if h[6] & 0x80 else h[6])
        return cls(**values)


def compensate(cal: Calibration, adc_t: int, adc_p: int,
               adc_h: int | None) -> dict[str, float]:
    """Raw ADC values → temperature (°C), pressure (hPa), humidity (%), datasheet §4.2.3."""
    var1 = (((adc_t >> 3) - (cal.T1 << 1)) * cal.T2) >> 11
    var2 = (((((adc_t >> 4) - cal.T1) * ((adc_t >> 4) - cal.T1)) >> 12) * cal.T3) >> 14
    t_fine = var1 + var2
    temperature = ((t_fine * 5 + 128) >> 8) / 100.0

    p1 = t_fine - 128000
    p2 = p1 * p1 * cal.P6
    p2 = p2 + ((p1 * cal.P5) << 17)
    p2 = p2 + (cal.P4 << 35)
    p1 = ((p1 * p1 * cal.P3) >> 8) + ((p1 * cal.P2) << 12)
    p1 = (((1 << 47) + p1) * cal.P1) >> 33
    result: dict[str, float] = {"temperature": temperature}
    if p1 != 0:  # avoid a division by zero (no calibration)
        p = 1048576 - adc_p
        p = (((p << 31) - p2) * 3125) // p1 if p >= 0 else -((((-p) << 31) + p2) * 3125 // p1)
        p1 = (cal.P9 * (p >> 13) * (p >> 13)) >> 25
        p2 = (cal.P8 * p) >> 19
        p = ((p + p1 + p2) >> 8) + (cal.P7 << 4)
        result["pressure"] = round(p / 256.0 / 100.0, 4)  # Q24.8 Pa → hPa

    if adc_h is not None:
        v = t_fine - 76800
        v = (((((adc_h << 14) - (cal.H4 << 20) - (cal.H5 * v)) + 16384) >> 15)
             * (((((((v * cal.H6) >> 10) * (((v * cal.H3) >> 11) + 32768)) >> 10)
                  + 2097152) * cal.H2 + 8192) >> 14))
        v = v - (((((v >> 15) * (v >> 15)) >> 7) * cal.H1) >> 4)
        v = min(max(v, 0), 419430400)
        result["humidity"] = round((v >> 12) / 1024.0, 3)  # Q22.10 %RH
    return result


class Bme280:
    kind: ClassVar[str] = "air"
    # Operating range (datasheet §1): -40..85 °C, 300..1100 hPa, 0..100 %RH.
    limits: ClassVar[Limits] = {"temperature": (-40.0, 85.0), "pressure": (300.0, 1100.0),
                                "humidity": (0.0, 100.0)}

    def __init__(self, config: Config, bus: Any = None) -> None:
        self.config = config
        self._bus = bus
        self._owns_bus = bus is None
        self.calibration: Calibration | None = None
        self.has_humidity = True

    def open(self) -> None:
        if self._bus is None:
            from smbus2 import SMBus

            self._bus = SMBus(self.config.bus)
        address = self.config.address
        chip = self._bus.read_byte_data(address, CHIP_ID_REG)
        if chip != BME280_ID and chip not in BMP280_IDS:
            raise SensorError(f"chip id 0x{chip:02x} at 0x{address:02x} is not a BME280 (0x60)")
        self.has_humidity = chip == BME280_ID
        tp = bytes(self._bus.read_i2c_block_data(address, 0x88, 26))
        h = bytes(self._bus.read_i2c_block_data(address, 0xE1, 7)) if self.has_humidity else None
        self.calibration = Calibration.from_registers(tp, h)

    def read(self) -> list[Reading]:
        if self.calibration is None or self._bus is None:
            raise SensorError("not open")
        osrs = OVERSAMPLING[self.config.oversampling]
        address = self.config.address
        if self.has_humidity:
            self._bus.write_byte_data(address, CTRL_HUM, osrs)  # takes effect with ctrl_meas
        self._bus.write_byte_data(address, CTRL_MEAS, osrs << 5 | osrs << 2 | 0b01)  # forced
        # Max measurement time at 16x: 1.25 + 3 × (2.3 × 16 + 0.575) ≈ 113 ms (datasheet §9.1)
        deadline = time.monotonic() + 0.5
        time.sleep(0.002)
        while self._bus.read_byte_data(address, STATUS) & 0x08:
            if time.monotonic() > deadline:
                raise SensorError("measurement did not finish in 0.5 s")
            time.sleep(0.005)
        data = bytes(self._bus.read_i2c_block_data(address, DATA, 8))
        adc_p = data[0] << 12 | data[1] << 4 | data[2] >> 4
        adc_t = data[3] << 12 | data[4] << 4 | data[5] >> 4
        adc_h = data[6] << 8 | data[7] if self.has_humidity else None
        if adc_t == 0x80000:
            raise SensorError("temperature not measured (reset value 0x80000)")
        values = compensate(self.calibration, adc_t, adc_p, adc_h)
        return [Reading(self.kind, {k: round(v, 2) for k, v in values.items()})]

    def close(self) -> None:
        if self._bus is not None and self._owns_bus:
            self._bus.close()
            self._bus = None
