"""InfluxQL targets for grafana-foundation-sdk, which ships no InfluxDB query type.

``InfluxQLQuery`` is registered with the SDK's runtime under the ``influxdb`` datasource type,
so dashboards read back with ``Dashboard.from_json`` keep their queries typed (the tests rely on
that round trip). Raw InfluxQL only: Grafana's query builder mode is not used.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

__all__ = ["DATASOURCE", "DATASOURCE_TYPE", "DATASOURCE_UID", "InfluxQL", "InfluxQLQuery"]

DATASOURCE_TYPE = "influxdb"
# Fixed uid, set by dashboards/provisioning/datasources/influxdb.yaml, so that panels find
# the provisioned datasource whatever it is called in the UI.
DATASOURCE_UID = "kota-influxdb"
DATASOURCE = DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)

ResultFormat = Literal["time_series", "table", "logs"]


class InfluxQLQuery(cogvariants.Dataquery):
    """One raw InfluxQL target as Grafana's InfluxDB datasource stores it."""

    def __init__(self, query: str = "", ref_id: str = "A", alias: str = "",
                 result_format: ResultFormat = "time_series", hide: bool = False) -> None:
        self.query = query
        self.ref_id = ref_id
        self.alias = alias
        self.result_format = result_format
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": DATASOURCE.to_json(),
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias:
            payload["alias"] = self.alias
        if self.hide:
            payload["hide"] = True
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(query=str(data.get("query", "")), ref_id=str(data.get("refId", "A")),
                   alias=str(data.get("alias", "")),
                   result_format=data.get("resultFormat", "time_series"),
                   hide=bool(data.get("hide", False)))


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder form, for ``Panel.with_target``."""

    def __init__(self, query: str, ref_id: str = "A") -> None:
        self._internal = InfluxQLQuery(query=query, ref_id=ref_id)

    def build(self) -> InfluxQLQuery:
        return self._internal

    def alias(self, alias: str) -> Self:
        self._internal.alias = alias
        return self

    def table(self) -> Self:
        self._internal.result_format = "table"
        return self


cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(
    identifier=DATASOURCE_TYPE, from_json_hook=InfluxQLQuery.from_json))
