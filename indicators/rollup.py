"""Hourly roll-ups of the raw readings as InfluxDB 1.x continuous queries (CQs).

Where InfluxDB serves by itself — one ``GROUP BY time()`` aggregate per field, kept for long
retention — it does the work: ``kota indicators rollup install`` creates a retention policy and
one CQ per measurement from ``indicators/rollups.yaml``. InfluxDB 2.x and 3.x have no CQs (2.x:
tasks; 3.x: none); ``plan`` prints the statements so they can be translated (docs/indicators.md).

The statement builders are pure; ``apply`` runs them through :class:`kota.influx.InfluxClient`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kota.influx import InfluxClient, InfluxDataError, quote_ident
from kota.kinds import KINDS

__all__ = ["AGGREGATES", "ROLLUPS_FILE", "Output", "RollupPlan", "load_rollups", "plan"]

ROLLUPS_FILE = Path(__file__).resolve().parent / "rollups.yaml"
AGGREGATES = frozenset({"mean", "median", "min", "max", "sum", "count", "first", "last",
                        "spread", "stddev"})
CQ_PREFIX = "kota_rollup_"
_DURATION = re.compile(r"^(INF|[1-9][0-9]{0,5}(s|m|h|d|w))$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Tags every raw point carries (kota.registry.Device.tags); a field of the same name would make
# `WHERE "city" = ...` stop matching the roll-ups.
REGISTRY_TAGS = frozenset({"city", "district", "kind", "device", "kelurahan"})
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_MAX_S = 100 * 365 * 86_400  # InfluxDB durations overflow near 292 years


@dataclass(frozen=True)
class Output:
    field: str
    aggregate: str
    name: str

    def select(self) -> str:
        return f"{self.aggregate}({quote_ident(self.field)}) AS {quote_ident(self.name)}"


def load_rollups(path: Path = ROLLUPS_FILE) -> dict[str, list[Output]]:
    """measurement -> outputs, checked against the kinds: every field numeric, every aggregate
    known, no output name twice. Errors name the file, measurement and field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of measurement -> field -> aggregates")
    measurements = {kind.spec.measurement: kind.spec for kind in KINDS.values()}
    result: dict[str, list[Output]] = {}
    for measurement, fields in raw.items():
        where = f"{path}: {measurement}"
        spec = measurements.get(str(measurement))
        if spec is None:
            raise ValueError(f"{where}: not a measurement ingest writes "
                             f"({', '.join(sorted(measurements))})")
        if not isinstance(fields, dict) or not fields:
            raise ValueError(f"{where}: expected field -> aggregates")
        outputs: list[Output] = []
        for field, aggregates in fields.items():
            field_spec = spec.fields.get(str(field))
            if field_spec is None or field_spec.type != "float":
                raise ValueError(f"{where}.{field}: not a numeric field of kind {spec.name}")
            named = _named(aggregates, str(field), f"{where}.{field}",
                           REGISTRY_TAGS | set(spec.tags) | {"time"})
            outputs += [Output(str(field), aggregate, name) for aggregate, name in named.items()]
        names = [o.name for o in outputs]
        if len(names) != len(set(names)):
            raise ValueError(f"{where}: an output name is used twice: {sorted(names)}")
        result[str(measurement)] = outputs
    return result


def _named(aggregates: Any, field: str, where: str, reserved: set[str] | frozenset[str]
           ) -> dict[str, str]:
    if isinstance(aggregates, list):
        named = {str(a): f"{field}_{a}" for a in aggregates}
    elif isinstance(aggregates, dict):
        named = {str(a): str(n) for a, n in aggregates.items()}
    else:
        raise ValueError(f"{where}: expected a list of aggregates or aggregate -> output name")
    for aggregate, name in named.items():
        if aggregate not in AGGREGATES:
            raise ValueError(f"{where}: unknown aggregate {aggregate!r} "
                             f"({', '.join(sorted(AGGREGATES))})")
        if not _NAME.match(name):
            raise ValueError(f"{where}: output name {name!r} is not a plain identifier")
        if name in reserved:
            raise ValueError(f"{where}: output name {name!r} is a tag or 'time' of the "
                             "measurement; pick another")
    if not named:
        raise ValueError(f"{where}: no aggregates")
    return named


