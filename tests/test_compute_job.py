"""`compute` and `backfill` as jobs: idempotence, composition, bad input, resumption, CLI."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from clean_events import END, START, write_clean_tables
from pyspark.sql import functions as F
from typer.testing import CliRunner

from features import (
    REGISTRY,
    Aggregation,
    DeclarationError,
    EventSource,
    FeatureView,
    Op,
)
from features.catalog import FEATURES, table_name
from features.entities import member
from pipelines.cli import app
from pipelines.compute import backfill, compute, progress_table
from pipelines.compute.backfill import is_covered
from pipelines.errors import IntervalError, MissingTableError
from pipelines.interval import Interval, parse_time

# The module, not the function `pipelines.compute.backfill` that shadows it.
backfill_module = importlib.import_module("pipelines.compute.backfill")
VIEWS = ["member_engagement", "ad_performance"]  # the richest view and a two-source one


def tables() -> list[str]:
    """The views' tables, named when a test runs (in the module's own databases)."""
    return [REGISTRY.view(v).table for v in VIEWS]


def state_tables() -> list[str]:
    """Where the real-time views among VIEWS keep their window state."""
    return [view.state_table for v in VIEWS if (view := REGISTRY.view(v)).realtime]


@pytest.fixture(scope="module")
def clean(spark) -> None:
    write_clean_tables(spark)


@pytest.fixture(scope="module")
def computed(spark, clean) -> dict[str, list[tuple]]:
    """The tables of VIEWS computed over [START, END) once: {table: sorted rows}."""
    compute(spark, start=START, end=END, views=VIEWS)
    return {table: snapshot(spark, table) for table in tables()}


def snapshot(spark, table: str) -> list[tuple]:
    """The table's versions of this module's time range (other modules write other years)."""
    mine = (F.col("created_timestamp") > START) & (F.col("created_timestamp") <= END)
    return sorted(tuple(row) for row in spark.table(table).where(mine).collect())


def version(spark, table: str) -> int:
    return spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").collect()[0]["version"]


def test_recompute_is_idempotent_with_one_write_per_table(spark, computed) -> None:
    before = {table: version(spark, table) for table in tables()}
    written = compute(spark, start=START, end=END, views=VIEWS)
    for table in tables():
        assert snapshot(spark, table) == computed[table]
        assert written[table] == len(computed[table]) > 0
        assert version(spark, table) == before[table] + 1


def test_a_view_that_fails_takes_the_whole_run_back(spark, computed, monkeypatch) -> None:
    compute_job = importlib.import_module("pipelines.compute.job")
    real_rows = compute_job.view_rows
    later = (END - timedelta(hours=1), END)
    written = [*tables(), *state_tables()]
    assert len(written) == 4
    before = {table: spark.table(table).collect() for table in written}

    def ad_performance_fails(spark, view, interval, arrived=None, state=None):
        # After its state table was written: that write is taken back too.
        if view.name == "ad_performance":
            raise RuntimeError("executor lost")
        return real_rows(spark, view, interval, arrived, state)

    monkeypatch.setattr(compute_job, "view_rows", ad_performance_fails)
    with pytest.raises(RuntimeError, match="executor lost"):
        compute(spark, start=later[0], end=later[1], views=VIEWS)
    engagement = REGISTRY.view("member_engagement").table
    assert spark.sql(f"DESCRIBE HISTORY {engagement} LIMIT 1").first()["operation"] == "RESTORE"
    for table in written:
        assert sorted(spark.table(table).collect()) == sorted(before[table]), table


def test_adjacent_intervals_compose_into_their_union(spark, computed) -> None:
    for table in tables():
        spark.sql(f"DELETE FROM {table}")
    middle = START + timedelta(days=1, hours=7)  # mid-day: both halves write that partition
    first = compute(spark, start=START, end=middle, views=VIEWS)
    second = compute(spark, start=middle, end=END, views=VIEWS)
    for table in tables():
        assert snapshot(spark, table) == computed[table]
        assert first[table] > 0 and second[table] > 0
        assert first[table] + second[table] == len(computed[table])


def test_unknown_view_is_refused_before_any_write(spark, computed) -> None:
    before = version(spark, tables()[0])
    with pytest.raises(DeclarationError, match="'no_such_view'"):
        compute(spark, start=START, end=END, views=[VIEWS[0], "no_such_view"])
    assert version(spark, tables()[0]) == before


def test_missing_source_table_is_refused_before_any_write(spark, computed) -> None:
    before = version(spark, tables()[0])
    ghost = EventSource("ghost_events", columns={"member_id": "int64"})
    view = FeatureView(
        "ghost_activity", member, (Aggregation(ghost, Op.COUNT, ("1d",), alias="ghosts"),)
    )
    with pytest.raises(MissingTableError, match=r"clean\.ghost_events"):
        compute(spark, start=START, end=END, views=[VIEWS[0], view])
    assert version(spark, tables()[0]) == before
    assert not spark.catalog.tableExists(table_name(FEATURES, "ghost_activity"))


@pytest.mark.parametrize(
    ("start", "end"),
    [(START + timedelta(minutes=30), END), (START, END - timedelta(seconds=1)), (END, START)],
)
def test_interval_must_be_whole_hours_and_not_reversed(spark, start, end) -> None:
    with pytest.raises(IntervalError):
        compute(spark, start=start, end=end, views=["member_profile"])


def test_chunk_coverage_accepts_other_chunkings() -> None:
    start = parse_time(START)
    noon, day = start + timedelta(hours=12), timedelta(days=1)
    halves = [(start, noon), (noon, start + day)]  # as `completed` returns them: UTC
    assert is_covered(Interval.parse(START, START + day), halves)
    assert is_covered(Interval.parse(START + timedelta(hours=3), noon), halves)
    assert not is_covered(Interval.parse(START, START + day), halves[:1])
    assert not is_covered(Interval.parse(START, START + 2 * day), halves)


def test_backfill_equals_compute_and_skips_completed_chunks(spark, computed) -> None:
    table, end = REGISTRY.view("ad_performance").table, START + timedelta(days=3)
    # Rows of [START, end) are the same whatever interval computed them.
    expected = [row for row in computed[table] if row[1] < end]
    spark.sql(f"DELETE FROM {table}")
    if spark.catalog.tableExists(progress_table()):
        spark.sql(f"DELETE FROM {progress_table()}")

    chunk = timedelta(hours=36)
    written = backfill(spark, start=START, end=end, chunk=chunk, views=["ad_performance"])
    assert snapshot(spark, table) == expected
    assert written == {table: len(expected)}
    progress = spark.table(progress_table()).where(F.col("view") == "ad_performance")
    assert progress.count() == 2

    before = version(spark, table)
    again = backfill(spark, start=START, end=end, chunk=chunk, views=["ad_performance"])
    assert again == {table: 0}
    assert version(spark, table) == before


def test_backfill_resumes_after_a_failure(spark, clean, monkeypatch) -> None:
    view, end, chunk = "member_profile", START + timedelta(days=4), timedelta(days=2)
    if spark.catalog.tableExists(progress_table()):
        spark.sql(f"DELETE FROM {progress_table()}")
    calls: list[Interval] = []
    failures: list[Interval] = []
    real_compute = backfill_module.compute

    def failing_once_on_second_chunk(spark, *, start, end, views, parallelism):
        calls.append(Interval.parse(start, end))
        if len(calls) == 2 and not failures:
            failures.append(calls[-1])
            raise RuntimeError("executor lost")
        return real_compute(spark, start=start, end=end, views=views, parallelism=parallelism)

    monkeypatch.setattr(backfill_module, "compute", failing_once_on_second_chunk)
    with pytest.raises(RuntimeError, match="executor lost"):
        backfill(spark, start=START, end=end, chunk=chunk, views=[view])
    calls.clear()
    backfill(spark, start=START, end=end, chunk=chunk, views=[view])
    assert [c.start.replace(tzinfo=None) for c in calls] == [START + chunk]  # the first was kept
    calls.clear()
    backfill(spark, start=START, end=end, chunk=chunk, views=[view], force=True)
    assert len(calls) == 2


def test_cli_compute_and_backfill(spark, clean) -> None:
    runner = CliRunner()
    args = ["--start", START.isoformat(), "--end", END.isoformat(), "--views", "ad_profile"]
    result = runner.invoke(app, ["compute", *args])
    assert result.exit_code == 0, result.output
    table = REGISTRY.view("ad_profile").table
    rows = spark.table(table).count()
    assert result.output.strip() == f"{table}: {rows} rows"

    result = runner.invoke(app, ["backfill", *args, "--chunk-hours", "1000", "--force"])
    assert result.exit_code == 0, result.output
    assert f"{table}: {rows} rows" in result.output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compute", "--start", "2026-01-01T00:30", "--end", "2026-01-02"], "whole hours"),
        (["compute", "--start", "yesterday", "--end", "2026-01-02"], "not a date"),
        (["compute", "--start", "2026-01-01", "--end", "2026-01-02", "--views", "x"], "'x'"),
        (["backfill", "--start", "2026-01-01", "--end", "2026-01-02", "--chunk-hours", "0"], "1"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv, message) -> None:
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1
