"""``kota alerts``: the alert service, and operators' commands on its state."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from kota.config import dump_settings
from kota.service_cli import (
    EXIT_CODES,
    EXIT_FAILED,
    LazyEpilogGroup,
    fail,
    load_or_exit,
    logging_from,
)
from kota.settings_doc import settings_help

__all__ = ["alerts"]

CONTEXT = {"max_content_width": 110, "help_option_names": ["-h", "--help"]}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def _epilog() -> str:
    from alerts.settings import AlertsSettings

    return ("\b\nSettings (section 'alerts:' of kota.yaml; environment variable in brackets):\n"
            + settings_help(AlertsSettings, "alerts") + "\n\n" + EXIT_CODES)


def _settings(config_file: str | None, overrides: dict[str, Any] | None = None) -> Any:
    from alerts.settings import AlertsSettings

    return load_or_exit(AlertsSettings, "alerts", config_file, overrides)


def _store(config_file: str | None) -> Any:
    from sqlalchemy.exc import SQLAlchemyError

    from alerts.channels.registry import build_channels
    from alerts.state import AlertStore
    from alerts.subscriptions.fanout import with_fanout
    from store.db import SchemaError, ensure_schema, make_engine

    settings = _settings(config_file)
    engine = make_engine(settings.database.url)
    try:
        ensure_schema(engine, settings.database.migrate_on_start)
    except (SchemaError, SQLAlchemyError) as exc:
        fail(f"database: {str(exc).splitlines()[0]}", EXIT_FAILED)
    try:
        channels = build_channels(settings.channels)
    except (ValueError, OSError) as exc:
        fail(f"alerts.channels: {exc}")
    # The fan-out too: an all-clear given here reaches the subscribers of that alert.
    return AlertStore(engine, with_fanout(channels, settings.subscriptions.enabled, engine))


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 90m, 2h or 1d")
    number, unit = float(match.group(1)), match.group(2)
    return timedelta(seconds=number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


_config = click.option("--config", "config_file", type=click.Path(dir_okay=False),
                       help="Configuration file (default: $KOTA_CONFIG or ./kota.yaml).")


@click.group(cls=LazyEpilogGroup, epilog_factory=_epilog, invoke_without_command=True,
             context_settings=CONTEXT)
@_config
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False),
              help="Override alerts.rules_file.")
@click.option("--check", is_flag=True, help="Validate the settings and the rules, print them "
                                            "and exit.")
@click.pass_context
def alerts(ctx: click.Context, config_file: str | None, rules_file: str | None,
           check: bool) -> None:
    """Evaluate the alert rules continuously and deliver alerts (run without a subcommand).

    Rules (alerts.rules_file; the shipped Jakarta rules: alerts/rules/jakarta.yaml) watch the
    MQTT stream (Siaga crossings, panic buttons, device health: evaluated before each message
    is acknowledged) and the indicator service's outputs (ISPU, BMKG rain). Every alert's state
    is in the database (alerts.database.url: sqlite:///run/kota.db, or PostgreSQL) and every
    notification goes through its outbox, so a restart loses and repeats nothing. Metrics on
    http://127.0.0.1:9112/metrics.

    \b
    Examples:
      kota alerts --check                      # settings and rules, then exit
      kota alerts                              # run the service
      kota alerts list --active                # what is firing now
      kota alerts ack 12 --note "BPBD tahu"    # an operator has seen alert 12
      kota alerts silence --rule flood-siaga --scope depok --for 3h --reason "sensor servis"
    """
    if ctx.invoked_subcommand is not None:
        return
    overrides: dict[str, Any] = {"rules_file": rules_file} if rules_file else {}
    settings = _settings(config_file, overrides)
    from alerts.rules import RuleContext, RulesError, load_rules
    from kota.registry import Registry, RegistryError

    try:
        registry = (Registry.load(settings.registry_file) if settings.registry_file
                    else Registry())
        rules = load_rules(settings.rules_file, RuleContext(registry, settings.city))
    except (RulesError, RegistryError) as exc:
        fail(str(exc))
    if check:
        click.echo(dump_settings(settings))
        for rule in rules:
            click.echo(f"rule {rule.id}: {rule.kind}, for {rule.audience}")
        click.echo(f"{len(rules)} rules from {settings.rules_file}; "
                   f"{len(settings.channels)} channels; alerts settings OK")
        return
    logging_from(settings)
    from alerts.service import AlertService
    from kota.service_cli import run_until_signal

    try:
        service = AlertService(settings)
    except Exception as exc:  # a start-up problem is one line, never a traceback
        fail(f"kota alerts could not start: {str(exc).splitlines()[0]}", EXIT_FAILED)
    run_until_signal(service.run)


@alerts.command("list", context_settings=CONTEXT)
@_config
@click.option("--active", is_flag=True, help="Only pending, firing and acknowledged alerts.")
@click.option("--hazard", type=click.Choice(["flood", "air", "rain", "safety", "device"]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def list_alerts(config_file: str | None, active: bool, hazard: str | None, limit: int) -> None:
    """Alerts, newest first: id, status, rule, scope, level, headline."""
    store = _store(config_file)
    statuses = ["pending", "firing", "acknowledged"] if active else None
    views = store.find(statuses=statuses, hazard=hazard, limit=limit)
    for view in views:
        text = view.texts.get("id-ID")
        click.echo(f"{view.id:>6}  {view.status:<12} {view.rule_id:<22} {view.scope:<20} "
                   f"{view.level:<24} {text.headline if text else ''}")
    click.echo(f"{len(views)} alerts" + (" active" if active else ""))


def _act(config_file: str | None, action: str, alert_id: int, note: str | None,
         actor: str) -> None:
    from alerts.state import StateError

    store = _store(config_file)
    try:
        view = getattr(store, action)(alert_id, f"cli:{actor}", note)
    except StateError as exc:
        fail(str(exc), EXIT_FAILED)
    click.echo(f"alert {view.id} {view.status} by cli:{actor}")


def _actor() -> str:
    import getpass

    return getpass.getuser()


@alerts.command("ack", context_settings=CONTEXT)
@_config
@click.argument("alert_id", type=int)
@click.option("--note", help="What the operator knows or did.")
def ack(config_file: str | None, alert_id: int, note: str | None) -> None:
    """Acknowledge a firing alert: seen, no more repeats until it escalates."""
    _act(config_file, "acknowledge", alert_id, note, _actor())


@alerts.command("resolve", context_settings=CONTEXT)
@_config
@click.argument("alert_id", type=int)
@click.option("--note", help="Why it is over.")
def resolve(config_file: str | None, alert_id: int, note: str | None) -> None:
    """Resolve an alert by hand; the all-clear is sent like the engine's."""
    _act(config_file, "resolve", alert_id, note, _actor())


@alerts.command("silence", context_settings=CONTEXT)
@_config
@click.option("--rule", "rule_id", help="Only this rule (default: every rule).")
@click.option("--scope", help="Only this gauge, kecamatan or device (default: every scope).")
@click.option("--for", "duration", default="2h", show_default=True,
              help="How long: 90m, 2h, 1d.")
@click.option("--reason", required=True, help="Who services what (kept with the silence).")
def silence(config_file: str | None, rule_id: str | None, scope: str | None, duration: str,
            reason: str) -> None:
    """Hold back notifications of matching alerts (a sensor being serviced). Alerts still
    change state and are recorded; the current version is sent when the silence ends."""
    from alerts.state import StateError

    if rule_id is None and scope is None:
        fail("a silence needs --rule or --scope (silencing everything is not allowed)")
    store = _store(config_file)
    start = datetime.now(UTC)
    try:
        made = store.add_silence(rule_id=rule_id, scope=scope, starts_at=start,
                                 ends_at=start + _duration(duration), reason=reason,
                                 actor=f"cli:{_actor()}")
    except StateError as exc:
        fail(str(exc))
    click.echo(f"silence {made.id}: rule {rule_id or 'any'}, scope {scope or 'any'}, until "
               f"{made.ends_at:%Y-%m-%d %H:%M} UTC")


@alerts.command("unsilence", context_settings=CONTEXT)
@_config
@click.argument("silence_id", type=int)
def unsilence(config_file: str | None, silence_id: int) -> None:
    """End a silence now."""
    from alerts.state import StateError

    try:
        _store(config_file).expire_silence(silence_id)
    except StateError as exc:
        fail(str(exc), EXIT_FAILED)
    click.echo(f"silence {silence_id} ended")


@alerts.command("deliver", context_settings=CONTEXT, epilog=EXIT_CODES)
@_config
@click.option("--channel", "channels", multiple=True,
              type=click.Choice(["email", "webhook", "apprise"]),
              help="Send only this subscriber channel (repeatable; default: every channel).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Serve this process's delivery metrics on alerts.metrics_host:PORT "
                   "(0: none; not alerts.metrics_port, kota alerts serves that).")
@click.option("--check", is_flag=True,
              help="Validate the settings this process reads, print them (passwords hidden) "
                   "and exit.")
def deliver(config_file: str | None, channels: tuple[str, ...], metrics_port: int,
            check: bool) -> None:
    """Send the queued notifications to subscribers: a delivery-only process (no MQTT, no
    rules), for alerts.subscriptions.delivery.in_process: false, where kota alerts only
    queues them. Run one per channel so email and webhooks do not share a CPU; any number may
    run on one database (claims are leased). Stops on SIGINT/SIGTERM after marking what it
    sent. It reads alerts.database, alerts.subscriptions, alerts.log_level, alerts.log_format
    and alerts.metrics_host; the rest of alerts: is kota alerts' (kota alerts --check).

    \b
    Examples:
      kota alerts deliver --check               # what it reads of alerts:, then exit
      kota alerts deliver                       # every channel
      kota alerts deliver --channel email       # and another with --channel webhook
    """
    from alerts.deliver import DeliverSettings

    settings = load_or_exit(DeliverSettings, "alerts", config_file)
    if check:
        click.echo(dump_settings(settings))
        click.echo(f"kota alerts deliver settings OK ({', '.join(channels) or 'every channel'})")
        return
    if not settings.subscriptions.enabled:
        fail("alerts.subscriptions.enabled is false: there is nothing to deliver")
    logging_from(settings)
    import logging

    from prometheus_client import CollectorRegistry, start_http_server
    from sqlalchemy.exc import SQLAlchemyError

    from alerts.subscriptions.notifier import Notifier, NotifierMetrics
    from kota.service_cli import run_until_signal
    from store.db import SchemaError, ensure_schema, make_engine

    log = logging.getLogger("kota.alerts.deliver")
    engine = make_engine(settings.database.url)
    try:
        ensure_schema(engine, settings.database.migrate_on_start)
    except (SchemaError, SQLAlchemyError) as exc:
        fail(f"database: {str(exc).splitlines()[0]}", EXIT_FAILED)
    registry = CollectorRegistry()
    try:
        notifier = Notifier(engine, settings.subscriptions, channels=channels or None,
                            metrics=NotifierMetrics(registry))
    except Exception as exc:  # a start-up problem is one line, never a traceback
        fail(f"kota alerts deliver could not start: {str(exc).splitlines()[0]}", EXIT_FAILED)

    async def main(stop: Any) -> None:
        if metrics_port:
            start_http_server(metrics_port, addr=settings.metrics_host, registry=registry)
        log.info("deliver: sending %s notifications from %s",
                 ", ".join(notifier.senders), engine.url.render_as_string(hide_password=True))
        try:
            await notifier.run(stop)
        finally:
            await notifier.aclose()
            log.info("deliver: stopped")

    run_until_signal(main)
