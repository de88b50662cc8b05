"""``kota indicators``: the indicator service's command line (loaded lazily by kota/cli.py)."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from typing import Any

import click

from indicators.windows import DAY_MS
from kota.config import ConfigError, dump_settings, load_settings
from kota.service_cli import EXIT_CODES, fail, load_or_exit, logging_from, run_until_signal
from kota.settings_doc import settings_help


def _epilog() -> str:
    from indicators.settings import IndicatorSettings

    return ("\b\nSettings (section 'indicators:' of kota.yaml; environment variable in brackets):\n"
            + settings_help(IndicatorSettings, "indicators") + "\n\n" + EXIT_CODES)


def _time_ms(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint=option) from None
    if moment.tzinfo is None:
        raise click.BadParameter("give a time zone, e.g. 2026-11-27T00:00:00+07:00",
                                 param_hint=option)
    return int(moment.timestamp() * 1000)


PROGRESS_EVERY_S = 5.0


def _iso(ms: int) -> str:
    from indicators.windows import iso_utc

    return iso_utc(ms)


def _recompute_range(since: str | None, until: str | None, once: bool,
                     replace: bool) -> tuple[int | None, int | None]:
    """(since, until) in ms for a recompute, both None for the service or --once.

    --until alone starts a day before it, --since alone ends now; errors exit 2 in one line.
    """
    since_ms, until_ms = _time_ms(since, "--since"), _time_ms(until, "--until")
    if since_ms is None and until_ms is None:
        if replace:
            fail("--replace needs --since and/or --until: it deletes the points of the "
                 "windows it recomputes")
        return None, None
    if once:
        fail("--once computes what is due; --since/--until recompute a range: give one of them")
    if since_ms is None:
        assert until_ms is not None
        since_ms = until_ms - DAY_MS
        click.echo(f"--since not given: recomputing the day before --until, from "
                   f"{_iso(since_ms)}", err=True)
    if until_ms is None:
        until_ms = int(time.time() * 1000)
    if since_ms >= until_ms:
        fail(f"--since {since or _iso(since_ms)} is not before --until "
             f"{until or _iso(until_ms) + ' (now)'}: nothing to recompute")
    return since_ms, until_ms


class _Progress:
    """``recompute``'s progress on stderr: after the first window, then every few seconds."""

    def __init__(self, since_ms: int, until_ms: int, replace: bool,
                 lengths: list[str]) -> None:
        self.since_ms, self.until_ms, self.replace = since_ms, until_ms, replace
        self.lengths = lengths
        self.started = time.monotonic()
        self.last = 0.0
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        self.total = total
        if done == 0:
            self.started = now
            click.echo(f"recomputing {total} windows from {_iso(self.since_ms)} to "
                       f"{_iso(self.until_ms)}" + (", replacing their points" if self.replace
                                                   else ""), err=True)
            if not total:
                click.echo(f"no {' or '.join(self.lengths)} window lies wholly inside the "
                           "range (indicators.windows)", err=True)
            return
        if done == total or (done > 1 and now - self.last < PROGRESS_EVERY_S):
            return  # the summary follows; or a line was printed a moment ago
        self.last = now
        elapsed = now - self.started
        left = elapsed / done * (total - done)
        click.echo(f"windows {done}/{total} ({done * 100 // total} %), {elapsed:.0f} s, "
                   f"~{left:.0f} s left", err=True)

    def summary(self, report: Any) -> str:
        lengths: dict[str, int] = {}
        for window in report.windows:
            lengths[window.name] = lengths.get(window.name, 0) + 1
        detail = ", ".join(f"{name}: {count}" for name, count in lengths.items())
        return (f"recomputed {len(report.windows)} windows" + (f" ({detail})" if detail else "")
                + f", {report.points} points written in {time.monotonic() - self.started:.1f} s")


@click.group(invoke_without_command=True, epilog=_epilog(),
             context_settings={"max_content_width": 110})
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Configuration file (default: $KOTA_CONFIG or ./kota.yaml).")
@click.option("--influx-url", help="Override indicators.influx.url.")
@click.option("--database", help="Override indicators.influx.database.")
@click.option("--registry", "registry_file", type=click.Path(dir_okay=False),
              help="Override indicators.registry_file.")
