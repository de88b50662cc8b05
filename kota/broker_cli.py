"""``kota broker``: Mosquitto ACL and device passwords from the device registry (kota/broker.py).

deploy/mosquitto/make-secrets.sh calls these; docs/broker.md explains the accounts.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from kota.broker import accounts, acl_text, merge_passwords, parse_passwords
from kota.registry import Registry, RegistryError

_registry = click.option("--registry", "registry_file", required=True,
                         type=click.Path(dir_okay=False, path_type=Path),
                         help="Device registry (YAML or CSV)")
_agents = click.option("--agent", "agents", multiple=True, metavar="ID",
                       help="A Raspberry Pi agent's agent.id: it logs in as ID and owns the "
                            "registered devices ID-<kind>. Repeat for each agent.")


def _load(path: Path) -> Registry:
    try:
        return Registry.load(path)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def broker() -> None:
    """Mosquitto access control generated from the device registry."""


@broker.command()
@_registry
@_agents
def acl(registry_file: Path, agents: tuple[str, ...]) -> None:
    """Print Mosquitto's acl_file: service accounts, then one account per device or agent."""
    try:
        click.echo(acl_text(_load(registry_file), agents, source=registry_file.name), nl=False)
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
    try:
        existing = parse_passwords(password_file.read_text(encoding="utf-8")
                                   if password_file.exists() else "")
        names = [a.username for a in accounts(_load(registry_file), agents)]
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


if __name__ == "__main__":
    broker()
