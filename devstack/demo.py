"""``make demo`` / ``kota demo``: a whole Kota Cerdas on one machine, on loopback.

Starts a private Mosquitto and InfluxDB with their data under ``run/demo/``, then ``kota ingest``,
``kota api``, ``kota indicators``, ``kota alerts`` and ``kota simulate`` as child processes
configured by a generated ``run/demo/kota.yaml``; prints what runs where; stops everything it
started (by PID) on Ctrl-C.

The alert service keeps its state in ``run/demo/kota.db`` (SQLite, shared with the API) and has
one channel, MQTT: each alert's state retained on the demo's broker under
``kota/jakarta/alerts/...``, so the demo shows alerts without any outside service (no webhook,
no SMTP server).

The simulated city's history (``history``):

- ``backfill`` (default): the last day is generated and written straight to InfluxDB in a few
  seconds (``simulators.backfill``, through ingest's own parser; on a run directory used before,
  only the gap since its newest reading), its hour windows are computed once (``kota indicators
  --since/--until``), then the indicator service carries on and the simulator runs live (x1)
  from where the backfill ended: the first page opened is current.
- ``replay``: the simulator replays the last day at ``speed`` through MQTT and ingest (60x: 24
  minutes), then runs live; the indicator service keeps recomputing recent windows meanwhile.
- ``none``: live only, from now.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml

from devstack.localstack import (
    LocalService,
    free_port,
    start_influxdb,
    start_mosquitto,
    stop_process,
)

PREFERRED_PORTS = {"mqtt": 1883, "influx": 8086, "metrics": 9108, "api": 8000,
                   "indicators_metrics": 9110, "alerts_metrics": 9112}
SUPERVISE_INTERVAL_S = 1.0
LIVE_WINDOW_S = 30 * 86400.0  # the live simulator's run; the supervisor starts another after it
HISTORIES = ("backfill", "replay", "none")
READING_MEASUREMENTS = ("air", "water", "rain", "noise", "safety", "status")
HISTORY_TIMEOUT_S = 120.0  # the day's hourly indicators; past this they finish in the background
SCHEMA_TIMEOUT_S = 60.0    # `kota db upgrade` on a fresh SQLite file takes about a second
ALERTS_CHANNEL = "demo-board"


def _port(preferred: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


def database_url(run_dir: Path) -> str:
    """The demo's SQLite file (API keys and alert state), by absolute path: the children may
    run from another working directory."""
    return f"sqlite:///{(run_dir / 'kota.db').resolve()}"


def write_demo_config(run_dir: Path, mqtt_port: int, influx_port: int, metrics_port: int,
                      api_port: int, indicators_metrics_port: int, registry_path: Path,
                      speed: float, duration_s: float, history: str = "replay",
                      alerts_metrics_port: int = 0) -> Path:
    replay = history == "replay"
    database = {"url": database_url(run_dir)}
    config = {
        "ingest": {
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "client_id": "kota-ingest-demo"},
            "influx": {"url": f"http://127.0.0.1:{influx_port}", "database": "kota"},
            "buffer": {"dir": str(run_dir / "ingest" / "buffer")},
            "deadletter": {"dir": str(run_dir / "ingest" / "deadletter")},
            "registry_file": str(registry_path),
            "metrics_port": metrics_port,
        },
        "indicators": {
            "influx": {"url": f"http://127.0.0.1:{influx_port}", "database": "kota"},
            "registry_file": str(registry_path),
            "metrics_port": indicators_metrics_port,
            # A replay brings the last day in late: recompute recent windows as data arrives.
            # (A backfill is written before the indicator service starts: its catch-up does.)
            **({"refresh_h": 30, "refresh_interval_s": 60} if replay else {}),
        },
        "api": {
            "influx": {"url": f"http://127.0.0.1:{influx_port}", "database": "kota"},
            "registry_file": str(registry_path),
            "port": api_port,
            "database": database,
        },
        "alerts": {
            "registry_file": str(registry_path),
            "database": database,
            # Its own persistent session on the stream (not ingest's client id).
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "client_id": "kota-alerts-demo"},
            "influx": {"url": f"http://127.0.0.1:{influx_port}", "database": "kota"},
            "metrics_port": alerts_metrics_port,
            # Only the MQTT channel: retained state on the demo's own broker, nothing outside.
            # Every audience: the broker is private and on loopback, so the demo shows safety
            # and device alerts too (a city's broker keeps operators' topics private, ACL).
            "channels": [{
                "type": "mqtt", "name": ALERTS_CHANNEL,
                "audiences": ["public", "operators", "field"],
                "broker": {"host": "127.0.0.1", "port": mqtt_port,
                           "client_id": "kota-alerts-demo-publisher"},
            }],
        },
        "simulate": {
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
            "registry_file": str(registry_path),
            # Replay: the window at `speed`, then carry on in real time (restarting would
            # rewrite the window's points with other values). Otherwise live from the start.
            "speed": speed if replay else 1.0,
            "duration_s": duration_s if replay else LIVE_WINDOW_S,
            **({"live_s": LIVE_WINDOW_S} if replay else {}),
            "faults": {"share": 0.01},
        },
    }
    path = run_dir / "kota.yaml"
    path.write_text("# Written by `kota demo`; edit a copy, not this file.\n"
                    + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _write_registry(path: Path) -> int:
    from simulators.runner import build_stream
    from simulators.settings import SimulateSettings

    stream, _ = build_stream(SimulateSettings())
    registry = stream.city.registry()
    path.write_text(registry.dump_yaml(), encoding="utf-8")
    return len(registry)


class Demo:
    def __init__(self, run_dir: Path, speed: float, duration_s: float,
                 echo: Callable[[str], None], history: str = "backfill") -> None:
        if history not in HISTORIES:
            raise ValueError(f"history {history!r} is not one of {', '.join(HISTORIES)}")
        self.run_dir, self.speed, self.duration_s, self.echo = run_dir, speed, duration_s, echo
        self.history = history
        self.backfill_line = ""
        self.services: list[LocalService] = []
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.config_path = run_dir / "kota.yaml"

    def _child(self, name: str, args: list[str],
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.run_dir / f"{name}.log").open("ab")
        process = subprocess.Popen([sys.executable, "-m", "kota", *args,
                                    "--config", str(self.config_path)],
                                   stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   env={**os.environ, **env} if env else None)
        log.close()
        self.children[name] = process
        return process

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        mqtt_port = _port(PREFERRED_PORTS["mqtt"])
        influx_port = _port(PREFERRED_PORTS["influx"])
        metrics_port = _port(PREFERRED_PORTS["metrics"])
        api_port = _port(PREFERRED_PORTS["api"])
        indicators_metrics_port = _port(PREFERRED_PORTS["indicators_metrics"])
        self.indicators_metrics_port = indicators_metrics_port
        self.alerts_metrics_port = _port(PREFERRED_PORTS["alerts_metrics"])
        self.mqtt_port, self.influx_port, self.metrics_port = mqtt_port, influx_port, metrics_port
        self.api_port = api_port
        self.echo(f"starting Mosquitto and InfluxDB (data in {self.run_dir}/) ...")
        self.services.append(start_mosquitto(self.run_dir / "mosquitto", mqtt_port))
        self.services.append(start_influxdb(self.run_dir / "influxdb", influx_port))
        registry_path = self.run_dir / "registry.yaml"
        devices = _write_registry(registry_path)
        write_demo_config(self.run_dir, mqtt_port, influx_port, metrics_port, api_port,
                          indicators_metrics_port, registry_path, self.speed, self.duration_s,
                          self.history, self.alerts_metrics_port)
        self._schema()
        self._child("ingest", ["ingest"])
        self._child("api", ["api"])
        # Before the simulator publishes: its persistent session sees the live stream.
        self._child("alerts", ["alerts"])
        if self.history == "backfill":
            # The history straight into InfluxDB (seconds), its hourly indicators computed once,
            # then live from where it ends; the indicator service carries on from there.
            start_s, end_s = self._backfill()
            self._child("simulate", ["simulate", "--start", _rfc3339(end_s)])
            self._indicator_history(start_s, end_s)
            self._child("indicators", ["indicators"])
        else:
            time.sleep(1.0)  # let ingest subscribe first, so nothing is published before it
            self._child("simulate", ["simulate"])
            self._child("indicators", ["indicators"])
        self.devices = devices

    def _schema(self) -> None:
        """The database's schema, once, before the API and the alert service start (both
        would otherwise migrate the same SQLite file at the same moment)."""
        process = self._child("db", ["db", "upgrade"])
        try:
            process.wait(SCHEMA_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"`kota db upgrade` took longer than {SCHEMA_TIMEOUT_S:g} s; "
                               f"see {self.run_dir}/db.log") from None
        if process.returncode:
            raise RuntimeError(f"`kota db upgrade` failed (code {process.returncode}); see "
                               f"{self.run_dir}/db.log")

    def _newest_reading_s(self) -> float | None:
        """Time of the newest reading already stored (a run directory used before), or None."""
        kinds = ", ".join(f'"{kind}"' for kind in READING_MEASUREMENTS)
        with contextlib.suppress(httpx.HTTPError, KeyError, IndexError, ValueError, TypeError):
            response = httpx.get(f"http://127.0.0.1:{self.influx_port}/query",
                                 params={"db": "kota", "epoch": "ms",
                                         "q": f"SELECT * FROM {kinds} ORDER BY time DESC "
                                              "LIMIT 1"}, timeout=10).json()
            times = [series["values"][0][0]
                     for series in response["results"][0].get("series", [])]
            return max(times) / 1000 if times else None
        return None

    def _backfill(self) -> tuple[float, float]:
        from ingest.settings import IngestSettings
        from kota.config import load_settings
        from kota.influx import InfluxDataError, InfluxUnavailable
        from simulators.backfill import backfill
        from simulators.settings import SimulateSettings

        ingest = load_settings(IngestSettings, "ingest", self.config_path, {})
        simulate = load_settings(SimulateSettings, "simulate", self.config_path, {})
        end_s = time.time()
        start_s = end_s - self.duration_s
        newest = self._newest_reading_s()
        if newest is not None and newest > start_s:
            # Data of an earlier demo: fill only the gap since, so that no hour gets two
            # simulated cities' worth of readings.
            start_s = min(newest + 0.001, end_s - 1.0)
            self.echo(f"{self.run_dir} has readings up to {_rfc3339(newest)}; backfilling the "
                      f"{_span(end_s - start_s)} since then straight into InfluxDB ...")
        else:
            self.echo(f"backfilling the last {self.duration_s / 3600:g} h straight into "
                      "InfluxDB ...")
        try:
            summary = backfill(simulate, ingest, end_s=end_s, duration_s=end_s - start_s)
        except (InfluxUnavailable, InfluxDataError) as exc:
            raise RuntimeError(f"backfill failed: {exc}") from None
        self.backfill_line = summary.line()
        self.echo(self.backfill_line)
        return start_s, end_s

    def _indicator_history(self, start_s: float, end_s: float) -> None:
        """The backfilled day's hour and day windows, before the service starts (its first
        pass then carries on from the newest hour, and computes the newest minute)."""
        started = time.monotonic()
        self.echo("computing the backfilled hours' indicators ...")
        process = self._child("indicators-history",
                              ["indicators", "--since", _rfc3339(start_s),
                               "--until", _rfc3339(end_s)],
                              env={"KOTA_INDICATORS__WINDOWS": '["1h", "1d"]'})
        try:
            process.wait(HISTORY_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.echo(f"the day's indicators take longer than {HISTORY_TIMEOUT_S:g} s; they "
                      f"carry on in the background (see {self.run_dir}/indicators-history.log)")
            return
        if process.returncode:
            self.echo(f"computing the day's indicators failed (code {process.returncode}); "
                      f"see {self.run_dir}/indicators-history.log")
        else:
            self.echo(f"hourly indicators for the backfilled hours computed in "
                      f"{time.monotonic() - started:.1f} s")

    def _history_text(self) -> str:
        hours = f"{self.duration_s / 3600:g} h"
        if self.history == "backfill":
            return (f"(the last {hours} are backfilled straight into InfluxDB at start, with\n"
                    "  their hourly ISPU and city indicators; the simulator now runs live, in\n"
                    "  real time, so the page is current from the first minute.\n"
                    "  `kota demo --history replay` replays the day through MQTT instead)")
        if self.history == "replay":
            return (f"(the simulator first replays the last {hours} at x{self.speed:g}, "
                    "reaching\n"
                    f"  the present in about {self.duration_s / self.speed / 60:.0f} min, then "
                    "runs live: until then the\n"
                    "  page shows replayed readings, and \"current\" ISPU and Siaga fill in as "
                    "the replay nears now)")
        return "(no history: the simulator runs live from now; the page fills in as data comes)"

    def banner(self) -> str:
        mosquitto, influx = self.services
        ingest, simulate = self.children["ingest"], self.children["simulate"]
        api, indicators = self.children["api"], self.children["indicators"]
        alerts = self.children["alerts"]
        q = (f"curl -sG http://127.0.0.1:{self.influx_port}/query --data-urlencode db=kota "
             "--data-urlencode")
        ind = f"metrics http://127.0.0.1:{self.indicators_metrics_port}/metrics"
        ispu_query = (r"SELECT last(ispu), last(category) FROM ispu WHERE \"window\"='1h' "
                      "AND scope='district' GROUP BY district")
        speed = self.speed if self.history == "replay" else 1.0
        sim = f"Jakarta, {self.devices} devices, x{speed:g} time, 1 % faults"
        return f"""
