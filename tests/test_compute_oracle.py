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
from pyspark.sql import functions as F

from features import REGISTRY, Aggregation, AttributeView, FeatureView, Op
from features.entities import member
from features.sources import playback_events
from pipelines.compute import compute
from pipelines.compute.job import windowed_rows
from pipelines.compute.windows import nested_chains
from pipelines.feature_tables import feature_table_schema
from pipelines.interval import Interval
from pipelines.tables import CLEAN_EVENTS, DIMENSIONS, clean_table

B = datetime(2026, 3, 2)  # a Monday, naive UTC like the rows Spark returns
START, END = B, B + timedelta(days=33)  # every event's 28-day decay lands inside
WINDOWED = [v for v in REGISTRY.views if isinstance(v, FeatureView)]
ATTRIBUTES = [v for v in REGISTRY.views if isinstance(v, AttributeView)]


def at(hours: float, minutes: float = 0, seconds: float = 0) -> datetime:
    return B + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _play(n, member, title, device, when, watch, arrived=None) -> dict[str, Any]:
    return {
        "event_id": f"p{n}",
        "member_id": member,
        "title_id": title,
        "device": device,
        "event_timestamp": when,
        "watch_seconds": watch,
        "ingestion_timestamp": arrived or when + timedelta(minutes=3),
        "event_date": when.date(),
    }


def _impression(n, member, ad, placement, when, arrived=None) -> dict[str, Any]:
    return {
        "impression_id": f"i{n}",
        "member_id": member,
        "ad_id": ad,
        "placement": placement,
        "event_timestamp": when,
        "ingestion_timestamp": arrived or when + timedelta(minutes=1),
        "event_date": when.date(),
    }


def _click(n, member, ad, when, arrived=None) -> dict[str, Any]:
    return {
        "impression_id": f"i{n}",
        "member_id": member,
        "ad_id": ad,
        "event_timestamp": when,
        "ingestion_timestamp": arrived or when + timedelta(minutes=2),
        "event_date": when.date(),
    }


PLAYS = [
    # member 1: a single event
    _play(1, 1, 10, "tv", at(2, 10), 100.0),
    # member 2: several events in one hour, then a tie on time (LAST -> greatest value)
    _play(2, 2, 10, "tv", at(5), 50.0),
    _play(3, 2, 11, "phone", at(5, 30), 70.5),
    _play(4, 2, 10, "web", at(5, 59, 59), 30.0),
    _play(5, 2, 11, "tablet", at(7, 15), 20.0),
    _play(6, 2, 12, "phone", at(7, 15), 40.0),
    # member 3: events exactly on hour boundaries (window edges), one arriving 2 hours late
    _play(7, 3, 10, "tv", at(9, 30), 10.0),
    _play(8, 3, 12, "tv", at(10), 12.5, arrived=at(12)),
    _play(9, 3, 12, "web", at(34), 8.0),
    _play(10, 3, 11, "web", at(10 + 7 * 24), 1.0),
    # member 4: null values count as events but not as values
    _play(11, 4, 11, None, at(20, 45), None),
    _play(12, 4, 11, "phone", at(21, 5), 300.0),
    _play(13, 4, 12, None, at(21, 50), 60.0),
    # title 10 is popular: plays from many members over many hours
    *[_play(100 + i, 5 + i % 6, 10, "tv", at(i * 3, 17), 10.0 * (i + 1)) for i in range(20)],
    # a row without a member does not count
    _play(200, None, 12, "tv", at(3), 5.0),
]
IMPRESSIONS = [
    _impression(1, 1, 100, "home", at(1, 5)),
    _impression(2, 1, 100, "row", at(1, 40)),
    _impression(3, 2, 100, "home", at(3)),
    _impression(4, 2, 101, "player", at(3)),
    _impression(5, 3, 100, "row", at(30), arrived=at(33)),
    _impression(6, 1, 101, "home", at(26)),
]
CLICKS = [
    _click(2, 1, 100, at(1, 41)),
    _click(4, 2, 101, at(3, 1)),
    _click(5, 3, 100, at(30, 2), arrived=at(40)),
]
MEMBERS = [
    {"member_id": 1, "country": "FR", "plan": "basic", "signup_date": B.date(), "ingestion_timestamp": at(-30)},
    {"member_id": 1, "country": "FR", "plan": "premium", "signup_date": B.date(), "ingestion_timestamp": at(50)},
    {"member_id": 2, "country": "US", "plan": "basic", "signup_date": None, "ingestion_timestamp": at(0)},
    {"member_id": 3, "country": "DE", "plan": "basic", "signup_date": B.date(), "ingestion_timestamp": at(0)},
    {"member_id": 3, "country": "AT", "plan": "basic", "signup_date": B.date(), "ingestion_timestamp": at(0)},
]  # fmt: skip
TITLES = [
    {"title_id": 10, "genre": "drama", "release_date": B.date(), "ingestion_timestamp": at(0)},
    {"title_id": 11, "genre": "comedy", "release_date": None, "ingestion_timestamp": at(24 * 40)},
]
ADS = [
    {"ad_id": 100, "campaign_id": 7, "advertiser": "acme", "category": "food", "bid_cpm": 2.5, "ingestion_timestamp": at(1)},
    {"ad_id": 101, "campaign_id": 8, "advertiser": "beta", "category": "cars", "bid_cpm": 4.0, "ingestion_timestamp": at(1)},
]  # fmt: skip
EVENTS = {"playback_events": PLAYS, "ad_impressions": IMPRESSIONS, "ad_clicks": CLICKS}
DIMENSION_ROWS = {"members": MEMBERS, "titles": TITLES, "ads": ADS}
LATE_PLAY = _play(999, 1, 11, "phone", at(3, 20), 55.0, arrived=at(24 * 40))