@click.option("--once", is_flag=True, help="Compute the windows that are due (catch-up "
              "included) and exit.")
@click.option("--since", help="Recompute every window from this time (ISO 8601 with zone) "
              "... [default with --until alone: one day before it]")
@click.option("--until", help="... to this time [default with --since alone: now], then exit. "
              "Either one alone recomputes and exits: never the continuous service.")
@click.option("--replace", is_flag=True, help="With --since/--until: delete each window's "
              "earlier points before writing (no stale field survives).")
@click.option("--check", is_flag=True, help="Validate settings and data files, print, exit.")
@click.pass_context
def indicators(ctx: click.Context, config_file: str | None, influx_url: str | None,
               database: str | None, registry_file: str | None, once: bool,
               since: str | None, until: str | None, replace: bool, check: bool) -> None:
    """Compute ISPU, AQI, rain, Siaga, noise, safety and city indicators into InfluxDB.

    Every interval the service computes the 1-minute, hourly and daily windows that closed,
    catching up after downtime from its watermark (measurement indicator_runs). Re-running a
    window overwrites its points. Schema: docs/indicators.md.

    --since/--until recompute the windows that lie wholly inside the range, showing progress
    on stderr, print a summary and exit.

    \b
    Examples:
      kota indicators                       # continuous, settings from ./kota.yaml
      kota indicators --once                # what is due, then exit
      kota indicators --since 2026-11-26T00:00+07:00 --until 2026-11-27T00:00+07:00
      kota indicators --until 2026-11-27T00:00+07:00    # the day before, then exit
      kota indicators bench --devices 1000  # the benchmark
      kota indicators rollup install        # hourly roll-ups as InfluxDB 1.x continuous queries
    """
    if ctx.invoked_subcommand is not None:
        given = [name for name, value in (
            ("--config", config_file), ("--influx-url", influx_url), ("--database", database),
            ("--registry", registry_file), ("--since", since), ("--until", until))
            if value is not None] + [name for name, flag in (
                ("--once", once), ("--replace", replace), ("--check", check)) if flag]
        if given:
            raise click.UsageError(
                f"{', '.join(given)} before '{ctx.invoked_subcommand}' would be ignored: give "
                "the subcommand's own options after it, e.g. `kota indicators rollup install "
                "--database kota`", ctx)
        return
    from indicators.settings import IndicatorSettings

    overrides: dict[str, Any] = {
        "influx": {k: v for k, v in {"url": influx_url, "database": database}.items() if v},
        "registry_file": registry_file,
    }
    settings = load_or_exit(IndicatorSettings, "indicators", config_file, overrides)
    since_ms, until_ms = _recompute_range(since, until, once, replace)
    logging_from(settings)
    from indicators.service import IndicatorService
    from kota.registry import RegistryError

    try:
        service = IndicatorService(settings)
    except (RegistryError, ValueError, OSError) as exc:
        fail(str(exc))
    if check:
        click.echo(dump_settings(settings))
        known = sum(1 for d in service.context.districts if d.population)
        click.echo(f"registry: {len(service.context.registry)} devices; districts: "
                   f"{len(service.context.districts)} ({known} with population); gauges: "
                   f"{len(service.gauges)}")
        click.echo("indicators settings OK")
        asyncio.run(service.close())
        return

    async def one_shot() -> None:  # Ctrl-C interrupts it as usual: no signal handlers
        if since_ms is not None and until_ms is not None:
            progress = _Progress(since_ms, until_ms, replace, list(settings.windows))
            try:
                report = await service.recompute(since_ms, until_ms, replace=replace,
                                                 progress=progress)
            finally:
                await service.close()
            click.echo(progress.summary(report))
            return
        if once:
            try:
                report = await service.run_once()
            finally:
                await service.close()
            click.echo(f"computed {len(report.windows)} windows, {report.points} points")

    from kota.influx import InfluxDataError, InfluxUnavailable, redact_url

    try:
        if once or since_ms is not None:
            asyncio.run(one_shot())
        else:
            run_until_signal(service.run)
    except OSError as exc:  # e.g. the metrics port is taken
        raise click.ClickException(str(exc)) from None
    except InfluxUnavailable as exc:  # --once or --since/--until (the service waits for it)
        raise click.ClickException(f"{exc}; is InfluxDB running at "
                                   f"{redact_url(settings.influx.url)}?"
                                   ) from None
    except InfluxDataError as exc:
        raise click.ClickException(f"InfluxDB refused a query or write: {exc}") from None