Kota Cerdas demo is running (Ctrl-C stops everything):

  MQTT broker     mqtt://127.0.0.1:{self.mqtt_port}        pid {mosquitto.pid}
  InfluxDB 1.x    http://127.0.0.1:{self.influx_port}       pid {influx.pid}  database kota
  kota ingest     metrics http://127.0.0.1:{self.metrics_port}/metrics  pid {ingest.pid}
  kota api        http://127.0.0.1:{self.api_port}/  live page, API docs at /docs  pid {api.pid}
  kota simulate   {sim}  pid {simulate.pid}
  kota indicators {ind}  pid {indicators.pid}
  kota alerts     metrics http://127.0.0.1:{self.alerts_metrics_port}/metrics  pid {alerts.pid}

Look:
  Open http://127.0.0.1:{self.api_port}/ in a browser: the live map of the city
  {self._history_text()}
  {q} "q=SELECT count(*) FROM air, water, rain, noise, safety, status"
  {q} "q=SELECT last(level_cm) FROM water GROUP BY device"
  {q} "q={ispu_query}"
  .venv/bin/kota deadletter --dir {self.run_dir}/ingest/deadletter --summary
  mosquitto_sub -p {self.mqtt_port} -t 'kota/#' -v        (package mosquitto-clients)
  tail -f {self.run_dir}/ingest.log {self.run_dir}/simulate.log

