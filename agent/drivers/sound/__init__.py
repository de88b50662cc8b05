"""Sound level (SEN0232 on an ADS1115 ADC): LAeq and LAmax per interval. See README.md."""

from agent.drivers.sound.driver import Config, SoundLevel

DRIVER = SoundLevel
__all__ = ["DRIVER", "Config", "SoundLevel"]
