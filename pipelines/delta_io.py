"""Catalog and Delta helpers shared by every job: one way to read an interval of a table,
one atomic write per table per run, and runs that write several tables all or nothing."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from pyspark.sql import DataFrame, SparkSession

from pipelines.errors import MissingTableError
from pipelines.interval import Interval

LOG = logging.getLogger(__name__)


def ensure_database(spark: SparkSession, database: str) -> None:
    # The Hive client logs a stack trace for IF NOT EXISTS on an existing database.
    if not spark.catalog.databaseExists(database):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")


def table_exists(spark: SparkSession, table: str) -> bool:
    return bool(spark.catalog.tableExists(table))


def require_table(spark: SparkSession, table: str, hint: str = "") -> None:
    if not table_exists(spark, table):
        suffix = f" ({hint})" if hint else ""
        raise MissingTableError(f"table {table} does not exist{suffix}")


def rows_in(
    table: DataFrame,
    column: str,
    interval: Interval,
    *,
    closed: str = "start",
    partition_column: str | None = None,
) -> DataFrame:
    """The rows of `table` whose `column` lies in the interval, pruned to its days'
    partitions when `partition_column` holds the date of `column` (`Interval.sql`).
    Every job reads an interval of a table this way."""
    return table.where(interval.sql(column, closed=closed, partition_column=partition_column))


def replace_where(
    df: DataFrame,
    table: str,
    *,
    predicate: str,
    partition_by: Sequence[str] = (),
    properties: dict[str, str] | None = None,
    run: str | None = None,
    merge_schema: bool = False,
) -> None:
    """Atomically replace the rows of `table` matching `predicate` with `df`.

    One Delta transaction: readers see the old or the new rows, never a mix, and a
    failed write leaves the table as it was. Rerunning with the same `df` gives the
    same table (idempotent). Every row of `df` must satisfy `predicate`; Delta
    checks this and fails the write otherwise. Creates the table on first use. `run`
    marks the commit as a write of an `all_or_nothing` run; `merge_schema` adds the
    columns `df` has and the table lacks.
    """
    spark = df.sparkSession
    ensure_database(spark, table.split(".")[0])
    writer = df.write.format("delta")
    if run is not None:
        writer = writer.option("userMetadata", run)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if not table_exists(spark, table):
        for key, value in (properties or {}).items():
            writer = writer.option(key, value)
        writer.mode("overwrite").saveAsTable(table)
        if properties:
            set_properties(spark, table, properties)
        return
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    writer.mode("overwrite").option("replaceWhere", predicate).saveAsTable(table)


def set_properties(spark: SparkSession, table: str, properties: dict[str, str]) -> None:
    pairs = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
    spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ({pairs})")


def table_version(spark: SparkSession, table: str) -> int | None:
    """The table's latest Delta version, or None if it does not exist."""
    if not table_exists(spark, table):
        return None
    latest = spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").collect()
    return int(latest[0]["version"])


@contextmanager
def all_or_nothing(spark: SparkSession, tables: Iterable[str]) -> Iterator[str]:
    """Writes to several tables that stand or fall together; yields the run's mark, which
    every write of the block passes to `replace_where(run=...)`.

    Delta commits one table at a time, so a run that fails after some of its writes would
    leave those tables changed and the others not. On any error inside the block, every
    table that moved is restored to the version it had before (a table the run created is
    dropped), then the error is raised: a failed run leaves the tables as they were.
    A table that another writer committed to meanwhile is not restored (that would undo
    the other commit); like a process killed mid-run, it holds whole per-table commits,
    and rerunning the interval (every job replaces exactly its share) repairs it.
    """
    run = f"run-{uuid.uuid4()}"
    before = {table: table_version(spark, table) for table in tables}
    try:
        yield run
    except BaseException:
        for table, version in before.items():
            _restore(spark, table, version, run)
        raise


def _restore(spark: SparkSession, table: str, version: int | None, run: str) -> None:
    now = table_version(spark, table)
    if now is None or now == version:
        return
    first_of_run = 0 if version is None else version + 1
    since = spark.sql(f"DESCRIBE HISTORY {table}").where(f"version >= {first_of_run}")
    others = since.where(f"userMetadata IS NULL OR userMetadata != '{run}'").count()
    if others:
        LOG.error("not restoring %s: another writer committed to it during the failed run", table)
    elif version is None:
        LOG.warning("the run failed: dropping %s, which it created", table)
        spark.sql(f"DROP TABLE {table}")
    else:
        LOG.warning("the run failed: restoring %s to version %s", table, version)
        spark.sql(f"RESTORE TABLE {table} TO VERSION AS OF {version}")
