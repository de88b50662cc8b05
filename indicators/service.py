"""``kota indicators``: closed windows of raw readings -> index and indicator points.

Each pass looks, per window length (1m, 1h, 1d), for the windows that closed since the
watermark (the latest ``indicator_runs`` point of that length, kept in InfluxDB itself), bounded
by the catch-up horizon, and computes them oldest first: hours before the day they belong to.
A window's points carry the window start as timestamp, so computing it again overwrites them;
its ``indicator_runs`` point is written last, so a window interrupted half-way is computed again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

# Importing the indicator modules registers their steps: each ends with ``steps.add(...)``.
from indicators import air, city, noise, rain, safety, steps, uptime, water  # noqa: F401
from indicators import queries as q
from indicators.air import Hourly, hourly_air_query, hourly_means
from indicators.city import Limits
from indicators.context import Context, load_districts
from indicators.coverage import Coverage, covered_districts, read_subscriptions
from indicators.metrics import IndicatorCounters, serve_metrics
from indicators.outputs import output, replaced_measurements
from indicators.points import Point, to_lines
from indicators.safety import events_from_series, incident_points
from indicators.settings import IndicatorSettings, WindowName
from indicators.steps import Span
from indicators.windows import (
    HOUR_MS,
    Window,
    closed_windows,
    iso_utc,
    next_start,
    windows_between,
)
from kota.aio import sleep_or_stop
from kota.indices.siaga import load_gauges
from kota.influx import InfluxClient, InfluxDataError, InfluxUnavailable
from kota.registry import Registry, RegistryWatcher
from kota.standards import load_air_quality_standards
from store.db import make_engine

__all__ = ["RUNS_MEASUREMENT", "IndicatorService", "PassReport"]

log = logging.getLogger("kota.indicators")

RUNS_MEASUREMENT = output("indicator_runs").measurement
# Every measurement the service writes per window (for replacing a window's points).
MEASUREMENTS = replaced_measurements()
PREFETCH_MAX_MS = 8 * 24 * HOUR_MS  # longer recomputes query per window (bounded memory)
ORDER: tuple[WindowName, ...] = ("1m", "1h", "1d")


@dataclass
class PassReport:
    windows: list[Window] = field(default_factory=list)
    points: int = 0


class IndicatorService:
    def __init__(self, settings: IndicatorSettings, context: Context | None = None) -> None:
        self.settings = settings
        # Hourly air means fetched once for a run of windows: (from ms, to ms, means).
        self._air_cache: tuple[int, int, Hourly] | None = None
        if context is None:
            registry = (Registry.load(settings.registry_file) if settings.registry_file
                        else Registry())
            context = Context(registry, load_districts(settings.districts_file),
                              settings.uptime.status_suffix)
        self.context = context
        # `kota devices` rewrites the registry file: reloaded into the context's registry (in
        # place) while the service runs, and checked before every pass.
        self.registry_watcher = (
            RegistryWatcher(settings.registry_file, context.registry, settings.registry_reload_s)
            if settings.registry_file is not None else None)
        self.gauges = load_gauges(str(settings.gauges_file) if settings.gauges_file else None)
        standards = load_air_quality_standards().standards
        self.limits = Limits(pm25_national=standards["national_pm25_24h"].limit_ugm3,
                             pm25_who=standards["who_pm25_24h"].limit_ugm3,
                             min_hours=settings.air.min_hours_per_day,
                             live_min_hours=settings.air.live_min_hours,
                             annual_days=settings.air.annual_days,
                             annual_min_valid_share=settings.air.annual_min_valid_share,
                             response_target_min=settings.safety.response_target_min)
        # Alert coverage (ISO 37122) reads the confirmed subscriptions; without the database
        # the fields are absent, said once here rather than every day.
        self.subscriptions_engine = (make_engine(settings.database.url)
                                     if settings.database is not None else None)
        if self.subscriptions_engine is None:
            log.info("alert coverage (city_indicators population_share_alerts_*) is not "
                     "computed: set indicators.database.url to the alert service's database")
        self.zone = settings.zone()
        self.influx = InfluxClient(settings.influx)
        self.counters = IndicatorCounters()

    async def close(self) -> None:
        await self.influx.close()
        if self.subscriptions_engine is not None:
            self.subscriptions_engine.dispose()

    # -- watermark -----------------------------------------------------------------------------
    async def watermark(self, name: WindowName) -> int | None:
        """End of the latest computed window of this length, or None if none ever was."""
        influxql = q.last_run_query(RUNS_MEASUREMENT, name)
        try:
            series = await self.influx.query(influxql)
        except InfluxDataError:
            return None
        if not series or not series[0].get("values"):
            return None
        return next_start(name, int(series[0]["values"][0][0]), self.zone)

    # -- passes --------------------------------------------------------------------------------
    async def run_once(self, now_ms: int | None = None) -> PassReport:
        """Compute every window that closed since the watermarks (catch-up included)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        report = PassReport()
        lateness_ms = int(self.settings.lateness_s * 1000)
        horizon_ms = int(self.settings.catch_up_horizon_h * HOUR_MS)
        for name in ORDER:
            if name not in self.settings.windows:
                continue
            watermark = await self.watermark(name)
            limit = self.settings.minute_catch_up if name == "1m" else 100_000
            due = closed_windows(name, watermark, now_ms, lateness_ms, horizon_ms, self.zone,
                                 limit)
            if watermark is not None and due and due[0].start_ms > watermark:
                log.warning("%s windows from %s to %s are beyond the catch-up horizon; "
                            "recompute them with `kota indicators --since %s --until %s`",
                            name, iso_utc(watermark), iso_utc(due[0].start_ms),
                            iso_utc(watermark), iso_utc(due[0].start_ms))
            await self._prefetch_air(due)
            try:
                for window in due:
                    try:
                        report.points += await self.compute(window)
                    except (InfluxUnavailable, InfluxDataError):
                        raise  # InfluxDB's trouble: the same window is tried again later
                    except Exception as exc:
                        # Data this code cannot digest must not block every later window:
                        # record the failure as the window's run (the watermark moves on) and
                        # leave it to `kota indicators --since/--until` once fixed.
                        await self._record_failure(window, exc)
                    report.windows.append(window)
            finally:
                self._air_cache = None
            if due:
                self.counters.watermark_ms[name] = due[-1].end_ms
        return report

    def recompute_plan(self, since_ms: int, until_ms: int,
                       names: tuple[WindowName, ...] = ORDER) -> list[list[Window]]:
        """The windows ``recompute`` computes, one list per length, in computing order."""
        return [[w for w in windows_between(name, since_ms, until_ms, self.zone)
                 if w.start_ms >= since_ms]
                for name in ORDER if name in self.settings.windows and name in names]

    async def recompute(self, since_ms: int, until_ms: int,
                        names: tuple[WindowName, ...] = ORDER,
                        replace: bool = False,
                        progress: Callable[[int, int], None] | None = None) -> PassReport:
        """Compute (again) every window of the configured lengths inside [since, until).

        ``replace`` deletes each window's earlier points first, so that a field the new
        computation no longer gives (e.g. another station is now a district's worst) does not
        survive from the old one; without it the new points overwrite field by field.
        ``progress(done, total)`` is called before the first window (done 0) and after each.
        """
        report = PassReport()
        plan = self.recompute_plan(since_ms, until_ms, names)
        total = sum(len(windows) for windows in plan)
        if progress is not None:
            progress(0, total)
        for windows in plan:
            await self._prefetch_air(windows)
            try:
                for window in windows:
                    report.points += await self.compute(window, replace)
                    report.windows.append(window)
                    if progress is not None:
                        progress(len(report.windows), total)
            finally:
                self._air_cache = None
        return report

    async def _prefetch_air(self, windows: list[Window]) -> None:
        """For a run of several hour or day windows, one query for all their hourly air means
        instead of one per window (each hour window needs the 24 h before its end)."""
        spans = [w for w in windows if w.name != "1m"]
        if len(spans) < 2:
            return
        start = min(w.start_ms for w in spans) - 24 * HOUR_MS
        end = max(w.end_ms for w in spans)
        if end - start > PREFETCH_MAX_MS:
            return
        self._air_cache = (start, end, await self._air_hourly(start, end))

    async def _air_hourly(self, start_ms: int, end_ms: int) -> Hourly:
        cache = self._air_cache
        if cache is not None and cache[0] <= start_ms and end_ms <= cache[1]:
            return {key: inside for key, hours in cache[2].items()
                    if (inside := {t: v for t, v in hours.items() if start_ms <= t < end_ms})}
        return hourly_means(await self._query(
            hourly_air_query(start_ms, end_ms, self.settings.city)))

    async def _delete_window(self, window: Window) -> None:
        await self.influx.query(q.delete_window_query(MEASUREMENTS, window.name,
                                                      window.start_ms), method="POST")

    async def compute(self, window: Window, replace: bool = False) -> int:
        """Compute one window, write its points, then its ``indicator_runs`` point."""
        started = time.perf_counter()
        points = await self.points_for(window)
        if replace:
            await self._delete_window(window)
        lines = to_lines(points)
        batch = self.settings.write_batch_points
        for index in range(0, len(lines), batch):
            await self._write("\n".join(lines[index:index + batch]).encode())
        run = Point(RUNS_MEASUREMENT, {"window": window.name}, window.start_ms)
        run.put("points", float(len(lines)))
        run.put("duration_s", time.perf_counter() - started)
        run.put("computed_at_ms", float(time.time_ns() // 1_000_000))
        await self._write(run.line().encode())
        self.counters.windows[window.name] = self.counters.windows.get(window.name, 0) + 1
        self.counters.points_written += len(lines)
        log.debug("computed %s: %d points in %.2f s", window, len(lines),
                  time.perf_counter() - started)
        return len(lines)

    async def _record_failure(self, window: Window, exc: Exception) -> None:
        log.exception("window %s could not be computed (%s); skipping it. Recompute it with "
                      "`kota indicators --since … --until …` once the cause is fixed",
                      window, exc)
        self.counters.errors += 1
        run = Point(RUNS_MEASUREMENT, {"window": window.name}, window.start_ms)
        run.put("points", 0.0)
        run.put("failed", True)
        run.put("error", f"{type(exc).__name__}: {exc}"[:500])
        run.put("computed_at_ms", float(time.time_ns() // 1_000_000))
        await self._write(run.line().encode())

    async def _query(self, influxql: str) -> list[dict[str, Any]]:
        return await self.influx.query(influxql)

    async def _write(self, body: bytes) -> None:
        await self.influx.write(body)

    async def points_for(self, window: Window) -> list[Point]:
        """Every registered step of the window's length (indicators.steps), in order."""
        span = Span(window, self.settings, self.context, self.gauges, self.zone, self.limits,
                    self._query, self._air_hourly, self._incidents, self._ispu_ranks,
                    coverage=self._coverage if self.subscriptions_engine is not None else None)
        points: list[Point] = []
        for step in steps.registered(window.name):
            points += await step.compute(span)
        return points

    async def _incidents(self, window: Window, monitored: set[tuple[str, str]]) -> list[Point]:
        """Incidents open and stale at the window end, from the events of the lookback."""
        end = window.end_ms
        incidents_from = end - int(self.settings.safety.incident_lookback_h * HOUR_MS)
        incident_series = await self._query(q.raw_query(
            "safety", ["incident_id", "count"], incidents_from, end, self.settings.city,
            ["city", "district", "device", "event"]))
        return incident_points(
            window, events_from_series(q.rows_by_tags(incident_series)), sorted(monitored),
            int(self.settings.safety.incident_open_horizon_h * HOUR_MS))

    async def _coverage(self, at_ms: int) -> Coverage | None:
        """Districts the subscriptions confirmed at ``at_ms`` reach; None (fields absent) when
        the database cannot answer, which must not hold back the other indicators."""
        engine = self.subscriptions_engine
        if engine is None:
            return None
        try:
            subscriptions = await asyncio.to_thread(read_subscriptions, engine, at_ms)
        except SQLAlchemyError as exc:
            log.warning("alert coverage not computed: indicators.database (%s) did not answer: "
                        "%s", engine.url.render_as_string(hide_password=True),
                        str(exc).splitlines()[0])
            return None
        return covered_districts(subscriptions, list(self.context.registry))

    async def _ispu_ranks(self, window: Window) -> dict[tuple[str, str], dict[int, float]]:
        """Hourly category ranks of complete district and city ISPU points within the day."""
        influxql = q.ispu_ranks_query(window.start_ms, window.end_ms)
        ranks: dict[tuple[str, str], dict[int, float]] = {}
        for tags, rows in q.rows_by_tags(await self._query(influxql)):
            key = (tags.get("city", ""), tags.get("district", ""))
            for time_ms, values in rows:
                if values.get("category_rank") is not None:
                    ranks.setdefault(key, {})[time_ms] = float(values["category_rank"])
        return ranks

    # -- continuous ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, max_passes: int | None = None) -> None:
        """Pass every ``interval_s`` until ``stop`` is set (or ``max_passes`` passes)."""
        try:
            serve_metrics(self.counters, self.settings.metrics_host, self.settings.metrics_port)
        except OSError as exc:
            await self.influx.close()
            raise OSError(f"cannot serve metrics on {self.settings.metrics_host}:"
                          f"{self.settings.metrics_port} ({exc}); set indicators.metrics_port "
                          "to a free port, or 0 to turn /metrics off") from None
        if self.settings.influx.version == 1 and self.settings.influx.create_database:
            try:
                await self.influx.create_database()
            except (InfluxUnavailable, InfluxDataError) as exc:
                log.warning("could not make sure database %r exists (%s)",
                            self.settings.influx.database, exc)
        passes = 0
        last_refresh = time.monotonic()
        reloading = (asyncio.create_task(self.registry_watcher.run(stop), name="registry")
                     if self.registry_watcher is not None else None)
        try:
            while not stop.is_set() and (max_passes is None or passes < max_passes):
                passes += 1
                started = time.perf_counter()
                if self.registry_watcher is not None:
                    self.registry_watcher.check()
                try:
                    report = await self.run_once()
                    if (self.settings.refresh_h and time.monotonic() - last_refresh
                            >= self.settings.refresh_interval_s):
                        now_ms = int(time.time() * 1000)
                        refreshed = await self.recompute(
                            now_ms - int(self.settings.refresh_h * HOUR_MS),
                            now_ms - int(self.settings.lateness_s * 1000), ("1h", "1d"),
                            replace=True)
                        # Only a refresh that went through counts: a failed one (its window
                        # may be deleted but not yet rewritten) is tried again next pass.
                        last_refresh = time.monotonic()
                        log.info("refreshed %d recent windows (late readings)",
                                 len(refreshed.windows))
                    self.counters.influx_up = True
                    if report.windows:
                        log.info("computed %d windows (%s .. %s), %d points",
                                 len(report.windows), report.windows[0], report.windows[-1],
                                 report.points)
                except InfluxUnavailable as exc:
                    self.counters.influx_up = False
                    self.counters.errors += 1
                    log.warning("%s; the missed windows are computed when it answers again",
                                exc)
                except InfluxDataError as exc:
                    self.counters.errors += 1
                    log.error("InfluxDB refused a query or write: %s", exc)
                except Exception:
                    # A bug in one window must not stop the service; the window was not marked
                    # computed, so the next pass tries it again.
                    self.counters.errors += 1
                    log.exception("unexpected error while computing indicators; retrying next "
                                  "pass. Please report this with the log above")
                self.counters.last_pass_s = time.perf_counter() - started
                if await sleep_or_stop(stop, self.settings.interval_s):
                    break
        finally:
            if reloading is not None:
                reloading.cancel()
            await self.close()
            log.info("indicators stopped after %d passes: %s windows, %d points written",
                     passes, dict(self.counters.windows), self.counters.points_written)
