"""The ``kota`` command line. ``kota --help`` lists the commands; each has its own --help."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from kota import __version__
from kota.config import ConfigError, dump_settings, find_config, load_settings, read_config


def _fail(message: str | list[str]) -> NoReturn:
    """Print each problem as one ``error:`` line on stderr and exit with status 2."""
    lines = message if isinstance(message, list) else message.splitlines() or [message]
    for line in lines:
        click.echo(f"error: {line}", err=True)
    sys.exit(2)


# Commands that live beside their code, imported only when used (keeps `kota --help` fast).
LAZY_COMMANDS: dict[str, str] = {
    "ingest": "ingest.cli:ingest",
    "simulate": "simulators.cli:simulate",
    "bench": "kota.bench.cli:bench",
    "ispu": "kota.indices.cli:ispu",
    "siaga": "kota.indices.cli:siaga",
    "indicators": "indicators.cli:indicators",
    "api": "api.cli:api",
    "dashboards": "dashboards.cli:dashboards",
    "broker": "kota.broker_cli:broker",
}


def _module_present(target: str) -> bool:
    from importlib.util import find_spec

    module_name = target.partition(":")[0]
    try:
        return find_spec(module_name) is not None
    except ModuleNotFoundError as exc:
        # The package is here but one of its dependencies is not: get_command says which.
        return not module_name.startswith(str(exc.name))


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        present = [name for name, target in LAZY_COMMANDS.items() if _module_present(target)]
        return sorted([*super().list_commands(ctx), *present])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None or not _module_present(target):
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = target.partition(":")
        try:
            module = __import__(module_name, fromlist=[attribute])
        except ModuleNotFoundError as exc:
            return _needs_server(cmd_name, str(exc.name))
        command: click.Command = getattr(module, attribute)
        return command


def _needs_server(name: str, missing: str) -> click.Command:
    """A stand-in for a command whose packages are not installed: on a Raspberry Pi only the
    agent's dependencies are (the `agent` extra). It is listed and says what to install."""
    message = (f"'kota {name}' needs the server packages (missing: {missing}): "
               "pip install 'kota-cerdas[server]'")

    def refuse() -> None:
        _fail(message)

    return click.Command(name, callback=refuse, add_help_option=False,
                         short_help="(not installed: pip install 'kota-cerdas[server]')",
                         context_settings={"ignore_unknown_options": True,
                                           "allow_extra_args": True})


