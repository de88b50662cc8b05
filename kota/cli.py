"""The ``kota`` command line. ``kota --help`` lists the commands; each has its own --help."""

from __future__ import annotations

import os
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import click

from kota import __version__
from kota.config import (
    SETTINGS_ENTRY_POINTS,
    ConfigError,
    dump_settings,
    find_config,
    load_settings,
    read_config,
    registered_sections,
)
from kota.service_cli import fail

# Commands live beside their code and are registered as entry points in pyproject.toml
# ([project.entry-points."kota.commands"]); each is imported only when used (keeps `kota --help`
# fast and this package free of the services above it: docs/architecture.md).
COMMANDS_GROUP = "kota.commands"


def registered(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` by name, in the order pyproject.toml declares them (nothing
    is imported)."""
    found: dict[str, EntryPoint] = {}
    for entry in entry_points(group=group):
        found.setdefault(entry.name, entry)
    return found


def _module_present(module_name: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module_name) is not None
    except ModuleNotFoundError as exc:
        # The package is here but one of its dependencies is not: get_command says which.
        return not module_name.startswith(str(exc.name))


class LazyEntryPointGroup(click.Group):
    """A click group whose subcommands are the entry points of ``entry_point_group``, imported
    only when one is used (or its short help shown)."""

    def __init__(self, *args: Any, entry_point_group: str = COMMANDS_GROUP,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entry_point_group = entry_point_group

    def list_commands(self, ctx: click.Context) -> list[str]:
        present = [name for name, entry in registered(self.entry_point_group).items()
                   if _module_present(entry.module)]
        return sorted({*super().list_commands(ctx), *present})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = registered(self.entry_point_group).get(cmd_name)
        if entry is None or not _module_present(entry.module):
            return super().get_command(ctx, cmd_name)
        try:
            command: click.Command = entry.load()
        except ModuleNotFoundError as exc:
            return _needs_server(cmd_name, str(exc.name))
        return command


def _needs_server(name: str, missing: str) -> click.Command:
    """A stand-in for a command whose packages are not installed: on a Raspberry Pi only the
    agent's dependencies are (the `agent` extra). It is listed and says what to install."""
    message = (f"'kota {name}' needs the server packages (missing: {missing}): "
               "pip install 'kota-cerdas[server]'")

    def refuse() -> None:
        fail(message)

    return click.Command(name, callback=refuse, add_help_option=False,
                         short_help="(not installed: pip install 'kota-cerdas[server]')",
                         context_settings={"ignore_unknown_options": True,
                                           "allow_extra_args": True})


@click.group(cls=LazyEntryPointGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kota")
def main() -> None:
    """Kota Cerdas: air, water and streets of a city, live.

    \b
    Start here:
      make demo                     broker, InfluxDB, ingest and a simulated Jakarta
      kota simulate --help          publish a believable city over MQTT
      kota ingest --help            MQTT -> validated -> InfluxDB, losing nothing
      kota config check kota.example.yaml   validate a configuration file
      kota deadletter --summary     what ingest refused, and why

    Settings come from kota.yaml (or --config / $KOTA_CONFIG), then environment variables
    KOTA_<SECTION>__<KEY>, then options. Docs: docs/ in the repository.
    """


# -- config ----------------------------------------------------------------------------------
@main.group()
def config() -> None:
    """Check and show configuration files."""


def _sections() -> dict[str, EntryPoint]:
    """Every service's settings model, by its section in kota.yaml, in kota.example.yaml's order."""
    models = registered(SETTINGS_ENTRY_POINTS)
    return {name: models[name] for name in registered_sections() if name in models}


def _section_model(name: str) -> Any:
    return _sections()[name].load()


@config.command("check")
@click.argument("config_file", required=False, metavar="[FILE]")
def config_check(config_file: str | None) -> None:
    """Validate every section of FILE (default: $KOTA_CONFIG or ./kota.yaml).

    Each problem is one line naming the setting and its line, e.g.
    `kota.yaml:5: ingest.mqtt.prot: unknown setting (did you mean 'port'?)`. Environment
    variables KOTA_<SECTION>__... that are set are checked too, and named when wrong.
    Exit status 2 when anything is wrong. A commented example: kota.example.yaml.
    """
    try:
        path = find_config(config_file)
    except ConfigError as exc:
        fail(exc.problems)
        return
    if path is None:
        fail("no configuration file to check: give one (kota config check FILE), set "
             "$KOTA_CONFIG, or start from kota.example.yaml (cp kota.example.yaml kota.yaml)")
        return
    sections = _sections()
    parsed = read_config(path, tuple(sections))
    if parsed.fatal:
        fail(parsed.problems)
        return
    problems = list(parsed.problems)
    checked, skipped = [], []
    for name in sections:
        variables = sorted(key for key, value in os.environ.items()
                           if key.startswith(f"KOTA_{name.upper()}__") and value)
        if name not in parsed.document and not variables:
            skipped.append(name)
            continue
        checked.append(name)
        found = _section_problems(name, path, {})
        if not found and variables:
            found = _section_problems(name, path, None)
        found = [line for line in found if line not in parsed.problems]
        problems.extend(found)
        with_env = f" (with {', '.join(variables)} from the environment)" if variables else ""
        click.echo(f"{name}: {len(found)} problem(s)" if found else f"{name}: OK{with_env}")
    if problems:
        fail([*problems, f"{path}: {len(problems)} problem(s)"])
    defaults = f"; not in the file, defaults apply: {', '.join(skipped)}" if skipped else ""
    click.echo(f"{path}: valid (checked: {', '.join(checked) or 'nothing'}{defaults})")


def _section_problems(name: str, path: Path, environ: dict[str, str] | None) -> list[str]:
    try:
        load_settings(_section_model(name), name, path, environ=environ)
    except ConfigError as exc:
        return exc.problems
    return []


@config.command("show")
@click.argument("section", type=click.Choice(sorted(_sections())))
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Configuration file (default: $KOTA_CONFIG or ./kota.yaml).")
def config_show(section: str, config_file: str | None) -> None:
    """Print the effective settings of SECTION (file + environment + defaults)."""
    try:
        path = find_config(config_file)
        settings = load_settings(_section_model(section), section, path)
    except ConfigError as exc:
        fail(exc.problems)
        return
    click.echo(f"# {section}: defaults < {path or 'no configuration file'} < environment",
               err=True)
    click.echo(dump_settings(settings))


def configuration_markdown() -> str:
    """docs/configuration.md, generated from the settings models (a test keeps it current)."""
    from kota.settings_doc import settings_markdown

    parts = [
        "# Configuration\n",
        "Generated by `kota config docs` from the settings models; do not edit by hand.\n",
        "Each service reads its section of `kota.yaml` (or `--config FILE`, or `$KOTA_CONFIG`), "
        "then environment variables, then command-line options. Nested keys join with `__` in "
        "environment variables. Lists and mappings in the environment are written as YAML "
        "flow (`KOTA_INGEST__MQTT__TOPICS='[\"kota/#\"]'`). `kota config check FILE` validates "
        "a file: each problem is one line naming the setting and its line (or the environment "
        "variable). A commented example of every section: `kota.example.yaml` at the "
        "repository root (copy it to `kota.yaml`).\n",
    ]
    for name in _sections():
        parts.append(f"## `{name}:`\n")
        parts.append(settings_markdown(_section_model(name), name) + "\n")
    return "\n".join(parts)


@config.command("docs")
@click.option("--write", "write_to", type=click.Path(dir_okay=False),
              help="Write to this file instead of printing (e.g. docs/configuration.md).")
def config_docs(write_to: str | None) -> None:
    """Print every setting of every service as Markdown (source of docs/configuration.md)."""
    text = configuration_markdown()
    if write_to:
        Path(write_to).write_text(text, encoding="utf-8")
        click.echo(f"wrote {write_to}", err=True)
    else:
        click.echo(text, nl=False)


if __name__ == "__main__":
    main()
