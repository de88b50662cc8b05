"""``kota broker``: Mosquitto ACL and device passwords from the device registry (kota/broker.py).

deploy/mosquitto/make-secrets.sh calls these; docs/broker.md explains the accounts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from kota.broker import (
    PROVISIONER_USER,
    accounts,
    acl_text,
    agent_candidates,
    dynsec_config,
    merge_passwords,
    parse_passwords,
    unmatched_agents,
)
from kota.registry import Registry, RegistryError

_registry = click.option("--registry", "registry_file", required=True,
                         type=click.Path(dir_okay=False, path_type=Path),
                         help="Device registry (YAML or CSV)")
_agents = click.option("--agent", "agents", multiple=True, metavar="ID",
                       help="A Raspberry Pi agent's agent.id: it logs in as ID and owns the "
                            "registered devices ID-<kind> of that kind (ID-air of kind air, "
                            "ID-status of kind status, ...). Repeat for each agent. An ID "
                            "that owns no registered device is an error (exit 1, nothing "
                            "written): it would get no account, so the agent could not log in.")


def _load(path: Path) -> Registry:
    try:
        return Registry.load(path)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None


def _check_agents(registry: Registry, agents: tuple[str, ...], source: Path) -> None:
    """Refuse an --agent that matches no device: say how devices match, and which ids would."""
    unmatched = unmatched_agents(registry, agents)
    if not unmatched:
        return
    candidates = agent_candidates(registry)
    shown = ", ".join(candidates[:20]) + (f", ... ({len(candidates)} in all)"
                                          if len(candidates) > 20 else "")
    example = unmatched[0]
    raise click.ClickException(
        f"--agent {', '.join(unmatched)}: no device in {source} belongs to "
        f"{'this agent' if len(unmatched) == 1 else 'these agents'}. An agent ID owns the "
        f"registered devices whose device_id is ID-<kind> with <kind> their own kind (e.g. "
        f"{example}-air of kind air, {example}-status of kind status). "
        + (f"Agent ids the registry has devices for: {shown}." if candidates else
           "The registry has no device named like that: register the agent's devices first "
           "(docs/agent.md), or leave out --agent."))


@click.group()
def broker() -> None:
    """Mosquitto access control generated from the device registry."""


@broker.command()
@_registry
@_agents
@click.option("--ingest-workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also grant kota-ingest-1 .. kota-ingest-N, the accounts of "
                   "`kota ingest --workers N` (each worker logs in as its client id)")
def acl(registry_file: Path, agents: tuple[str, ...], ingest_workers: int) -> None:
    """Print Mosquitto's acl_file: service accounts, then one account per device or agent."""
    registry = _load(registry_file)
    _check_agents(registry, agents, registry_file)
    try:
        click.echo(acl_text(registry, agents, source=registry_file.name,
                            ingest_workers=ingest_workers), nl=False)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@broker.command()
@_registry
@_agents
@click.option("--file", "password_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="username:password lines, updated in place (created with mode 0600)")
@click.option("--rotate", multiple=True, metavar="USER", help="Give USER a new password")
def passwords(registry_file: Path, agents: tuple[str, ...], password_file: Path,
              rotate: tuple[str, ...]) -> None:
    """Keep a password per device account in FILE: new accounts get a random one.

    Accounts whose devices left the registry are removed. The file holds clear-text passwords
    to provision on devices; make-secrets.sh hashes it into Mosquitto's password_file.
    """
    registry = _load(registry_file)
    _check_agents(registry, agents, registry_file)
    try:
        existing = parse_passwords(password_file.read_text(encoding="utf-8")
                                   if password_file.exists() else "")
        names = [a.username for a in accounts(registry, agents)]
        merged = merge_passwords(existing, names, rotate=rotate)
    except ValueError as exc:
        raise click.ClickException(f"{password_file}: {exc}") from None
    added = sorted(set(merged) - set(existing))
    removed = sorted(set(existing) - set(merged))
    text = "".join(f"{user}:{password}\n" for user, password in merged.items())
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    click.echo(f"{password_file}: {len(merged)} device accounts; new: {len(added)}, "
               f"rotated: {len(rotate)}, removed: {len(removed)}", err=True)


@broker.command("dynsec-config")
@click.option("--admin", default=PROVISIONER_USER, show_default=True,
              help="The account that provisions devices (kota devices, the API)")
def dynsec_config_command(admin: str) -> None:
    """Print the dynamic-security plugin's first configuration file, with ADMIN's password
    read from standard input (never from the command line, which other users can see)."""
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise click.ClickException("no password on standard input")
    click.echo(json.dumps(dynsec_config(admin, password), indent=2))


if __name__ == "__main__":
    broker()