@dataclass(frozen=True)
class RollupPlan:
    database: str
    source_rp: str  # "" = the database's default retention policy
    target_rp: str
    retention: str
    interval: str
    every: str
    resample_for: str
    rollups: Mapping[str, list[Output]]

    def cq_name(self, measurement: str) -> str:
        return f"{CQ_PREFIX}{self.interval}_{measurement}"

    def create_rp(self) -> str:
        return (f"CREATE RETENTION POLICY {quote_ident(self.target_rp)} ON "
                f"{quote_ident(self.database)} DURATION {self.retention} REPLICATION 1")

    def alter_rp(self) -> str:
        return (f"ALTER RETENTION POLICY {quote_ident(self.target_rp)} ON "
                f"{quote_ident(self.database)} DURATION {self.retention}")

    def _source(self, measurement: str) -> str:
        db = quote_ident(self.database)
        rp = quote_ident(self.source_rp) if self.source_rp else ""
        return f"{db}.{rp}.{quote_ident(measurement)}"

    def create_cq(self, measurement: str) -> str:
        selects = ", ".join(o.select() for o in self.rollups[measurement])
        target = (f"{quote_ident(self.database)}.{quote_ident(self.target_rp)}."
                  f"{quote_ident(measurement)}")
        # GROUP BY * keeps every tag (city, district, kind, device, event ...) as a tag.
        return (f"CREATE CONTINUOUS QUERY {quote_ident(self.cq_name(measurement))} ON "
                f"{quote_ident(self.database)} RESAMPLE EVERY {self.every} FOR "
                f"{self.resample_for} BEGIN SELECT {selects} INTO {target} FROM "
                f"{self._source(measurement)} GROUP BY time({self.interval}), * END")

    def drop_cq(self, measurement: str) -> str:
        return (f"DROP CONTINUOUS QUERY {quote_ident(self.cq_name(measurement))} ON "
                f"{quote_ident(self.database)}")

    def backfill(self, measurement: str, since_ns: int) -> str:
        """The CQ's SELECT run once over older data (a CQ only covers its FOR span), from
        ``since_ns`` — a bucket boundary, or the first bucket would be stored half-full."""
        selects = ", ".join(o.select() for o in self.rollups[measurement])
        target = (f"{quote_ident(self.database)}.{quote_ident(self.target_rp)}."
                  f"{quote_ident(measurement)}")
        return (f"SELECT {selects} INTO {target} FROM {self._source(measurement)} "
                f"WHERE time >= {int(since_ns)} GROUP BY time({self.interval}), *")

    def statements(self) -> list[str]:
        return [self.create_rp(), *(self.create_cq(m) for m in sorted(self.rollups))]


def duration_s(value: str) -> int | None:
    """``90d`` -> seconds; ``INF`` -> None. ValueError when it is not such a duration."""
    if not _DURATION.match(value):
        raise ValueError(value)
    if value == "INF":
        return None
    return int(value[:-1]) * _SECONDS[value[-1]]


def plan(database: str, source_rp: str, target_rp: str, retention: str, interval: str,
         every: str, resample_for: str, rollups: Mapping[str, list[Output]]) -> RollupPlan:
    """Check what InfluxDB would refuse only after the old continuous queries were dropped."""
    seconds: dict[str, int | None] = {}
    for name, value in (("retention", retention), ("interval", interval), ("every", every),
                        ("resample_for", resample_for)):
        hint = f"rollup.{name}: {value!r} is not a duration like 1h, 90d, 52w" + (
            " or INF" if name == "retention" else "")
        try:
            seconds[name] = duration_s(value)
        except ValueError:
            raise ValueError(hint) from None
        length = seconds[name]
        if (length is None and name != "retention") or (length is not None
                                                        and length > _MAX_S):
            raise ValueError(hint + " (at most 100 years)")
    interval_s = seconds["interval"] or 0
    if (seconds["resample_for"] or 0) < interval_s:
        raise ValueError(f"rollup.resample_for ({resample_for}) must be at least "
                         f"rollup.interval ({interval}): InfluxDB refuses a shorter FOR")
    kept = seconds["retention"]
    if kept is not None and kept < max(3600, interval_s):
        raise ValueError(f"rollup.retention ({retention}) must be at least 1h (InfluxDB's "
                         f"shortest) and at least rollup.interval ({interval})")
    if not _NAME.match(target_rp):
        raise ValueError(f"rollup.retention_policy: {target_rp!r} is not a plain identifier")
    if source_rp and target_rp == source_rp:
        raise ValueError(f"rollup.retention_policy: {target_rp!r} is where the raw readings "
                         "are (influx.retention_policy): the roll-ups would overwrite them")
    return RollupPlan(database, source_rp, target_rp, retention, interval, every, resample_for,
                      rollups)