def write_clean_tables(spark) -> None:
    for name, rows in EVENTS.items():
        _write(spark, clean_table(name), rows, CLEAN_EVENTS[name], ["event_date"])
    for name, rows in DIMENSION_ROWS.items():
        _write(spark, clean_table(name), rows, DIMENSIONS[name], [])


def _write(spark, table, rows, schema, partition_by) -> None:
    spark.sql("CREATE DATABASE IF NOT EXISTS clean")
    df = spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema)
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    writer.partitionBy(*partition_by).saveAsTable(table)


@pytest.fixture(scope="module")
def computed(spark) -> dict[str, int]:
    write_clean_tables(spark)
    return compute(spark, start=START, end=END)


def table_rows(spark, view) -> dict[tuple[Any, datetime], dict[str, Any]]:
    key = view.entity.join_key
    out = {}
    for row in spark.table(view.table).collect():
        values = row.asDict()
        out[(values.pop(key), values.pop("event_timestamp"))] = values
    return out


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


# Windows that do not all divide one another (two chains of nested blocks, three
# levels in one), with every op on each, and a 3-hour window whose blocks are
# smaller than a day.
ODD_WINDOWS = FeatureView(
    "odd_windows",
    entity=member,
    aggregations=(
        Aggregation(playback_events, Op.COUNT, ("3h", "2d", "5d"), alias="plays"),
        Aggregation(playback_events, Op.SUM, ("3h", "2d"), column="watch_seconds"),
        Aggregation(playback_events, Op.AVG, ("1d", "5d"), column="watch_seconds"),
        Aggregation(playback_events, Op.MIN, ("1h", "3h", "2d"), column="watch_seconds"),
        Aggregation(playback_events, Op.MAX, ("1d", "5d"), column="watch_seconds"),
        Aggregation(playback_events, Op.APPROX_DISTINCT, ("3h", "2d", "5d"), column="title_id"),
        Aggregation(playback_events, Op.LAST, ("2d",), column="device"),
    ),
)


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


def test_windows_that_do_not_nest_match_the_oracle(spark, computed) -> None:
    try:
        written = compute(spark, start=START, end=END, views=[ODD_WINDOWS])
        assert written[ODD_WINDOWS.table] == len(table_rows(spark, ODD_WINDOWS)) > 0
        assert_matches_oracle(spark, ODD_WINDOWS)
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {ODD_WINDOWS.table}")