@indicators.command()
@click.option("--devices", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--influx-url", help="An InfluxDB to use; default: start a private one.")
@click.option("--output", type=click.Path(dir_okay=False),
              help="Also write the results as Markdown to this file.")
def bench(devices: int, influx_url: str | None, output: str | None) -> None:
    """One indicator pass over a day of data for DEVICES devices: time and peak memory."""
    from indicators.bench import main as bench_main

    bench_main(devices=devices, influx_url=influx_url, output=output)


def _rollup_plan(config_file: str | None, influx_url: str | None,
                 database: str | None) -> tuple[Any, Any]:
    from indicators.rollup import load_rollups, plan
    from indicators.settings import IndicatorSettings

    overrides: dict[str, Any] = {
        "influx": {k: v for k, v in {"url": influx_url, "database": database}.items() if v}}
    try:
        settings = load_settings(IndicatorSettings, "indicators", config_file, overrides)
        options = settings.rollup
        rollup = plan(settings.influx.database, settings.influx.retention_policy,
                      options.retention_policy, options.retention, options.interval,
                      options.every, options.resample_for, load_rollups(options.file))
    except ConfigError as exc:
        fail(exc.problems)
    except ValueError as exc:
        fail(str(exc))
    return settings, rollup


_ROLLUP_OPTIONS = [
    click.option("--config", "config_file", type=click.Path(dir_okay=False),
                 help="Configuration file (default: $KOTA_CONFIG or ./kota.yaml)."),
    click.option("--influx-url", help="Override indicators.influx.url."),
    click.option("--database", help="Override indicators.influx.database."),
]


def _rollup_options(function: Any) -> Any:
    for option in reversed(_ROLLUP_OPTIONS):
        function = option(function)
    return function


@indicators.group()
def rollup() -> None:
    """Hourly roll-ups of the raw readings, kept by InfluxDB 1.x continuous queries.

    For dashboards over months and years: InfluxDB keeps hourly mean/min/max/sum per field
    (indicators/rollups.yaml) in its own retention policy (indicators.rollup.*), while the raw
    readings may expire. InfluxDB 2.x and 3.x have no continuous queries: `plan` prints the
    statements to translate into a 2.x task (docs/indicators.md).

    \b
    Examples:
      kota indicators rollup plan                # the statements, nothing is changed
      kota indicators rollup install             # create or update them (idempotent)
      kota indicators rollup install --backfill 30d
      kota indicators rollup status              # what is installed, rows per measurement
      kota indicators rollup drop                # remove the continuous queries
    """


@rollup.command("plan")
@_rollup_options
def rollup_plan(config_file: str | None, influx_url: str | None, database: str | None) -> None:
    """Print the InfluxQL statements; change nothing."""
    _, plan = _rollup_plan(config_file, influx_url, database)
    for statement in plan.statements():
        click.echo(statement + ";")


def _run_rollup(settings: Any, action: Any) -> list[str]:
    from kota.influx import InfluxClient, InfluxDataError, InfluxUnavailable, redact_url

    async def go() -> list[str]:
        # a backfill over months is one long statement: allow it minutes, not the usual 10 s
        client = InfluxClient(settings.influx.model_copy(
            update={"timeout_s": max(settings.influx.timeout_s, 600.0)}))
        try:
            result: list[str] = await action(client)
            return result
        finally:
            await client.close()

    try:
        return asyncio.run(go())
    except InfluxUnavailable as exc:
        raise click.ClickException(f"{exc}; is InfluxDB running at "
                                   f"{redact_url(settings.influx.url)}?"
                                   ) from None
    except ValueError as exc:  # e.g. the roll-up policy is the raw data's
        raise click.ClickException(str(exc)) from None
    except InfluxDataError as exc:
        hint = (" (InfluxDB 2.x/3.x have no continuous queries: see `kota indicators rollup "
                "plan` and docs/indicators.md)" if settings.influx.version != 1 else "")
        raise click.ClickException(f"InfluxDB refused: {exc}{hint}") from None


@rollup.command("install")
@_rollup_options
@click.option("--backfill", metavar="DURATION",
              help="Also roll up the raw readings of this span once (e.g. 30d): continuous "
                   "queries only cover their own FOR span from now on.")
def rollup_install(config_file: str | None, influx_url: str | None, database: str | None,
                   backfill: str | None) -> None:
    """Create or update the retention policy and the continuous queries."""
    from indicators.rollup import install

    settings, plan = _rollup_plan(config_file, influx_url, database)
    if backfill is not None and not re.match(r"^[1-9][0-9]{0,5}(m|h|d|w)$", backfill):
        raise click.BadParameter(f"{backfill!r} is not a duration like 30d",
                                 param_hint="--backfill")
    if settings.influx.version != 1:
        raise click.ClickException(
            f"indicators.influx.version is {settings.influx.version}: continuous queries exist "
            "only in InfluxDB 1.x. Use `kota indicators rollup plan` and translate the "
            "statements into a task (docs/indicators.md, 'Where InfluxDB continuous queries "
            "serve').")
    for line in _run_rollup(settings, lambda client: install(client, plan, backfill)):
        click.echo(line)
    click.echo(f"roll-ups installed: {len(plan.rollups)} continuous queries into "
               f"{plan.database}.{plan.target_rp} (every {plan.every}, for {plan.resample_for})")


@rollup.command("drop")
@_rollup_options
def rollup_drop(config_file: str | None, influx_url: str | None, database: str | None) -> None:
    """Drop our continuous queries (the roll-up retention policy and its data stay)."""
    from indicators.rollup import drop

    settings, plan = _rollup_plan(config_file, influx_url, database)
    lines = _run_rollup(settings, lambda client: drop(client, plan))
    for line in lines:
        click.echo(line)
    click.echo(f"dropped {len(lines)} continuous queries")


@rollup.command("status")
@_rollup_options
def rollup_status(config_file: str | None, influx_url: str | None, database: str | None) -> None:
    """Installed continuous queries, and the roll-up rows per measurement."""
    from indicators.rollup import installed, retention_policies
    from kota.influx import quote_ident

    settings, plan = _rollup_plan(config_file, influx_url, database)

    async def status(client: Any) -> list[str]:
        lines = []
        policies, _default = await retention_policies(client, plan.database)
        duration = policies.get(plan.target_rp)
        lines.append(f"retention policy {plan.target_rp}: "
                     + (f"duration {duration}" if duration else "missing"))
        have = await installed(client, plan)
        for measurement in sorted(plan.rollups):
            name = plan.cq_name(measurement)
            rows = 0
            if duration:
                # the last 7 days only: a count over years of roll-ups would be slow
                series = await client.query(
                    f"SELECT count(*) FROM {quote_ident(plan.database)}."
                    f"{quote_ident(plan.target_rp)}.{quote_ident(measurement)} "
                    "WHERE time > now() - 7d")
                counts = [v for one in series for v in (one.get("values") or [[0]])[0][1:]
                          if isinstance(v, int | float)]
                rows = int(max(counts, default=0))
            lines.append(f"{measurement:8} {'installed' if name in have else 'MISSING':9} "
                         f"{rows} rows in the last 7 days")
        return lines

    lines = _run_rollup(settings, status)
    for line in lines:
        click.echo(line)
    missing = sum(1 for line in lines if " MISSING " in line)
    click.echo("all roll-ups installed" if not missing else
               f"{missing} missing: run `kota indicators rollup install`")