async def installed(client: InfluxClient, rollup: RollupPlan) -> dict[str, str]:
    """Our CQs on the database, name -> statement as InfluxDB keeps it."""
    found: dict[str, str] = {}
    for series in await client.query("SHOW CONTINUOUS QUERIES"):
        if series.get("name") != rollup.database:
            continue
        for name, statement in series.get("values") or []:
            if str(name).startswith(CQ_PREFIX):
                found[str(name)] = str(statement)
    return found


async def retention_policies(client: InfluxClient, database: str) -> tuple[dict[str, str], str]:
    """(name -> duration of the database's retention policies, the default one's name)."""
    series = await client.query(f"SHOW RETENTION POLICIES ON {quote_ident(database)}")
    policies: dict[str, str] = {}
    default = ""
    for one in series:
        columns = one.get("columns") or []
        for values in one.get("values") or []:
            row = dict(zip(columns, values, strict=False))
            policies[str(row.get("name"))] = str(row.get("duration"))
            if row.get("default") is True:
                default = str(row.get("name"))
    return policies, default


async def install(client: InfluxClient, rollup: RollupPlan, backfill: str | None = None,
                  now_ns: int | None = None) -> list[str]:
    """Create (or update) the retention policy and every CQ; return what was done.

    A CQ cannot be altered: an existing one of ours is dropped and created again (and put back
    as it was if InfluxDB refuses the new one), so running install twice gives the same state.
    With ``backfill`` (e.g. ``30d``) each measurement's older buckets are rolled up once too,
    from a bucket boundary so that no bucket is stored half-full.
    """
    done = []
    policies, default = await retention_policies(client, rollup.database)
    source = rollup.source_rp or default
    if rollup.target_rp in (source, default):
        raise ValueError(f"rollup.retention_policy {rollup.target_rp!r} is the retention "
                         f"policy of the raw readings ({source!r}): the roll-ups would "
                         "overwrite them; choose another name")
    if rollup.target_rp in policies:
        await client.query(rollup.alter_rp(), method="POST")
        done.append(f"retention policy {rollup.target_rp}: duration {rollup.retention}")
    else:
        await client.query(rollup.create_rp(), method="POST")
        done.append(f"retention policy {rollup.target_rp} created ({rollup.retention})")
    existing = await installed(client, rollup)
    since_ns = None
    if backfill:
        span_s = duration_s(backfill) or 0
        bucket_ns = (duration_s(rollup.interval) or 3600) * 1_000_000_000
        now = now_ns if now_ns is not None else time.time_ns()
        since_ns = (now - span_s * 1_000_000_000) // bucket_ns * bucket_ns
    for measurement in sorted(rollup.rollups):
        name = rollup.cq_name(measurement)
        if name in existing:
            await client.query(rollup.drop_cq(measurement), method="POST")
        try:
            await client.query(rollup.create_cq(measurement), method="POST")
        except InfluxDataError:
            if name in existing:  # leave it as it was, then report
                await client.query(existing[name], method="POST")
            raise
        done.append(f"continuous query {name}: {len(rollup.rollups[measurement])} outputs")
        if since_ns is not None:
            await client.query(rollup.backfill(measurement, since_ns), method="POST")
            done.append(f"  {measurement}: backfilled the last {backfill}")
    for name in sorted(set(existing) - {rollup.cq_name(m) for m in rollup.rollups}):
        await client.query(f"DROP CONTINUOUS QUERY {quote_ident(name)} ON "
                           f"{quote_ident(rollup.database)}", method="POST")
        done.append(f"continuous query {name}: dropped (no longer in the roll-up file)")
    return done


async def drop(client: InfluxClient, rollup: RollupPlan) -> list[str]:
    """Drop every CQ of ours; the retention policy and its data stay (drop them by hand)."""
    done = []
    for name in sorted(await installed(client, rollup)):
        await client.query(f"DROP CONTINUOUS QUERY {quote_ident(name)} ON "
                           f"{quote_ident(rollup.database)}", method="POST")
        done.append(f"continuous query {name}: dropped")
    return done
