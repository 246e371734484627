"""The engine against the brute-force oracle, on small hand-made clean tables.

The events cover the corner cases of the semantics: events exactly on window
boundaries, entities with one event, windows that empty out, several events in
one hour, ties on time for LAST, null values, late arrivals, and a view with two
sources. Every declared view is checked at every row and on a dense hour grid.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

import feature_oracle as oracle
import pytest
from clean_events import (
    DIMENSION_ROWS,
    END,
    EVENTS,
    ODD_WINDOWS,
    START,
    WINDOWED,
    at,
    write_clean_tables,
)
from pyspark.sql import functions as F

from features import REGISTRY, AttributeView, FeatureView
from pipelines.compute import compute
from pipelines.compute.job import windowed_rows
from pipelines.compute.tiles import EVENT_HOUR, hour_index, measures_of, tiles
from pipelines.compute.windows import HourRange, merged_tile_hours, nested_chains
from pipelines.feature_tables import feature_table_schema
from pipelines.interval import Interval


@pytest.fixture(scope="module")
def computed(spark) -> dict[str, int]:
    write_clean_tables(spark)
    return compute(spark, start=START, end=END)


def table_rows(spark, view) -> dict[tuple[Any, datetime, datetime], dict[str, Any]]:
    """Every version, keyed by (entity, event_timestamp, created_timestamp)."""
    key = view.entity.join_key
    out = {}
    for row in spark.table(view.table).collect():
        values = row.asDict()
        out[(values.pop(key), values.pop("event_timestamp"), values.pop("created_timestamp"))] = (
            values
        )
    return out


def latest_versions(
    rows: dict[tuple[Any, datetime, datetime], dict[str, Any]],
) -> dict[tuple[Any, datetime], dict[str, Any]]:
    """Per (entity, event_timestamp), the values of its latest version."""
    out: dict[tuple[Any, datetime], tuple[datetime, dict[str, Any]]] = {}
    for (entity, moment, known), values in rows.items():
        if (entity, moment) not in out or known > out[(entity, moment)][0]:
            out[(entity, moment)] = (known, values)
    return {row: values for row, (_, values) in out.items()}


def assert_same(actual: dict, expected: dict, where: str) -> None:
    for name, want in expected.items():
        got = actual[name]
        if isinstance(want, float) and got is not None:
            assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-9), (where, name, got, want)
        else:
            assert got == want, (where, name, got, want)


def assert_matches_oracle(spark, view, events=EVENTS) -> None:
    if isinstance(view, AttributeView):
        expected = oracle.attribute_rows(view, DIMENSION_ROWS[view.source.name], START, END)
    else:
        expected = oracle.windowed_rows(view, events, START, END)
    actual = table_rows(spark, view)
    assert sorted(actual) == sorted(expected), view.name
    for row_key, want in expected.items():
        assert_same(actual[row_key], want, f"{view.name} {row_key}")


@pytest.mark.parametrize("view", REGISTRY.views, ids=lambda v: v.name)
def test_every_row_matches_the_oracle(spark, computed, view) -> None:
    assert computed[view.table] == len(table_rows(spark, view)) > 0
    assert_matches_oracle(spark, view)


@pytest.mark.parametrize(
    "view", [v for v in REGISTRY.views if isinstance(v, FeatureView)], ids=lambda v: v.name
)
def test_plan_sorts_each_view_three_times_in_a_fixed_number_of_tasks(spark, computed, view) -> None:
    """The shape the engine is built for: one grid shuffle into the configured number of
    partitions (not merged by adaptive execution), reused by the merge and every window,
    and three sorts in all."""
    plan = windowed_rows(spark, view, Interval.parse(START, END))
    text = plan._jdf.queryExecution().executedPlan().toString()
    partitions = spark.conf.get("spark.sql.shuffle.partitions")
    key = view.entity.join_key
    assert re.search(rf"hashpartitioning\({key}#\d+L?, {partitions}\), REPARTITION_BY_NUM", text)
    assert text.count("REPARTITION_BY_NUM") == 1
    assert text.count("Sort [") == 3


def test_block_chains_of_windows_that_do_not_nest() -> None:
    assert nested_chains([24, 168, 672]) == [[672, 168, 24]]
    assert nested_chains([3, 24, 48, 120]) == [[120, 24, 3], [48]]


def test_an_hourly_run_merges_the_tiles_every_output_row_sees_alike(spark) -> None:
    """28 days of plays, one every hour, for one member; a run outputs 3 rows. Before
    them, only the hours on a window's edge keep their own tile: a few per window, not
    every hour of 28 days."""
    view = REGISTRY.view("member_engagement")
    assert isinstance(view, FeatureView)
    source = view.sources[0]
    end = datetime(2026, 3, 1)
    plays = spark.createDataFrame(
        [
            (1, end - timedelta(hours=h, minutes=30), end - timedelta(hours=h, minutes=20))
            for h in range(1, 28 * 24 + 1)
        ],
        f"member_id long, {source.timestamp_column} timestamp, {source.ingestion_column} timestamp",
    ).withColumn("watch_seconds", F.lit(60.0))
    last = plays.select(F.max(hour_index(source.timestamp_column))).first()[0]
    hours = HourRange(first_row=last - 2, last_row=last, first_version=last, last_version=last)
    measures = [
        m for a in view.aggregations if a.column in (None, "watch_seconds") for m in measures_of(a)
    ]
    merged = tiles(plays, source, "member_id", measures, merged_tile_hours(view, hours))
    before = merged.where(F.col(EVENT_HOUR) < hours.first_row)
    edges = len(view.windows) * (hours.last_row - hours.first_row + 2)
    assert plays.count() == 28 * 24
    assert before.count() <= edges + len(view.windows)  # the edges, and one tile between two
    assert merged.where(F.col(EVENT_HOUR) >= hours.first_row).count() == 3
    assert merged.agg(F.sum(measures[0].name)).first()[0] == 28 * 24  # no play lost


def test_windows_that_do_not_nest_match_the_oracle(spark, computed) -> None:
    try:
        written = compute(spark, start=START, end=END, views=[ODD_WINDOWS])
        assert written[ODD_WINDOWS.table] == len(table_rows(spark, ODD_WINDOWS)) > 0
        assert_matches_oracle(spark, ODD_WINDOWS)
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {ODD_WINDOWS.table}")


@pytest.mark.parametrize("view", WINDOWED, ids=lambda v: v.name)
def test_latest_row_at_or_before_any_hour_is_the_value_then(spark, computed, view) -> None:
    rows = latest_versions(table_rows(spark, view))
    by_entity: dict[Any, list[datetime]] = {}
    for entity, moment in rows:
        by_entity.setdefault(entity, []).append(moment)
    empty = oracle.values_as_of(view, EVENTS, None, START)
    checked = 0
    for entity, moments in by_entity.items():
        moments.sort()
        for hour in range(int((END - START) / oracle.HOUR)):
            # Off the hour too: the value as of t is the one at floor_hour(t).
            moment = START + timedelta(hours=hour, minutes=(hour % 3) * 25)
            seen = [m for m in moments if m <= moment]
            expected = oracle.values_as_of(view, EVENTS, entity, moment)
            actual = rows[(entity, seen[-1])] if seen else empty
            assert_same(actual, expected, f"{view.name} {entity} as of {moment}")
            checked += 1
    assert checked >= len(by_entity) * 33 * 24


def test_table_schema_is_the_contract_and_partitioned_by_date(spark, computed) -> None:
    for view in REGISTRY.views:
        assert spark.table(view.table).schema == feature_table_schema(view), view.name
        detail = spark.sql(f"DESCRIBE DETAIL {view.table}").collect()[0]
        assert detail["format"] == "delta"
        assert detail["partitionColumns"] == ["event_date"]


def test_decay_rows_hold_zero_and_null(spark, computed) -> None:
    view = REGISTRY.view("member_engagement")
    # Member 1's single play (02:10) has left every window 28 days and 1 hour later.
    row = latest_versions(table_rows(spark, view))[(1, at(3) + timedelta(days=28))]
    assert row["plays_count_28d"] == 0 and row["watch_seconds_sum_28d"] == 0.0
    assert row["watch_seconds_avg_28d"] is None and row["device_last_28d"] is None
    assert row["titles_approx_distinct_28d"] == 0


def test_a_late_event_adds_versions_and_keeps_the_first(spark, computed) -> None:
    view = REGISTRY.view("member_engagement")
    rows = table_rows(spark, view)
    # Member 3's 10:00 play arrived at 12:00. The row at 11:00 is first written as known
    # at 11:00 (the 09:30 play has left the hour, the 10:00 one is not known yet); the
    # play's arrival adds a version known at 13:00, the end of the hour it arrived in.
    versions = sorted((known, v) for (m, t, known), v in rows.items() if (m, t) == (3, at(11)))
    assert [known for known, _ in versions] == [at(11), at(13)]
    assert [v["plays_count_1h"] for _, v in versions] == [0, 1]
    assert [v["plays_count_1d"] for _, v in versions] == [1, 2]
    # The row at 10:00 does not hold the 10:00 play (windows end before T): one version.
    assert [k for (m, t, k) in rows if (m, t) == (3, at(10))] == [at(10)]
    # Every created_timestamp is a whole hour at or after its row's hour.
    assert all(k >= t and k == oracle.floor_hour(k) for (_, t, k) in rows)


def test_member_3_boundary_values(spark, computed) -> None:
    rows = latest_versions(table_rows(spark, REGISTRY.view("member_engagement")))
    # An event exactly at T is outside [T - 1h, T); one exactly at T - 1h is inside.
    assert rows[(3, at(10))]["plays_count_1h"] == 1
    assert rows[(3, at(11))]["plays_count_1h"] == 1
    assert rows[(3, at(11))]["title_id_last_7d"] == 12
    assert rows[(3, at(34))]["plays_count_1d"] == 1  # [10:00 day 0, 10:00 day 1) holds 10:00
    assert rows[(3, at(35))]["plays_count_1d"] == 1  # the 10:00 play left, the 34:00 one entered


def test_ties_on_time_take_the_greatest_value(spark, computed) -> None:
    rows = latest_versions(table_rows(spark, REGISTRY.view("member_engagement")))
    assert rows[(2, at(8))]["device_last_28d"] == "tablet"
    assert rows[(2, at(8))]["title_id_last_7d"] == 12
    assert rows[(2, at(6))]["plays_count_1h"] == 3


def test_attribute_view_keeps_versions_of_the_interval_only(spark, computed) -> None:
    rows = latest_versions(table_rows(spark, REGISTRY.view("member_profile")))
    assert (1, at(-30)) not in rows and rows[(1, at(50))]["plan"] == "premium"
    assert rows[(3, at(0))]["country"] == "DE"  # same instant: the greatest version
    assert (
        spark.table(REGISTRY.view("member_profile").table).where(F.col("member_id") == 3).count()
        == 1
    )
