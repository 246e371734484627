"""Ingestion of generated data: every defect the generator makes is quarantined with its
reason, raw = clean + quarantined per interval and over all time, and one run over two
days equals two runs of a day."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from features.catalog import CLEAN, DATABASE_PREFIX_ENV, RAW, database_prefix, table_name
from features.sources import DIMENSION_SOURCES, EVENT_SOURCES
from pipelines.generate import GeneratorConfig, build_world, generate
from pipelines.generate.dimensions import conflicting_members
from pipelines.generate.events import arrived_events
from pipelines.ingest import ingest
from pipelines.ingest.job import already_accepted, ensure_accepted_ids, filed_day
from pipelines.interval import Interval

SOURCE_NAMES = [source.name for source in (*DIMENSION_SOURCES, *EVENT_SOURCES)]
GEN = GeneratorConfig(scale=0.1, malformed_share=0.1, duplicate_share=0.03, hostile_share=0.03)
# Rows whose ingestion time is null or impossible: no interval selects them.
UNPLACED = {"null:ingestion_timestamp", "out_of_range:ingestion_timestamp"}
ROW_LOCAL_KINDS = ("null", "not_finite", "out_of_range", "not_allowed", "future")
D1, D2, D3 = (datetime(2026, 5, d, tzinfo=UTC) for d in (4, 5, 6))


def _generate(spark: SparkSession) -> None:
    generate(
        spark,
        start=D1,
        end=D3,
        scale=GEN.scale,
        malformed_share=GEN.malformed_share,
        duplicate_share=GEN.duplicate_share,
        hostile_share=GEN.hostile_share,
    )


def _ingest(spark: SparkSession, intervals) -> list:
    return [ingest(spark, start=s, end=e) for s, e in intervals]


@pytest.fixture(scope="module")
def generated(spark):
    _generate(spark)
    return _ingest(spark, [(D1, D2), (D2, D3)])


def _in(df: DataFrame, start: datetime, end: datetime, column: str = "ingestion_timestamp"):
    lower, upper = (t.replace(tzinfo=None).isoformat(sep=" ") for t in (start, end))
    return df.where(f"{column} >= TIMESTAMP '{lower}' AND {column} < TIMESTAMP '{upper}'")


def test_generated_defects_are_quarantined_with_their_reason(generated):
    """The reason of each generated defect, from the generator's own labels.

    Defects within a row are found exactly in every run. Duplicates and orphans
    depend on earlier arrivals: rows that arrived before the first run was
    ingested are unknown to it, so those match the labels exactly from the
    second day on (a day's events arrive within a day). Rows without a usable
    ingestion time belong to no interval; each run reports all of them.
    """
    world = build_world(GEN)
    seen: Counter = Counter()
    unplaced: Counter = Counter()
    for day, (report, (start, end)) in enumerate(zip(generated, [(D1, D2), (D2, D3)], strict=True)):
        arrived = arrived_events(world, GEN, Interval(start, end), with_fault=True)
        for name, table in arrived.items():
            labels = Counter(table.column("fault").to_pylist())
            unplaced[name] += sum(labels.pop(r, 0) for r in UNPLACED)
            found = report.tables[name].quarantined
            assert report.tables[name].raw == sum(labels.values()), name
            row_local = {r for r in labels if r.split(":")[0] in ROW_LOCAL_KINDS}
            for reason in row_local | {r for r in found if r.split(":")[0] in ROW_LOCAL_KINDS}:
                assert found.get(reason, 0) == labels[reason], (name, reason)
            if day > 0:
                assert found == {r: n for r, n in labels.items() if r}, name
                assert report.tables[name].clean == labels[""], name
            seen.update(found)
    for report in generated:
        assert {n: c for n, c in report.unplaced.items() if c} == {
            n: c for n, c in unplaced.items() if c
        }
    expected = {
        "null:event_timestamp",
        "not_finite:watch_seconds",
        "out_of_range:watch_seconds",
        "out_of_range:event_timestamp",
        "not_allowed:device",
        "not_allowed:placement",
        "future:event_timestamp",
        "duplicate:event_id",
    }
    assert set(seen) >= expected
    conflicts = len(conflicting_members(world, GEN))
    assert generated[0].tables["members"].quarantined == {"conflict:member_id": conflicts}
    assert set(unplaced) == {"playback_events", "ad_impressions", "ad_clicks"}


def test_raw_equals_clean_plus_quarantined_over_all_time(spark, generated):
    quarantine = spark.table(table_name(CLEAN, "quarantine"))
    for name in SOURCE_NAMES:
        raw = spark.table(table_name(RAW, name)).count()
        clean = spark.table(table_name(CLEAN, name)).count()
        quarantined = quarantine.where(F.col("source_table") == name).count()
        assert raw == clean + quarantined, name
    without_time = quarantine.where(
        "reason IN ('null:ingestion_timestamp', 'out_of_range:ingestion_timestamp')"
    )
    assert without_time.count() > 0
    # Ingesting again (a rerun, then the next interval) counts none of them twice.
    _ingest(spark, [(D1, D2), (D3, D3 + timedelta(hours=1))])
    for name in SOURCE_NAMES:
        raw = spark.table(table_name(RAW, name)).count()
        clean = spark.table(table_name(CLEAN, name)).count()
        quarantined = spark.table(table_name(CLEAN, "quarantine")).where(
            F.col("source_table") == name
        )
        assert raw == clean + quarantined.count(), name


def test_clean_event_dates_follow_the_event_time(spark, generated):
    mismatched = "event_date != to_date(event_timestamp)"
    for name in ("playback_events", "ad_impressions", "ad_clicks"):
        assert spark.table(table_name(CLEAN, name)).where(mismatched).count() == 0, name
    lying = spark.table(table_name(RAW, "playback_events")).where(mismatched).select("event_id")
    corrected = spark.table(table_name(CLEAN, "playback_events")).join(
        lying, "event_id", "left_semi"
    )
    assert corrected.count() > 0  # accepted, with the date derived from the event time


def test_a_redelivery_with_a_moved_event_time_is_a_duplicate(spark, generated):
    """Copies of accepted ids with the event time moved days back, arriving in a later
    run and landing on another event day, are duplicates by identity."""
    clean = spark.table(table_name(CLEAN, "playback_events")).select("event_id", "event_date")
    copies = (
        spark.table(table_name(CLEAN, "quarantine"))
        .where("source_table = 'playback_events' AND reason = 'duplicate:event_id'")
        .select(
            F.get_json_object("record", "$.event_id").alias("event_id"),
            F.to_date(F.get_json_object("record", "$.event_timestamp")).alias("copy_date"),
        )
    )
    moved = copies.join(clean, "event_id").where("datediff(event_date, copy_date) >= 1")
    assert moved.count() > 0


def test_accepted_ids_are_filed_under_the_day_they_name(spark, generated):
    index = spark.table(table_name(CLEAN, "accepted_ids"))
    named = F.to_date(F.regexp_extract("id", r"-([0-9]{8})-", 1), "yyyyMMdd")
    assert index.count() > 0
    assert index.where(~F.col("id_day").eqNullSafe(named)).count() == 0
    # Every clean id is in the index, once.
    for name, key in (("playback_events", "event_id"), ("ad_impressions", "impression_id")):
        ids = spark.table(table_name(CLEAN, name)).select(F.col(key).alias("id"))
        filed = index.where(F.col("source_table") == name).select("id")
        assert ids.count() == filed.count()
        assert ids.exceptAll(filed).count() == 0


def test_a_run_reads_the_index_of_the_days_its_ids_name(spark, generated):
    """The duplicate check prunes the index to the days of the batch's ids, and finds
    the same duplicates as a check against all of it."""
    index = table_name(CLEAN, "accepted_ids")
    source = next(s for s in EVENT_SOURCES if s.name == "playback_events")
    hour = Interval.parse(D2 + timedelta(hours=20), D2 + timedelta(hours=21))
    batch = _in(spark.table(table_name(RAW, source.name)), hour.start, hour.end)
    rows = batch.count()
    ids = batch.where("event_id IS NOT NULL")
    days = {r[0] for r in ids.select(filed_day(source, F.col("event_id"))).distinct().collect()}
    assert days and len(days) < 3  # an hour's ids name its day, the day before, rarely others
    pruned = already_accepted(spark, index, source, batch, rows, hour, frozenset(days))
    whole = already_accepted(spark, index, source, batch, rows, hour)
    assert pruned is not None and whole is not None
    assert pruned.count() > 0  # the generator redelivers some ids in later hours
    assert sorted(pruned.collect()) == sorted(whole.collect())
    plan = pruned._jdf.queryExecution().executedPlan().toString()
    scan = next(line for line in plan.splitlines() if "PartitionFilters" in line)
    partition_filters = scan.split("PartitionFilters: ")[1].split("]")[0]
    assert "id_day" in partition_filters
    assert all(str(day) in partition_filters for day in days if day is not None)


def test_the_index_is_refiled_when_the_declared_id_days_change(spark, generated):
    index = table_name(CLEAN, "accepted_ids")
    # Filed as declared from its first run on, the index was never rebuilt since.
    history = spark.sql(f"DESCRIBE HISTORY {index}").collect()
    created = [row["userMetadata"] for row in history if row["operation"].startswith("CREATE")]
    assert len(created) == 1 and created[0] is not None  # by the first run's write
    before = spark.table(index).collect()
    # As an index filed by another declaration (or by a release before id days) looks.
    spark.sql(f"ALTER TABLE {index} SET TBLPROPERTIES ('platform.idFiling' = 'other')")
    spark.sql(f"DELETE FROM {index} WHERE source_table = 'ad_clicks'")
    assert ensure_accepted_ids(spark) == index
    assert sorted(spark.table(index).collect()) == sorted(before)
    properties = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {index}").collect()}
    assert properties["platform.idFiling"] != "other"
    assert properties["delta.autoOptimize.autoCompact"] == "true"


def test_clean_plus_quarantined_equals_raw_per_table_and_interval(spark, generated):
    quarantine = spark.table(table_name(CLEAN, "quarantine"))
    for report, (start, end) in zip(generated, [(D1, D2), (D2, D3)], strict=True):
        for name, counts in report.tables.items():
            raw = _in(spark.table(table_name(RAW, name)), start, end).count()
            clean = _in(spark.table(table_name(CLEAN, name)), start, end).count()
            by_reason = dict(
                _in(quarantine.where(F.col("source_table") == name), start, end)
                .groupBy("reason")
                .count()
                .collect()
            )
            assert raw == clean + sum(by_reason.values()), name
            assert (counts.raw, counts.clean, counts.quarantined) == (raw, clean, by_reason)
            assert raw > 0 or name in ("members", "titles", "ads")


def test_late_rows_are_ingested_in_the_interval_they_arrive(spark, generated):
    day_one_events = "event_timestamp < TIMESTAMP '2026-05-05 00:00:00'"
    clean = spark.table(table_name(CLEAN, "playback_events"))
    late = _in(clean, D2, D3).where(day_one_events).select("event_id")
    late_raw = _in(spark.table(table_name(RAW, "playback_events")), D2, D3).where(day_one_events)
    assert late.count() > 0
    # Each came from the second day's arrivals, and the first day's run, which did not
    # see them yet, wrote none of them.
    assert late.join(late_raw.select("event_id"), "event_id", "left_anti").count() == 0
    first_run = _in(clean, D1, D2).select("event_id")
    assert late.join(first_run, "event_id").count() == 0


def test_clean_ids_are_unique_and_one_run_equals_two(spark, generated, monkeypatch):
    for name, key in (("playback_events", "event_id"), ("ad_impressions", "impression_id")):
        clean = spark.table(table_name(CLEAN, name))
        assert clean.count() == clean.select(key).distinct().count()
    names = ["playback_events", "ad_impressions", "ad_clicks", "members", "quarantine"]
    two_runs = [table_name(CLEAN, name) for name in [*names, "accepted_ids"]]
    # The same raw rows, ingested by one run in databases of their own.
    monkeypatch.setenv(DATABASE_PREFIX_ENV, f"{database_prefix()}whole_")
    _generate(spark)
    _ingest(spark, [(D1, D3)])
    one_run = [table_name(CLEAN, name) for name in [*names, "accepted_ids"]]
    for whole, split in zip(one_run, two_runs, strict=True):
        assertDataFrameEqual(spark.table(whole), spark.table(split))
