"""Hourly roll-ups of the raw readings as InfluxDB 1.x continuous queries (CQs).

Where InfluxDB serves by itself — one ``GROUP BY time()`` aggregate per field, kept for long
retention — it does the work: ``kota indicators rollup install`` creates a retention policy and
one CQ per measurement from ``indicators/rollups.yaml``. InfluxDB 2.x and 3.x have no CQs (2.x:
tasks; 3.x: none); ``plan`` prints the statements so they can be translated (docs/indicators.md).

The statement builders are pure; ``apply`` runs them through :class:`kota.influx.InfluxClient`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kota.influx import InfluxClient, quote_ident
from kota.kinds import KINDS

__all__ = ["AGGREGATES", "ROLLUPS_FILE", "Output", "RollupPlan", "load_rollups", "plan"]

ROLLUPS_FILE = Path(__file__).resolve().parent / "rollups.yaml"
AGGREGATES = frozenset({"mean", "median", "min", "max", "sum", "count", "first", "last",
                        "spread", "stddev"})
CQ_PREFIX = "kota_rollup_"
_DURATION = re.compile(r"^(INF|[1-9][0-9]{0,5}(s|m|h|d|w))$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


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
            named = _named(aggregates, str(field), f"{where}.{field}")
            outputs += [Output(str(field), aggregate, name) for aggregate, name in named.items()]
        names = [o.name for o in outputs]
        if len(names) != len(set(names)):
            raise ValueError(f"{where}: an output name is used twice: {sorted(names)}")
        result[str(measurement)] = outputs
    return result


def _named(aggregates: Any, field: str, where: str) -> dict[str, str]:
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

    def backfill(self, measurement: str, since: str) -> str:
        """The CQ's SELECT run once over older data (a CQ only covers its FOR span)."""
        selects = ", ".join(o.select() for o in self.rollups[measurement])
        target = (f"{quote_ident(self.database)}.{quote_ident(self.target_rp)}."
                  f"{quote_ident(measurement)}")
        return (f"SELECT {selects} INTO {target} FROM {self._source(measurement)} "
                f"WHERE time >= now() - {since} GROUP BY time({self.interval}), *")

    def statements(self) -> list[str]:
        return [self.create_rp(), *(self.create_cq(m) for m in sorted(self.rollups))]


def plan(database: str, source_rp: str, target_rp: str, retention: str, interval: str,
         every: str, resample_for: str, rollups: Mapping[str, list[Output]]) -> RollupPlan:
    for name, value in (("retention", retention), ("interval", interval), ("every", every),
                        ("resample_for", resample_for)):
        if not _DURATION.match(value) or (value == "INF" and name != "retention"):
            raise ValueError(f"rollup.{name}: {value!r} is not a duration like 1h, 90d, 52w"
                             + (" or INF" if name == "retention" else ""))
    if not _NAME.match(target_rp):
        raise ValueError(f"rollup.retention_policy: {target_rp!r} is not a plain identifier")
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


async def retention_policies(client: InfluxClient, database: str) -> dict[str, str]:
    """name -> duration of the database's retention policies."""
    series = await client.query(f"SHOW RETENTION POLICIES ON {quote_ident(database)}")
    policies: dict[str, str] = {}
    for one in series:
        columns = one.get("columns") or []
        for values in one.get("values") or []:
            row = dict(zip(columns, values, strict=False))
            policies[str(row.get("name"))] = str(row.get("duration"))
    return policies


async def install(client: InfluxClient, rollup: RollupPlan, backfill: str | None = None
                  ) -> list[str]:
    """Create (or update) the retention policy and every CQ; return what was done.

    A CQ cannot be altered: an existing one of ours is dropped and created again, so running
    install twice gives the same state. With ``backfill`` (e.g. ``30d``) each measurement's
    older hours are rolled up once too.
    """
    done = []
    policies = await retention_policies(client, rollup.database)
    if rollup.target_rp in policies:
        await client.query(rollup.alter_rp(), method="POST")
        done.append(f"retention policy {rollup.target_rp}: duration {rollup.retention}")
    else:
        await client.query(rollup.create_rp(), method="POST")
        done.append(f"retention policy {rollup.target_rp} created ({rollup.retention})")
    existing = await installed(client, rollup)
    for measurement in sorted(rollup.rollups):
        name = rollup.cq_name(measurement)
        if name in existing:
            await client.query(rollup.drop_cq(measurement), method="POST")
        await client.query(rollup.create_cq(measurement), method="POST")
        done.append(f"continuous query {name}: {len(rollup.rollups[measurement])} outputs")
        if backfill:
            await client.query(rollup.backfill(measurement, backfill), method="POST")
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
