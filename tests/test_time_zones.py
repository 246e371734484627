"""The driver's local time zone changes nothing: intervals, label times and backfill
records stay UTC instants on a machine that is not in UTC.

PySpark converts naive datetimes (in literals, `createDataFrame` and collected rows)
with the Python process's local time zone, whatever the session time zone is. These
tests switch the process to New York (UTC-5/-4, with a repeated hour in November).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql import functions as F

from features import REGISTRY
from pipelines.compute.backfill import completed, is_covered, record
from pipelines.interval import Interval, utc_literal
from pipelines.tables import CLEAN_EVENTS
from pipelines.training import click_labels
from pipelines.training.asof import label_stats

AD_IMPRESSIONS = CLEAN_EVENTS["ad_impressions"]
CLEAN_AD_CLICKS = CLEAN_EVENTS["ad_clicks"]

DAY = datetime(2026, 3, 2, tzinfo=UTC)
# 01:30 in New York twice: 05:30 UTC (daylight time) and 06:30 UTC (standard time).
FOLD_FIRST = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
FOLD_SECOND = FOLD_FIRST + timedelta(hours=1)


@pytest.fixture
def new_york() -> Iterator[None]:
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = previous
        time.tzset()


def micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_literals_are_utc_instants(spark, new_york) -> None:
    naive = DAY.replace(tzinfo=None)
    row = (
        spark.range(1)
        .select(
            F.unix_micros(F.lit(naive)).alias("plain"),
            F.unix_micros(utc_literal(naive)).alias("naive"),
            F.unix_micros(utc_literal(DAY)).alias("aware"),
        )
        .first()
    )
    assert row is not None
    # The hazard is real here: a plain naive literal is read as New York time.
    assert row["plain"] == micros(DAY + timedelta(hours=5))
    assert row["naive"] == row["aware"] == micros(DAY)


def test_interval_sql_selects_the_utc_interval(spark, new_york) -> None:
    """The one way to put an interval into SQL text: half-open at either end, in UTC."""
    interval = Interval(DAY, DAY + timedelta(hours=1))
    instants = [DAY - timedelta(microseconds=1), DAY, DAY + timedelta(minutes=59), interval.end]
    rows = spark.createDataFrame([(micros(t),) for t in instants], "us long").select(
        F.col("us"), F.timestamp_micros("us").alias("t")
    )
    starts = [r["us"] for r in rows.where(interval.sql("t")).orderBy("us").collect()]
    ends = [r["us"] for r in rows.where(interval.sql("t", closed="end")).orderBy("us").collect()]
    assert starts == [micros(DAY), micros(DAY + timedelta(minutes=59))]
    assert ends == [micros(DAY + timedelta(minutes=59)), micros(interval.end)]


def test_click_labels_keep_the_utc_interval(spark, new_york) -> None:
    def impression(name: str, when: datetime) -> tuple:
        return (name, 1, 10, "home", when, when, when.date())

    end = DAY + timedelta(days=1)
    impressions = spark.createDataFrame(
        [
            impression("before", DAY - timedelta(minutes=1)),
            impression("first", DAY),
            impression("last", end - timedelta(minutes=1)),
            impression("after", end),
        ],
        AD_IMPRESSIONS,
    )
    clicks = spark.createDataFrame(
        [("last", 1, 10, end + timedelta(minutes=29), end, end.date())], CLEAN_AD_CLICKS
    )
    labels = click_labels(impressions, clicks, Interval.parse(DAY, end))
    got = {
        (r["impression_id"], r["us"], r["clicked"])
        for r in labels.select(
            "impression_id", F.unix_micros("event_timestamp").alias("us"), "clicked"
        ).collect()
    }
    assert got == {("first", micros(DAY), 0), ("last", micros(end - timedelta(minutes=1)), 1)}


def test_label_time_range_survives_the_repeated_hour(spark, new_york) -> None:
    labels = spark.createDataFrame(
        [(1, FOLD_FIRST), (2, FOLD_SECOND)], "member_id long, event_timestamp timestamp"
    )
    stats = label_stats(labels, "event_timestamp")
    assert (stats.rows, stats.earliest, stats.latest) == (2, FOLD_FIRST, FOLD_SECOND)


def test_backfill_records_read_back_as_the_same_chunk(spark, new_york) -> None:
    view = dataclasses.replace(REGISTRY.view("member_profile"), name="time_zone_probe")
    chunk = Interval.parse(DAY, DAY + timedelta(days=1))
    record(spark, view, chunk, view.table, rows=0)
    assert completed(spark, view) == [(chunk.start, chunk.end)]
    assert is_covered(chunk, completed(spark, view))
