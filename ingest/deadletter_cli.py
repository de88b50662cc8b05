"""``kota deadletter``: what ingest refused, read back from its dead-letter store (registered by
entry point in pyproject.toml)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from kota.config import ConfigError, find_config, load_settings, read_config
from kota.service_cli import fail

# Where `make demo` / `kota demo` writes its configuration (devstack/demo.py write_demo_config).
DEMO_CONFIG = Path("run/demo/kota.yaml")


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
        fail(exc.problems)
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


@click.command()
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

    from ingest.deadletter import STORE_REASONS
    from kota.payload import REASONS

    path, source = _deadletter_folder(folder, config_file)
    setting = "--dir" if folder else "ingest.deadletter.dir"
    if not path.exists():
        fail(f"{path}: no such folder ({source}); has ingest run with this configuration? "
             f"Give {'another --dir' if folder else '--config FILE or --dir FOLDER'}")
    if not path.is_dir():
        fail(f"{path}: not a folder ({setting}; {source})")
    try:
        records, unreadable = _read_letters(path)
    except OSError as exc:
        fail(f"{path}: cannot read the dead letters ({source}): {exc.strerror or exc}")
        return
    known = {**REASONS, **STORE_REASONS}
    if reason is not None and reason not in known:
        if any(r.get("reason") == reason for r in records):
            known[reason] = ""  # written by another version of ingest: still show it
        else:
            close = get_close_matches(reason, list(known), n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            fail(f"--reason {reason!r} is not a reason code{guess}; known: "
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
