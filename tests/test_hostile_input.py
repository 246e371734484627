"""Hostile raw rows, as a broken producer writes them, through the real `ingest` and `compute`.

Each ends in quarantine with a reason that names its column, or in clean with its fields
corrected; raw = clean + quarantined; compute succeeds with finite values. A bad value
that reaches a clean table without ingest is skipped by compute, and counted.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import REGISTRY
from features.catalog import CLEAN, FEATURES, RAW, table_name
from pipelines.compute import compute
from pipelines.generate import generate
from pipelines.ingest import ingest
from pipelines.tables import CLEAN_EVENTS, DIMENSIONS

pytestmark = pytest.mark.slow

# Other modules use other years of the shared tables.
D0 = datetime(2039, 3, 1, tzinfo=UTC)
SPLIT = D0 + timedelta(hours=5)
END = D0 + timedelta(hours=6)
AFTER = END + timedelta(hours=1)
VIEWS = [REGISTRY.view("member_engagement"), REGISTRY.view("member_profile")]
MEMBER = 1  # a member of the generated world
PLAYS = CLEAN_EVENTS["playback_events"]  # raw plays have the same columns
CONFLICTED = 990_001  # a member whose two rows of one instant disagree


def naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


def _play(event_id: str, when: datetime | None, watch: float, arrived: datetime | None, **kw):
    day = kw.get("event_date", None if when is None else when.date())
    device = kw.get("device", "tv")
    return (event_id, MEMBER, 1, device, watch, when, arrived, day)


ARRIVED = SPLIT + timedelta(minutes=20)
PLAYED = SPLIT + timedelta(minutes=10)
# (row, where it must end: a quarantine reason, or "clean")
HOSTILE = {
    "h-nan": (_play("h-nan", PLAYED, math.nan, ARRIVED), "not_finite:watch_seconds"),
    "h-inf": (_play("h-inf", PLAYED, math.inf, ARRIVED), "not_finite:watch_seconds"),
    "h-minus-inf": (_play("h-minus-inf", PLAYED, -math.inf, ARRIVED), "not_finite:watch_seconds"),
    "h-absurd": (_play("h-absurd", PLAYED, 1e30, ARRIVED), "out_of_range:watch_seconds"),
    "h-no-event-time": (_play("h-no-event-time", None, 60.0, ARRIVED), "null:event_timestamp"),
    "h-no-ingestion-time": (
        _play("h-no-ingestion-time", PLAYED, 60.0, None),
        "null:ingestion_timestamp",
    ),
    "h-1970": (
        _play("h-1970", datetime(1970, 1, 1, 0, 0, 7, tzinfo=UTC), 60.0, ARRIVED),
        "out_of_range:event_timestamp",
    ),
    "h-unknown-device": (
        _play("h-unknown-device", PLAYED, 60.0, ARRIVED, device="fridge"),
        "not_allowed:device",
    ),
    "h-wrong-date": (
        _play("h-wrong-date", PLAYED, 60.0, ARRIVED, event_date=date(2039, 2, 11)),
        "clean",
    ),
}


def _append(spark: SparkSession, rows: list[tuple], schema, table: str) -> None:
    spark.createDataFrame(rows, schema).write.format("delta").mode("append").saveAsTable(table)


def _quarantined(spark: SparkSession, source: str) -> DataFrame:
    return spark.table(table_name(CLEAN, "quarantine")).where(F.col("source_table") == source)


def _ours(df: DataFrame) -> DataFrame:
    """Rows of this module: arrived in [D0, END), or without a usable arrival time."""
    return df.where(
        F.col("ingestion_timestamp").isNull()
        | (F.col("ingestion_timestamp") < F.lit(datetime(2000, 1, 1, tzinfo=UTC)))
        | F.col("ingestion_timestamp").between(naive(D0), naive(END) - timedelta(microseconds=1))
    )


def clear_features(spark: SparkSession) -> None:
    for view in VIEWS:
        if spark.catalog.tableExists(view.table):
            spark.sql(f"DELETE FROM {view.table} WHERE created_timestamp > '{naive(D0)}'")


@pytest.fixture(scope="module")
def pipeline(spark: SparkSession) -> Iterator[dict]:
    generate(spark, start=D0, end=END, scale=0.05, seed=19, hostile_share=0.0)
    ingest(spark, start=D0, end=SPLIT)
    redelivered = (
        spark.table(table_name(CLEAN, "playback_events"))
        .where(F.col("ingestion_timestamp") < naive(SPLIT))
        .where(F.col("ingestion_timestamp") >= naive(D0))
        .orderBy("event_id")
        .first()
    )
    assert redelivered is not None
    moved = redelivered.asDict()
    moved_event = D0 - timedelta(days=3)
    copy = (
        moved["event_id"],
        moved["member_id"],
        moved["title_id"],
        moved["device"],
        moved["watch_seconds"],
        moved_event,
        ARRIVED,
        moved_event.date(),
    )
    _append(
        spark,
        [row for row, _ in HOSTILE.values()] + [copy],
        PLAYS,
        table_name(RAW, "playback_events"),
    )
    conflicting = [
        (CONFLICTED, "US", "basic", date(2020, 1, 1), ARRIVED),
        (CONFLICTED, "US", "premium", date(2020, 1, 1), ARRIVED),
    ]
    _append(spark, conflicting, DIMENSIONS["members"], table_name(RAW, "members"))
    report = ingest(spark, start=SPLIT, end=END)
    clear_features(spark)
    compute(spark, start=D0, end=END, views=VIEWS)
    yield {"report": report, "redelivered": moved["event_id"]}
    clear_features(spark)


def test_each_hostile_row_gets_a_reason_naming_its_column(spark, pipeline):
    found = {}
    for row in _quarantined(spark, "playback_events").collect():
        record = json.loads(row["record"])
        if str(record["event_id"]).startswith("h-"):
            found[record["event_id"]] = row["reason"]
    expected = {key: where for key, (_, where) in HOSTILE.items() if where != "clean"}
    assert found == expected


def test_a_wrong_event_date_is_corrected_in_clean(spark, pipeline):
    row = (
        spark.table(table_name(CLEAN, "playback_events")).where("event_id = 'h-wrong-date'").first()
    )
    assert row is not None
    assert row["event_date"] == PLAYED.date()


def test_a_redelivery_with_its_event_time_moved_days_is_a_duplicate(spark, pipeline):
    copies = (
        _quarantined(spark, "playback_events")
        .where(F.get_json_object("record", "$.event_id") == pipeline["redelivered"])
        .collect()
    )
    assert [r["reason"] for r in copies] == ["duplicate:event_id"]
    assert pipeline["report"].tables["playback_events"].quarantined["duplicate:event_id"] >= 1


def test_conflicting_dimension_rows_resolve_to_one_rule_through_compute(spark, pipeline):
    clean = (
        spark.table(table_name(CLEAN, "members")).where(F.col("member_id") == CONFLICTED).collect()
    )
    assert [r["plan"] for r in clean] == ["premium"]  # the greatest (country, plan, signup)
    reasons = [
        r["reason"]
        for r in _quarantined(spark, "members").collect()
        if json.loads(r["record"])["member_id"] == CONFLICTED
    ]
    assert reasons == ["conflict:member_id"]
    profile = spark.table(table_name(FEATURES, "member_profile")).where(
        F.col("member_id") == CONFLICTED
    )
    assert [r["plan"] for r in profile.collect()] == ["premium"]


def test_raw_equals_clean_plus_quarantined(spark, pipeline):
    for name in ("playback_events", "ad_impressions", "ad_clicks", "members"):
        raw = _ours(spark.table(table_name(RAW, name))).count()
        clean = _ours(spark.table(table_name(CLEAN, name))).count()
        quarantined = _ours(_quarantined(spark, name)).count()
        assert raw == clean + quarantined, name


def test_compute_succeeds_with_finite_values(spark, pipeline):
    table = spark.table(table_name(FEATURES, "member_engagement")).where(
        F.col("created_timestamp") > naive(D0)
    )
    doubles = [f.name for f in table.schema.fields if f.dataType.typeName() == "double"]
    assert table.count() > 0
    infinite = F.lit(False)
    for column in doubles:
        infinite = infinite | F.isnan(column) | F.col(column).isin(math.inf, -math.inf)
    assert table.where(infinite).count() == 0
    longest = table.agg(F.max("watch_seconds_max_7d")).first()[0]
    assert longest is not None and longest <= 86_400


def test_compute_skips_and_counts_bad_rows_written_around_ingest(spark, pipeline, caplog):
    """Another tool wrote bad rows straight into the clean table: compute goes on."""
    arrived = END + timedelta(minutes=5)
    bad = [
        ("x-valid", MEMBER, 1, "tv", 100.0, END, arrived, END.date()),
        ("x-nan", MEMBER, 1, "tv", math.nan, END, arrived, END.date()),
        ("x-absurd", MEMBER, 1, "tv", 1e30, END, arrived, END.date()),
        (
            "x-1970",
            MEMBER,
            1,
            "tv",
            5.0,
            datetime(1970, 1, 2, tzinfo=UTC),
            arrived,
            date(1970, 1, 2),
        ),
    ]
    _append(spark, bad, PLAYS, table_name(CLEAN, "playback_events"))
    try:
        with caplog.at_level(logging.WARNING, logger="pipelines.compute.job"):
            compute(spark, start=END, end=AFTER, views=[REGISTRY.view("member_engagement")])
        message = " ".join(r.getMessage() for r in caplog.records)
        assert f"skips 3 unusable rows of {table_name(CLEAN, 'playback_events')}" in message
        assert "not_finite:watch_seconds 1" in message
        assert "out_of_range:watch_seconds 1" in message
        assert "out_of_range:event_timestamp 1" in message
        row = (
            spark.table(table_name(FEATURES, "member_engagement"))
            .where(
                (F.col("member_id") == MEMBER)
                & (F.col("event_timestamp") == naive(AFTER))
                & (F.col("created_timestamp") == naive(AFTER))
            )
            .first()
        )
        assert row is not None
        assert row["plays_count_1h"] == 1  # only the valid play of that hour
        assert math.isfinite(row["watch_seconds_max_7d"]) and row["watch_seconds_max_7d"] <= 86_400
    finally:
        spark.sql(f"DELETE FROM {table_name(CLEAN, 'playback_events')} WHERE event_id LIKE 'x-%'")