@click.group(cls=_LazyGroup,
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


# -- demo ------------------------------------------------------------------------------------
@main.command()
@click.option("--run-dir", type=click.Path(file_okay=False), default="run/demo", show_default=True,
              help="Where the broker, database, logs and generated config live.")
@click.option("--history", type=click.Choice(["backfill", "replay", "none"]),
              default="backfill", show_default=True,
              help="The past --days: backfill = written straight to InfluxDB in seconds, then "
                   "live; replay = published at --speed through MQTT, then live; none = live.")
@click.option("--speed", type=float, default=60.0, show_default=True,
              help="With --history replay: simulated seconds per real second (60: a day in "
                   "24 minutes).")
@click.option("--days", type=float, default=1.0, show_default=True,
              help="Simulated days of history (replay: per simulator run; it restarts).")
def demo(run_dir: str, history: str, speed: float, days: float) -> None:
    """Run broker, InfluxDB, ingest and a simulated Jakarta on loopback. Ctrl-C stops all.

    Nothing touches the system's own Mosquitto or InfluxDB: the demo starts private copies
    (preferring ports 1883 and 8086, else free ones) with their data under RUN_DIR. The last
    day is backfilled in seconds, so the live page is current from the start.
    """
    from kota.demo import Demo

    stop = {"requested": False}

    def request_stop(_signum: int, _frame: object) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    runner = Demo(Path(run_dir), speed, days * 86400, lambda text: click.echo(text, err=True),
                  history)
    try:
        runner.start()
        click.echo(runner.banner())
        runner.supervise(lambda: stop["requested"])
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        click.echo(f"error: {exc}", err=True)
        click.echo("Run `make services` to install Mosquitto and InfluxDB.", err=True)
    finally:
        runner.stop()


# -- config ----------------------------------------------------------------------------------
@main.group()
def config() -> None:
    """Check and show configuration files."""


# Every service's settings model, by its section in kota.yaml.
SECTIONS: dict[str, str] = {
    "ingest": "ingest.settings:IngestSettings",
    "simulate": "simulators.settings:SimulateSettings",
    "api": "api.settings:ApiSettings",
    "indicators": "indicators.settings:IndicatorSettings",
}


def _section_model(name: str) -> Any:
    module_name, _, attribute = SECTIONS[name].partition(":")
    module = __import__(module_name, fromlist=[attribute])
    return getattr(module, attribute)


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
        _fail(exc.problems)
        return
    if path is None:
        _fail("no configuration file to check: give one (kota config check FILE), set "
              "$KOTA_CONFIG, or start from kota.example.yaml (cp kota.example.yaml kota.yaml)")
        return
    parsed = read_config(path)
    if parsed.fatal:
        _fail(parsed.problems)
        return
    problems = list(parsed.problems)
    checked, skipped = [], []
    for name in SECTIONS:
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
        _fail([*problems, f"{path}: {len(problems)} problem(s)"])
    defaults = f"; not in the file, defaults apply: {', '.join(skipped)}" if skipped else ""
    click.echo(f"{path}: valid (checked: {', '.join(checked) or 'nothing'}{defaults})")


def _section_problems(name: str, path: Path, environ: dict[str, str] | None) -> list[str]:
    try:
        load_settings(_section_model(name), name, path, environ=environ)
    except ConfigError as exc:
        return exc.problems
    return []


@config.command("show")
@click.argument("section", type=click.Choice(sorted(SECTIONS)))
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Configuration file (default: $KOTA_CONFIG or ./kota.yaml).")
def config_show(section: str, config_file: str | None) -> None:
    """Print the effective settings of SECTION (file + environment + defaults)."""
    try:
        path = find_config(config_file)
        settings = load_settings(_section_model(section), section, path)
    except ConfigError as exc:
        _fail(exc.problems)
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
    for name in SECTIONS:
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


# -- dead letters ----------------------------------------------------------------------------
# Where `make demo` / `kota demo` writes its configuration (kota/demo.py write_demo_config).
DEMO_CONFIG = Path("run/demo/kota.yaml")
# Reasons the store holds besides the parser's (kota.payload.REASONS): ingest/service.py.
STORE_REASONS: dict[str, str] = {
    "influx_refused": "InfluxDB refused a validated batch (HTTP 400)",
}


def _deadletter_folder(folder: str | None, config_file: str | None) -> tuple[Path, str]:
    """The folder to read and, in words, where that choice came from."""
    if folder:
        return Path(folder), "--dir"
    if (not config_file and not os.environ.get("KOTA_CONFIG") and not Path("kota.yaml").exists()
            and DEMO_CONFIG.is_file()):
        click.echo(f"no kota.yaml here; reading the demo's {DEMO_CONFIG}", err=True)
        config_file = str(DEMO_CONFIG)
    from ingest.settings import IngestSettings

    try:
        path = find_config(config_file)
        settings = load_settings(IngestSettings, "ingest", path)
    except ConfigError as exc:
        _fail(exc.problems)
    variable = "KOTA_INGEST__DEADLETTER__DIR"
    if os.environ.get(variable):
        source = f"ingest.deadletter.dir from ${variable}"
    elif path is not None and (line := read_config(path).lines.get(
            ("ingest", "deadletter", "dir"))):
        source = f"ingest.deadletter.dir in {path}:{line}"
    else:
        where = f"not set in {path}" if path else "no kota.yaml here, no --config"
        source = f"ingest.deadletter.dir default; {where}"
    return Path(settings.deadletter.dir), source


def _read_letters(folder: Path) -> tuple[list[dict[str, Any]], int]:
    """Every record under ``folder`` (and the numbered folders of `kota ingest --workers`),
    oldest file first, and how many lines could not be read (a crash mid-line)."""
    import orjson

    def part_order(path: Path) -> tuple[str, int]:  # deadletter-YYYYMMDD-NNN: -1000 after -999
        _, day, number = [*path.stem.split("-", 2), "", ""][:3]
        return day, int(number) if number.isdigit() else -1

    folders = [folder, *sorted((child for child in folder.iterdir()
                                if child.is_dir() and child.name.isdigit()),
                               key=lambda child: int(child.name))]
    files = [file for each in folders
             for file in sorted(each.glob("deadletter-*.jsonl"), key=part_order)]
    records: list[dict[str, Any]] = []
    unreadable = 0
    for file in files:
        with file.open("rb") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    unreadable += 1
                    continue
                if isinstance(record, dict):
                    records.append(record)
                else:
                    unreadable += 1
    return records, unreadable


def _device(record: dict[str, Any]) -> str:
    parts = str(record.get("topic") or "").split("/")
    if len(parts) == 4 and parts[3]:
        return parts[3]
    return "(no device: InfluxDB batch)" if not record.get("topic") else "(no device in topic)"


@main.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Configuration file whose ingest.deadletter.dir to read (default: "
                   "$KOTA_CONFIG, ./kota.yaml, else the demo's run/demo/kota.yaml).")
@click.option("--dir", "folder", type=click.Path(),
              help="The dead-letter folder itself, instead of ingest.deadletter.dir.")
@click.option("--reason", help="Only this reason code (e.g. out_of_range; docs/protocol.md).")
@click.option("--summary", is_flag=True,
              help="Counts per reason and per device, and a total, instead of records.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Records to print (the newest).")
def deadletter(config_file: str | None, folder: str | None, reason: str | None, summary: bool,
               limit: int) -> None:
    """Show what ingest refused: reason, detail and the raw payload of each message.

    The folder is --dir, else ingest.deadletter.dir of the configuration (as `kota ingest`
    reads it); after `make demo`, with no kota.yaml here, the demo's run/demo/kota.yaml.
    Records go to stdout as JSON lines; which folder was read goes to stderr.

    \b
    Examples:
      kota deadletter --summary                     # counts per reason and per device
      kota deadletter --reason out_of_range --limit 5
      kota deadletter --dir /var/lib/kota/deadletter --summary
    """
    import json
    from collections import Counter
    from difflib import get_close_matches

    from kota.payload import REASONS

    path, source = _deadletter_folder(folder, config_file)
    setting = "--dir" if folder else "ingest.deadletter.dir"
    if not path.exists():
        _fail(f"{path}: no such folder ({source}); has ingest run with this configuration? "
              f"Give {'another --dir' if folder else '--config FILE or --dir FOLDER'}")
    if not path.is_dir():
        _fail(f"{path}: not a folder ({setting}; {source})")
    try:
        records, unreadable = _read_letters(path)
    except OSError as exc:
        _fail(f"{path}: cannot read the dead letters ({source}): {exc.strerror or exc}")
        return
    known = {**REASONS, **STORE_REASONS}
    if reason is not None and reason not in known:
        if any(r.get("reason") == reason for r in records):
            known[reason] = ""  # written by another version of ingest: still show it
        else:
            close = get_close_matches(reason, list(known), n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(f"--reason {reason!r} is not a reason code{guess}; known: "
                  + ", ".join(known))
    click.echo(f"reading {path} ({source})", err=True)
    if unreadable:
        click.echo(f"warning: {unreadable} line(s) in {path} are not JSON records (skipped)",
                   err=True)
    if reason is not None:
        records = [r for r in records if r.get("reason") == reason]
    only = f" with reason {reason}" if reason else ""
    if summary:
        by_reason = Counter(str(r.get("reason")) for r in records)
        by_device = Counter(_device(r) for r in records)
        if records:
            click.echo("by reason:")
            for name, count in by_reason.most_common():
                click.echo(f"{count:8d}  {name:20s} {known.get(name, '')}".rstrip())
            click.echo("by device:")
            shown = by_device.most_common(20)
            for name, count in shown:
                click.echo(f"{count:8d}  {name}")
            if len(by_device) > len(shown):
                rest = sum(by_device.values()) - sum(count for _, count in shown)
                click.echo(f"{rest:8d}  ({len(by_device) - len(shown)} more devices)")
        click.echo(f"{len(records)} dead letters{only} in {path} ({len(by_reason)} reasons, "
                   f"{len(by_device)} devices)")
        return
    for record in records[-limit:] if limit else []:
        click.echo(json.dumps(record, ensure_ascii=False))
    click.echo(f"{len(records)} dead letters{only} in {path} (showing the last "
               f"{min(limit, len(records))})", err=True)


if __name__ == "__main__":
    main()
