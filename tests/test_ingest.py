"""Ingestion with quarantine: every raw row ends up clean or quarantined with one reason."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from features.catalog import CLEAN, DATABASE_PREFIX_ENV, RAW, table_name
from pipelines.errors import IntervalError, MissingTableError
from pipelines.ingest import ingest
from pipelines.tables import CLEAN_EVENTS, DIMENSIONS, QUARANTINE, RAW_EVENTS

T0 = datetime(2026, 4, 1, tzinfo=UTC)
FIRST = (T0, T0 + timedelta(hours=1))
SECOND = (T0 + timedelta(hours=1), T0 + timedelta(hours=2))
DAY0 = T0.date()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _write(spark: SparkSession, rows: list[tuple], schema, table: str) -> None:
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {table.split('.')[0]}")
    df = spark.createDataFrame(rows, schema)
    df.write.format("delta").mode("overwrite").saveAsTable(table)


def _play(event_id, member_id, title_id, event_min, watch, ingest_min):
    event = at(event_min)
    return (event_id, member_id, title_id, "tv", watch, event, at(ingest_min), event.date())


def _impression(impression_id, member_id, ad_id, event_min, ingest_min):
    event = at(event_min)
    return (impression_id, member_id, ad_id, "preroll", event, at(ingest_min), event.date())


def _click(impression_id, event_min, ingest_min):
    event = at(event_min)
    return (impression_id, event, at(ingest_min), event.date())


SIGNUP = date(2024, 1, 1)
RAW_ROWS = {
    "members": (
        DIMENSIONS["members"],
        [
            (1, "US", "ads", SIGNUP, at(1)),
            (2, "DE", "premium", SIGNUP, at(1)),
            (None, "FR", "basic", SIGNUP, at(1)),  # null:member_id
            (2, "DE", "premium", SIGNUP, at(1)),  # duplicate of the same version
            (1, "US", "basic", SIGNUP, at(90)),  # a new version, second hour
        ],
    ),
    "titles": (DIMENSIONS["titles"], [(10, "drama", SIGNUP, at(1))]),
    "ads": (DIMENSIONS["ads"], [(100, 7, "advertiser_001", "retail", 5.0, at(1))]),
    "playback_events": (
        RAW_EVENTS["playback_events"],
        [
            _play("p1", 1, 10, 5, 600.0, 6),
            _play(None, 1, 10, 5, 600.0, 6),  # null:event_id
            _play("p-null-member", None, 10, 5, 600.0, 6),  # null:member_id
            _play("p-null-watch", 1, 10, 5, None, 6),  # null:watch_seconds
            _play("p-negative", 1, 10, 5, -5.0, 6),  # out_of_range:watch_seconds
            _play("p-future", 1, 10, 130, 600.0, 10),  # future:event_timestamp
            _play("p-skewed", 2, 10, 12, 60.0, 10),  # 2 min ahead: within tolerance
            _play("p1", 1, 10, 5, 600.0, 20),  # duplicate, second delivery
            _play("p-null-title-negative", 1, None, 5, -5.0, 6),  # null:title_id wins
            _play("p-future-negative", 1, 10, 240, -5.0, 6),  # the value, before the time
            _play("p-late", 2, 10, -60, 300.0, 70),  # yesterday's play, second hour
            _play("p1", 1, 10, 5, 600.0, 65),  # duplicate of a row accepted earlier
            _play("p-outside", 2, 10, 100, 300.0, 180),  # arrives after both intervals
        ],
    ),
    "ad_impressions": (
        RAW_EVENTS["ad_impressions"],
        [
            _impression("i1", 1, 100, 5, 6),
            _impression("i2", 2, 100, 7, 8),
            _impression("i1", 1, 100, 5, 30),  # duplicate
            _impression("i3", 1, None, 5, 6),  # null:ad_id
            _impression("i4", 2, 100, 180, 9),  # future:event_timestamp
            _impression("i5", 1, 100, 50, 75),  # late impression, second hour
        ],
    ),
    "ad_clicks": (
        RAW_EVENTS["ad_clicks"],
        [
            _click("i1", 6, 7),
            _click("imp-missing", 6, 7),  # orphan:impression_id
            _click("i3", 6, 7),  # orphan: its impression was quarantined
            _click(None, 6, 7),  # null:impression_id
            _click("i2", 8, 9),
            _click("i2", 8, 11),  # duplicate
            _click("i1", 240, 15),  # future, not duplicate
            _click("i5", 51, 76),  # second hour, with its impression
            _click("i1", 6, 80),  # duplicate of a click accepted in the first hour
            _click("i4", 10, 70),  # orphan: its impression was quarantined
        ],
    ),
}

# (source, reason, key of the raw row); p1's two extra deliveries each appear once.
EXPECTED_QUARANTINE = [
    ("members", "null:member_id", None),
    ("members", "duplicate:member_id", "2"),
    ("playback_events", "null:event_id", None),
    ("playback_events", "null:member_id", "p-null-member"),
    ("playback_events", "null:watch_seconds", "p-null-watch"),
    ("playback_events", "out_of_range:watch_seconds", "p-negative"),
    ("playback_events", "future:event_timestamp", "p-future"),
    ("playback_events", "duplicate:event_id", "p1"),
    ("playback_events", "duplicate:event_id", "p1"),
    ("playback_events", "null:title_id", "p-null-title-negative"),
    ("playback_events", "out_of_range:watch_seconds", "p-future-negative"),
    ("ad_impressions", "duplicate:impression_id", "i1"),
    ("ad_impressions", "null:ad_id", "i3"),
    ("ad_impressions", "future:event_timestamp", "i4"),
    ("ad_clicks", "orphan:impression_id", "imp-missing"),
    ("ad_clicks", "orphan:impression_id", "i3"),
    ("ad_clicks", "null:impression_id", None),
    ("ad_clicks", "duplicate:impression_id", "i2"),
    ("ad_clicks", "future:event_timestamp", "i1"),
    ("ad_clicks", "orphan:impression_id", "i4"),
    ("ad_clicks", "duplicate:impression_id", "i1"),
]
KEYS = {
    "members": "member_id",
    "titles": "title_id",
    "ads": "ad_id",
    "playback_events": "event_id",
    "ad_impressions": "impression_id",
    "ad_clicks": "impression_id",
}


def _quarantined(spark: SparkSession) -> Counter:
    rows = spark.table(table_name(CLEAN, "quarantine")).collect()
    found: Counter = Counter()
    for row in rows:
        key = KEYS[row["source_table"]]
        value = json.loads(row["record"])[key]
        found[(row["source_table"], row["reason"], None if value is None else str(value))] += 1
    return found


def _ids(spark: SparkSession, table: str, key: str) -> list:
    return sorted(row[0] for row in spark.table(table).select(key).collect())


@pytest.fixture(scope="module")
def inline(spark):
    for name, (schema, rows) in RAW_ROWS.items():
        _write(spark, rows, schema, table_name(RAW, name))
    first = ingest(
        spark,
        start=FIRST[0],
        end=FIRST[1],
    )
    second = ingest(
        spark,
        start=SECOND[0],
        end=SECOND[1],
    )
    return first, second


def test_each_defect_gets_its_reason_and_valid_rows_stay_clean(spark, inline):
    assert _quarantined(spark) == Counter(EXPECTED_QUARANTINE)

    assert _ids(spark, table_name(CLEAN, "members"), "member_id") == [1, 1, 2]
    assert _ids(spark, table_name(CLEAN, "playback_events"), "event_id") == [
        "p-late",
        "p-skewed",
        "p1",
    ]
    assert _ids(spark, table_name(CLEAN, "ad_impressions"), "impression_id") == ["i1", "i2", "i5"]
    clicks = spark.table(table_name(CLEAN, "ad_clicks")).select(
        "impression_id", "member_id", "ad_id"
    )
    assertDataFrameEqual(clicks, [("i1", 1, 100), ("i2", 2, 100), ("i5", 1, 100)])


def test_clean_tables_keep_the_contract_schemas(spark, inline):
    expected = {**DIMENSIONS, **CLEAN_EVENTS, "quarantine": QUARANTINE}
    for name, schema in expected.items():
        actual = spark.table(table_name(CLEAN, name)).schema
        assert [(f.name, f.dataType) for f in actual] == [(f.name, f.dataType) for f in schema]


def test_report_counts_per_reason(inline):
    first, second = inline
    plays = first.tables["playback_events"]
    assert (plays.raw, plays.clean) == (10, 2)
    assert plays.quarantined == {
        "null:event_id": 1,
        "null:member_id": 1,
        "null:title_id": 1,
        "null:watch_seconds": 1,
        "out_of_range:watch_seconds": 2,
        "future:event_timestamp": 1,
        "duplicate:event_id": 1,
    }
    assert next(iter(plays.quarantined)) == "null:event_id"  # by precedence, then name
    assert second.tables["playback_events"].quarantined == {"duplicate:event_id": 1}
    assert second.tables["ad_clicks"].quarantined == {
        "orphan:impression_id": 1,
        "duplicate:impression_id": 1,
    }
    assert (second.tables["members"].raw, second.tables["members"].clean) == (1, 1)
    assert any("playback_events" in line and "null:member_id 1" in line for line in first.lines())


def test_quarantine_keeps_the_raw_row_whole(spark, inline):
    row = (
        spark.table(table_name(CLEAN, "quarantine"))
        .where(F.col("reason") == "out_of_range:watch_seconds")
        .where(F.col("record").contains('"p-negative"'))
        .first()
    )
    record = json.loads(row["record"])
    assert record["event_id"] == "p-negative"
    assert record["watch_seconds"] == -5.0
    assert record["device"] == "tv"
    assert record["ingestion_timestamp"].startswith("2026-04-01T00:06:00")
    null_key = (
        spark.table(table_name(CLEAN, "quarantine"))
        .where((F.col("source_table") == "playback_events") & (F.col("reason") == "null:event_id"))
        .collect()
    )
    assert any(json.loads(r["record"])["event_id"] is None for r in null_key)
    assert row["ingestion_date"] == DAY0


def test_rerunning_an_earlier_interval_changes_nothing(spark, inline):
    tables = ["members", "playback_events", "ad_impressions", "ad_clicks", "quarantine"]
    before = {name: spark.table(table_name(CLEAN, name)).collect() for name in tables}
    again = ingest(
        spark,
        start=FIRST[0],
        end=FIRST[1],
    )
    assert again.tables == inline[0].tables
    for name in tables:
        assertDataFrameEqual(spark.table(table_name(CLEAN, name)), before[name])


def test_missing_raw_table_is_named(spark, monkeypatch):
    monkeypatch.setenv(DATABASE_PREFIX_ENV, "nothing_here_")
    with pytest.raises(MissingTableError, match=r"nothing_here_raw\.members"):
        ingest(spark, start=FIRST[0], end=FIRST[1])


def test_empty_or_reversed_interval_is_refused(spark):
    with pytest.raises(IntervalError):
        ingest(spark, start="2026-04-01T01:00", end="2026-04-01T00:00")
    with pytest.raises(IntervalError):
        ingest(spark, start="2026-04-01", end="2026-04-01")


def test_a_failed_run_leaves_every_table_as_it_was(spark, inline, monkeypatch):
    import pipelines.ingest.job as ingest_job
    from pipelines.delta_io import table_version

    third = (T0 + timedelta(hours=2), T0 + timedelta(hours=3))
    spark.createDataFrame(
        [_play("p-third", 2, 10, 125, 60.0, 130)], RAW_EVENTS["playback_events"]
    ).write.format("delta").mode("append").saveAsTable(table_name(RAW, "playback_events"))
    tables = [table_name(CLEAN, name) for name in (*KEYS, "quarantine", "accepted_ids")]
    versions = {table: table_version(spark, table) for table in tables}
    rows = {table: spark.table(table).collect() for table in tables}
    write = ingest_job.replace_where

    def quarantine_write_fails(df, table, **options):
        if table == table_name(CLEAN, "quarantine"):
            raise RuntimeError("disk full")
        write(df, table, **options)

    monkeypatch.setattr(ingest_job, "replace_where", quarantine_write_fails)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest(spark, start=third[0], end=third[1])
    # The clean tables and the id index were written before the quarantine; all went back.
    plays = table_name(CLEAN, "playback_events")
    history = spark.sql(f"DESCRIBE HISTORY {plays} LIMIT 2").collect()
    assert [row["operation"] for row in history] == ["RESTORE", "WRITE"]
    assert history[0]["operationParameters"]["version"] == str(versions[plays])
    for table in tables:
        assertDataFrameEqual(spark.table(table), rows[table])
    monkeypatch.setattr(ingest_job, "replace_where", write)
    ingest(spark, start=third[0], end=third[1])
    assert "p-third" in _ids(spark, table_name(CLEAN, "playback_events"), "event_id")
