"""Runs that write several Delta tables: all or nothing, without undoing another writer."""

from __future__ import annotations

import pytest

from features.catalog import database_prefix
from pipelines.delta_io import all_or_nothing, replace_where, table_exists


def _table(name: str) -> str:
    return f"{database_prefix()}scratch.{name}"


def _values(spark, table: str) -> list[int]:
    return sorted(row[0] for row in spark.table(table).collect())


def _numbers(spark, *values: int):
    return spark.createDataFrame([(v,) for v in values], "n int")


def test_a_failed_run_restores_what_it_wrote_and_drops_what_it_created(spark):
    kept, created = _table("kept"), _table("created")
    replace_where(_numbers(spark, 1, 2), kept, predicate="true")
    failing = pytest.raises(RuntimeError, match="boom")
    with failing, all_or_nothing(spark, [kept, created]) as run:
        replace_where(_numbers(spark, 3), kept, predicate="n = 3", run=run)
        replace_where(_numbers(spark, 9), created, predicate="true", run=run)
        assert _values(spark, kept) == [1, 2, 3]
        raise RuntimeError("boom")
    assert _values(spark, kept) == [1, 2]
    assert not table_exists(spark, created)


def test_a_table_another_writer_changed_meanwhile_is_left_alone(spark):
    shared = _table("shared")
    replace_where(_numbers(spark, 1), shared, predicate="true")
    failing = pytest.raises(RuntimeError, match="boom")
    with failing, all_or_nothing(spark, [shared]) as run:
        replace_where(_numbers(spark, 2), shared, predicate="n = 2", run=run)
        replace_where(_numbers(spark, 5), shared, predicate="n = 5")  # someone else
        raise RuntimeError("boom")
    assert _values(spark, shared) == [1, 2, 5]


def test_a_run_that_succeeds_keeps_its_writes(spark):
    table = _table("succeeded")
    with all_or_nothing(spark, [table]) as run:
        replace_where(_numbers(spark, 7), table, predicate="true", run=run)
    assert _values(spark, table) == [7]
