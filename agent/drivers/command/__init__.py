"""Generic driver: run a command, read JSON. See README.md."""

from agent.drivers.command.driver import CommandDriver, Config

DRIVER = CommandDriver
__all__ = ["DRIVER", "CommandDriver", "Config"]
