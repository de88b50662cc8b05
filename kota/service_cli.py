"""The skeleton every service command shares (``kota ingest``, ``simulate``, ``api``,
``indicators``): load the settings, report bad ones in one line each and exit 2, set up logging,
run until SIGINT or SIGTERM.

kota/ never imports the services: each command passes its settings model and its run callable.

Exit codes, the same for every service command (:data:`EXIT_CODES`):

* 0: done, or stopped by SIGINT/SIGTERM
* 1: a failure while running (a broker or database that refuses us, a port taken)
* 2: bad settings, options or data files: nothing was started
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from pydantic import BaseModel

from kota.config import ConfigError, load_settings
from kota.logs import setup_logging

__all__ = ["EXIT_BAD_SETTINGS", "EXIT_CODES", "EXIT_FAILED", "LazyEpilogGroup", "fail",
           "load_or_exit", "logging_from", "run_until_signal", "serve"]

EXIT_FAILED = 1
EXIT_BAD_SETTINGS = 2

# For each command's --help epilog (click keeps the lines of a "\b" paragraph).
EXIT_CODES = ("\b\nExit codes: 0 done or stopped (SIGINT/SIGTERM); 1 failed while running; "
              "2 bad settings, options or data files.")

Model = TypeVar("Model", bound=BaseModel)


class LazyEpilogGroup(click.Group):
    """A command group whose epilog (the settings table) is built when its help is shown:
    building it imports the service's whole settings model, which a subcommand such as
    ``kota alerts deliver`` does not need (about 30 MB of imports per process)."""

    def __init__(self, *args: Any, epilog_factory: Callable[[], str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epilog_factory = epilog_factory

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.epilog is None:
            self.epilog = self._epilog_factory()
        super().format_epilog(ctx, formatter)


def fail(message: str | Sequence[str], code: int = EXIT_BAD_SETTINGS) -> NoReturn:
    """Print each line as ``error: ...`` on stderr and exit (2 unless told)."""
    lines = [message] if isinstance(message, str) else list(message)
    for text in lines:
        for line in str(text).splitlines() or [str(text)]:
            click.echo(f"error: {line}", err=True)
    sys.exit(code)


def load_or_exit(model: type[Model], section: str, config_file: str | Path | None,
                 overrides: Mapping[str, Any] | None = None) -> Model:
    """``kota.config.load_settings``; on bad settings one ``error:`` line each, exit 2."""
    try:
        return load_settings(model, section, config_file, overrides)
    except ConfigError as exc:
        fail(exc.problems)


def logging_from(settings: BaseModel) -> None:
    """Set up logging from a model's ``log_level``/``log_format`` (kota.settings.
    LoggingSettings); a model without them logs at info, as text."""
    setup_logging(getattr(settings, "log_level", "info"), getattr(settings, "log_format", "text"))


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` in a new event loop; SIGINT and SIGTERM set ``stop``."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await main(stop)

    asyncio.run(runner())


def serve(model: type[Model], section: str, config_file: str | Path | None,
          overrides: Mapping[str, Any] | None,
          run: Callable[[Model, asyncio.Event], Awaitable[None]]) -> None:
    """The whole skeleton: settings (exit 2 if bad), logging, ``run(settings, stop)``."""
    settings = load_or_exit(model, section, config_file, overrides)
    logging_from(settings)
    run_until_signal(lambda stop: run(settings, stop))
