"""The two invariants of the bitemporal tables, on generated data with late events, through
the real `ingest` and `compute` run hour by hour:

- convergence: after a sequence of hourly runs, the tables equal what one backfill over the
  same raw data writes, row for row (every version, hence the latest of every row);
- history: "as known at t" (per row, the latest version created by t) equals what a backfill
  over only the raw rows ingested by t writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pyspark.sql import functions as F

from features import REGISTRY
from pipelines.compute import compute
from pipelines.generate import generate
from pipelines.ingest import ingest
from pipelines.interval import HOUR, Interval
from pipelines.tables import CLEAN_EVENTS, DIMENSIONS, clean_table

pytestmark = pytest.mark.slow

D0 = datetime(2037, 8, 2, 6, tzinfo=UTC)
HISTORY_END = D0 + timedelta(hours=20)
HOURLY_END = HISTORY_END + timedelta(hours=4)
VIEWS = [REGISTRY.view("member_engagement"), REGISTRY.view("ad_performance")]
CLEAN = [*CLEAN_EVENTS, *DIMENSIONS]


def versions(spark) -> dict[str, set[tuple[Any, ...]]]:
    """Every version of this module's time range, per view (other modules use other years)."""
    out = {}
    for view in VIEWS:
        rows = spark.table(view.table).where(
            (F.col("created_timestamp") > D0.replace(tzinfo=None))
            & (F.col("created_timestamp") <= HOURLY_END.replace(tzinfo=None))
        )
        out[view.name] = {tuple(r) for r in rows.collect()}
    return out


def known_at(table: set[tuple[Any, ...]], moment: datetime) -> set[tuple[Any, ...]]:
    """Per (entity, event_timestamp), the latest version created by `moment`."""
    latest: dict[tuple[Any, Any], tuple[Any, ...]] = {}
    for row in table:
        key, event, created = row[0], row[1], row[2]
        if created <= moment.replace(tzinfo=None) and (
            (key, event) not in latest or created > latest[(key, event)][2]
        ):
            latest[(key, event)] = row
    return set(latest.values())


def clear_features(spark) -> None:
    for view in VIEWS:
        if not spark.catalog.tableExists(view.table):
            continue
        spark.sql(
            f"DELETE FROM {view.table} WHERE created_timestamp > TIMESTAMP '{D0:%Y-%m-%d %H:%M:%S}'"
        )


@pytest.fixture(scope="module")
def hourly(spark) -> Iterator[dict[str, set[tuple[Any, ...]]]]:
    """Twenty hours of history in one run, then four hours run hour by hour (ingest, compute)."""
    generate(spark, start=D0, end=HOURLY_END, scale=0.15, seed=47)
    ingest(spark, start=D0, end=HISTORY_END)
    clear_features(spark)
    compute(spark, start=D0, end=HISTORY_END, views=VIEWS)
    for hour in Interval(HISTORY_END, HOURLY_END).chunks(HOUR):
        ingest(spark, start=hour.start, end=hour.end)
        compute(spark, start=hour.start, end=hour.end, views=VIEWS)
    yield versions(spark)
    clear_features(spark)  # the tables are shared with other modules


def test_the_data_has_late_versions(hourly) -> None:
    late = [row for rows in hourly.values() for row in rows if row[2] > row[1]]
    assert len(late) > 30
    assert any(row[2] - row[1] >= timedelta(hours=3) for row in late)


def test_hourly_runs_converge_to_one_backfill(spark, hourly) -> None:
    clear_features(spark)
    compute(spark, start=D0, end=HOURLY_END, views=VIEWS)
    backfilled = versions(spark)
    for view in VIEWS:
        assert backfilled[view.name] == hourly[view.name], view.name
        # So are the latest versions: what Feast-identical training sets read.
        assert known_at(backfilled[view.name], HOURLY_END) == known_at(
            hourly[view.name], HOURLY_END
        )


def test_as_known_at_t_equals_a_backfill_of_what_had_arrived_by_t(spark, hourly) -> None:
    moment = HISTORY_END + timedelta(hours=2)
    try:
        # What had arrived by t: the clean rows ingested before it (ingest of [D0, t)).
        for name in CLEAN:
            spark.sql(
                f"DELETE FROM {clean_table(name)} "
                f"WHERE ingestion_timestamp >= TIMESTAMP '{moment:%Y-%m-%d %H:%M:%S}'"
            )
        clear_features(spark)
        compute(spark, start=D0, end=moment, views=VIEWS)
        backfilled = versions(spark)
        for view in VIEWS:
            assert known_at(hourly[view.name], moment) == known_at(backfilled[view.name], moment)
            # The backfill knows nothing after t; the hourly tables have versions it lacks.
            assert all(row[2] <= moment.replace(tzinfo=None) for row in backfilled[view.name])
            assert len(hourly[view.name]) > len(backfilled[view.name])
    finally:
        ingest(spark, start=moment, end=HOURLY_END)  # put the later arrivals back
