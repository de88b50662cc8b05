"""InfluxQL targets for grafana-foundation-sdk, which ships no InfluxDB query type.

``InfluxQLQuery`` is registered with the SDK's runtime under the ``influxdb`` datasource type,
so dashboards read back with ``Dashboard.from_json`` keep their queries typed (the tests rely on
that round trip). Raw InfluxQL only: Grafana's query builder mode is not used.

``InfluxQLAnnotation`` is an annotation query of the InfluxDB datasource (events drawn on every
time series of a dashboard). The SDK's annotation model knows only the keys every datasource
shares; the InfluxDB ones (``ANNOTATION_KEYS``: the query and which columns are the text and
the tags) are added here, in the form Grafana's InfluxDB datasource reads (and migrates to its
``target`` when it loads the dashboard; not tried on a running Grafana, docs/dashboards.md).
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import AnnotationQuery, DataSourceRef

__all__ = ["ANNOTATION_KEYS", "DATASOURCE", "DATASOURCE_TYPE", "DATASOURCE_UID", "InfluxQL",
           "InfluxQLAnnotation", "InfluxQLQuery"]

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


# The InfluxDB datasource's own keys of an annotation (beside the SDK model's).
ANNOTATION_KEYS = ("query", "textColumn", "tagsColumn")


class InfluxQLAnnotationQuery(AnnotationQuery):
    """An annotation read from InfluxDB: each row is an event at its time, ``text_column``
    its text, ``tags_column`` (comma-separated columns) its tags."""

    def __init__(self, name: str, query: str, icon_color: str, text_column: str,
                 tags_column: str) -> None:
        super().__init__(name=name, datasource=DATASOURCE, enable=True, hide=False,
                         icon_color=icon_color)
        self.query = query
        self.text_column = text_column
        self.tags_column = tags_column

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload.update({"query": self.query, "textColumn": self.text_column,
                        "tagsColumn": self.tags_column})
        return payload


class InfluxQLAnnotation(cogbuilder.Builder[AnnotationQuery]):
    """Builder form, for ``Dashboard.annotation``."""

    def __init__(self, name: str, query: str, icon_color: str, text_column: str,
                 tags_column: str) -> None:
        self._internal = InfluxQLAnnotationQuery(name, query, icon_color, text_column,
                                                 tags_column)

    def build(self) -> AnnotationQuery:
        return self._internal


cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(
    identifier=DATASOURCE_TYPE, from_json_hook=InfluxQLQuery.from_json))
