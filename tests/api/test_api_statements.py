"""The statement builders of api/services/readings.py: every value quoted, and a hostile value
sent straight to the real InfluxDB is only a string there."""

from __future__ import annotations

import httpx
import pytest
from api_data import (  # noqa: F401
    HOUR,
    MINUTE,
    Seeded,
    api_registry,
    make_settings,
    seed,
    serve,
    tags,
    write_lines,
)

from api.services.readings import Filters, history_query, latest_query
from devstack.localstack import LocalService


# -- the statement builders -------------------------------------------------------------------
def test_latest_query_quotes_every_value() -> None:
    query = latest_query("air", Filters(city="jakarta", district="Kelapa Gading",
                                        device="a'b\"c\\"), 3600)
    assert query == ('SELECT * FROM "air" WHERE time > now() - 3600s AND "city" = \'jakarta\' '
                     "AND \"district\" = 'Kelapa Gading' AND \"device\" = 'a\\'b\"c\\\\' "
                     'GROUP BY "device" ORDER BY time DESC LIMIT 1')


def test_history_query_refuses_what_validation_should_have_stopped() -> None:
    from datetime import UTC, datetime

    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="aggregate"):
        history_query("air", ["pm25"], Filters(), start, end, "1h", "mean) FROM x; --", 10, 10)
    with pytest.raises(ValueError, match="interval"):
        history_query("air", ["pm25"], Filters(), start, end, "1h); DROP", "mean", 10, 10)
    query = history_query("air", ["pm25"], Filters(device="air-1"), start, end, "1h", "max",
                          10, 5)
    assert query == ('SELECT max("pm25") AS "pm25" FROM "air" WHERE '
                     "time >= 1767225600000000000 AND time < 1767312000000000000 AND "
                     "\"device\" = 'air-1' GROUP BY time(1h), \"device\" fill(none) "
                     "LIMIT 10 SLIMIT 5")


def test_a_quoted_hostile_value_is_only_a_string_to_influxdb(influxdb: LocalService,
                                                             database: str) -> None:
    """Bypassing validation on purpose: the quoting alone keeps InfluxDB safe."""
    seed(influxdb, database)
    hostile = "x' OR '1'='1\"; DROP DATABASE \"" + database
    query = latest_query("air", Filters(device=hostile), 3600)
    response = httpx.get(f"http://127.0.0.1:{influxdb.port}/query",
                         params={"db": database, "q": query}, timeout=10).json()
    assert response["results"][0].get("series") is None
    assert "error" not in response["results"][0]
    databases = httpx.get(f"http://127.0.0.1:{influxdb.port}/query",
                          params={"q": "SHOW DATABASES"}, timeout=10).json()
    assert [database] in databases["results"][0]["series"][0]["values"]
