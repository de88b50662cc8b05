"""``kota dashboards build`` and ``kota dashboards push`` (loaded lazily by kota/cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["dashboards"]


@click.group(help="Grafana dashboards: regenerate the JSON, upload it to a Grafana.")
def dashboards() -> None:
    pass


@dashboards.command(help="Regenerate dashboards/json/*.json and the device gazetteer.")
@click.option("--registry", "registry_file", type=click.Path(exists=True, dir_okay=False,
                                                            path_type=Path),
              default=None, help="Device registry for the map gazetteer "
              "(default: the simulated Jakarta's, simulators/cities/jakarta/devices.yaml)")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 if a committed file differs from what build makes")
def build(registry_file: Path | None, check: bool) -> None:
    from dashboards.build import DEFAULT_REGISTRY, render_all, write_all

    registry = registry_file or DEFAULT_REGISTRY
    if check:
        stale = [path for path, text in render_all(registry).items()
                 if not path.exists() or path.read_text(encoding="utf-8") != text]
        for path in stale:
            click.echo(f"out of date: {path}", err=True)
        if stale:
            click.echo("run `kota dashboards build` and commit the result", err=True)
            sys.exit(1)
        click.echo("dashboards are up to date")
        return
    written = write_all(registry)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"{len(written)} file(s) changed")


@dashboards.command(help="Upload the dashboards to a running Grafana (create or overwrite "
                         "by uid) in the folder 'Kota Cerdas'.")
@click.option("--grafana", "grafana_url", required=True, envvar="KOTA_GRAFANA_URL",
              help="Grafana base URL, e.g. http://127.0.0.1:3000 (env KOTA_GRAFANA_URL)")
@click.option("--token", required=True, envvar="KOTA_GRAFANA_TOKEN",
              help="Service-account token with dashboard write rights (env KOTA_GRAFANA_TOKEN)")
@click.option("--only", multiple=True, metavar="FILE",
              help="Only these dashboards (file name in dashboards/json, repeatable)")
def push(grafana_url: str, token: str, only: tuple[str, ...]) -> None:
    from grafana_client.client import GrafanaException

    from dashboards.build import DASHBOARDS, JSON_DIR
    from dashboards.push import push as upload

    names = list(only) or list(DASHBOARDS)
    unknown = [name for name in names if name not in DASHBOARDS]
    if unknown:
        raise click.BadParameter(f"unknown dashboard(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(DASHBOARDS)}", param_hint="--only")
    try:
        results = upload(grafana_url, token, [JSON_DIR / name for name in names])
    except GrafanaException as exc:
        raise click.ClickException(f"Grafana refused (HTTP {exc.status_code}): {exc.message}"
                                   ) from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach Grafana at {grafana_url}: {exc}") from None
    for result in results:
        click.echo(f"pushed {result.uid} (version {result.version}) {result.url}")