@pytest.mark.parametrize("view", WINDOWED, ids=lambda v: v.name)
def test_latest_row_at_or_before_any_hour_is_the_value_then(spark, computed, view) -> None:
    rows = table_rows(spark, view)
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
    row = table_rows(spark, view)[(1, at(3) + timedelta(days=28))]
    assert row["plays_count_28d"] == 0 and row["watch_seconds_sum_28d"] == 0.0
    assert row["watch_seconds_avg_28d"] is None and row["device_last_28d"] is None
    assert row["titles_approx_distinct_28d"] == 0


def test_created_timestamp_reflects_late_arrivals(spark, computed) -> None:
    view = REGISTRY.view("member_engagement")
    rows = table_rows(spark, view)
    # The 10:00 play of member 3 arrived at 12:00: rows from 11:00 know it only from 12:00.
    assert rows[(3, at(11))]["created_timestamp"] == at(12)
    assert rows[(3, at(10))]["created_timestamp"] == at(10)


def test_late_event_updates_the_affected_rows(spark, computed) -> None:
    view = REGISTRY.view("member_engagement")
    spark.createDataFrame(
        [tuple(LATE_PLAY[f.name] for f in CLEAN_EVENTS["playback_events"].fields)],
        CLEAN_EVENTS["playback_events"],
    ).write.format("delta").mode("append").saveAsTable(clean_table("playback_events"))
    try:
        # Only the rows from 04:00 (the late play's hour + 1h) to its 28-day decay change.
        written = compute(
            spark, start=at(4), end=at(5) + timedelta(days=28), views=["member_engagement"]
        )
        assert written[view.table] > 0
        with_late = {**EVENTS, "playback_events": [*PLAYS, LATE_PLAY]}
        assert_matches_oracle(spark, view, with_late)
        rows = table_rows(spark, view)
        assert rows[(1, at(4))]["created_timestamp"] == LATE_PLAY["ingestion_timestamp"]
        assert rows[(1, at(4))]["plays_count_1h"] == 1
        assert rows[(1, at(3))]["created_timestamp"] == at(3)  # before it: untouched
    finally:
        spark.sql(f"DELETE FROM {clean_table('playback_events')} WHERE event_id = 'p999'")
        compute(spark, start=at(4), end=at(5) + timedelta(days=28), views=["member_engagement"])


def test_member_3_boundary_values(spark, computed) -> None:
    rows = table_rows(spark, REGISTRY.view("member_engagement"))
    # An event exactly at T is outside [T - 1h, T); one exactly at T - 1h is inside.
    assert rows[(3, at(10))]["plays_count_1h"] == 1
    assert rows[(3, at(11))]["plays_count_1h"] == 1
    assert rows[(3, at(11))]["title_id_last_7d"] == 12
    assert rows[(3, at(34))]["plays_count_1d"] == 1  # [10:00 day 0, 10:00 day 1) holds 10:00
    assert rows[(3, at(35))]["plays_count_1d"] == 1  # the 10:00 play left, the 34:00 one entered


def test_ties_on_time_take_the_greatest_value(spark, computed) -> None:
    rows = table_rows(spark, REGISTRY.view("member_engagement"))
    assert rows[(2, at(8))]["device_last_28d"] == "tablet"
    assert rows[(2, at(8))]["title_id_last_7d"] == 12
    assert rows[(2, at(6))]["plays_count_1h"] == 3


def test_attribute_view_keeps_versions_of_the_interval_only(spark, computed) -> None:
    rows = table_rows(spark, REGISTRY.view("member_profile"))
    assert (1, at(-30)) not in rows and rows[(1, at(50))]["plan"] == "premium"
    assert rows[(3, at(0))]["country"] == "DE"  # same instant: the greatest version
    assert spark.table("features.member_profile").where(F.col("member_id") == 3).count() == 1