Alerts (rules: alerts/rules/jakarta.yaml; state in {self.run_dir}/kota.db):
  .venv/bin/kota alerts list --active --config {self.config_path}
  mosquitto_sub -p {self.mqtt_port} -t 'kota/+/alerts/#' -v   (retained: the current state)
  tail -f {self.run_dir}/alerts.log

Config: {self.config_path}   Registry: {self.run_dir}/registry.yaml
"""

    def supervise(self, stop_requested: Callable[[], bool]) -> None:
        """Keep the demo up: restart the simulator at the end of its window; stop on request."""
        while not stop_requested():
            time.sleep(SUPERVISE_INTERVAL_S)
            for name in ("ingest", "api", "indicators", "alerts"):
                child = self.children[name]
                if child.poll() is not None:
                    self.echo(f"{name} exited with code {child.returncode}; see "
                              f"{self.run_dir}/{name}.log")
                    return
            simulate = self.children["simulate"]
            if simulate.poll() is not None:
                if simulate.returncode != 0:
                    self.echo(f"simulator exited with code {simulate.returncode}; see "
                              f"{self.run_dir}/simulate.log")
                    return
                self.echo("simulated window finished; starting the next one")
                self._child("simulate", ["simulate"])  # from now (no --start)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with contextlib.suppress(httpx.HTTPError, KeyError, IndexError, ValueError):
            for measurement in ("air", "water", "rain", "noise", "safety", "status",
                                "kota_deadletter"):
                response = httpx.get(f"http://127.0.0.1:{self.influx_port}/query",
                                     params={"db": "kota",
                                             "q": f'SELECT count(*) FROM "{measurement}"'},
                                     timeout=10).json()
                series = response["results"][0].get("series")
                counts[measurement] = (int(max(v for v in series[0]["values"][0][1:] if v))
                                       if series else 0)
        return counts

    def alert_counts(self) -> dict[str, int]:
        """Alerts in the demo's database: all of them and the active ones (empty when the
        database cannot be read)."""
        from sqlalchemy import func, select
        from sqlalchemy.exc import SQLAlchemyError

        from alerts.model import ACTIVE_STATUSES
        from store.alert_models import Alert
        from store.db import make_engine

        if not (self.run_dir / "kota.db").exists():
            return {}
        engine = make_engine(database_url(self.run_dir))
        try:
            with engine.connect() as connection:
                total = connection.scalar(select(func.count()).select_from(Alert))
                active = connection.scalar(select(func.count()).select_from(Alert).where(
                    Alert.status.in_(ACTIVE_STATUSES)))
        except SQLAlchemyError:
            return {}
        finally:
            engine.dispose()
        return {"alerts": int(total or 0), "active": int(active or 0)}

    def stop(self) -> None:
        for name in ("indicators-history", "indicators", "simulate", "alerts", "api", "ingest",
                     "db"):
            stop_process(self.children.get(name), 30.0)
        counts = self.counts() if len(self.services) == 2 else {}
        alerts = self.alert_counts()
        for service in reversed(self.services):
            service.stop()
        if counts:
            self.echo("points stored: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if alerts:
            self.echo(f"alerts: {alerts['alerts']} in {self.run_dir}/kota.db, "
                      f"{alerts['active']} active (`kota alerts list --active --config "
                      f"{self.config_path}`)")
        self.echo(f"stopped everything the demo started; data stays in {self.run_dir}/")


def _rfc3339(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, UTC).isoformat(timespec="milliseconds")


def _span(seconds: float) -> str:
    return (f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
            if seconds < 7200 else f"{seconds / 3600:.1f} h")
