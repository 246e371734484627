"""Catalog and Delta helpers shared by every job: one way to read an interval of a table,
one atomic write per table per run."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession

from pipelines.errors import MissingTableError
from pipelines.interval import Interval


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
) -> None:
    """Atomically replace the rows of `table` matching `predicate` with `df`.

    One Delta transaction: readers see the old or the new rows, never a mix, and a
    failed write leaves the table as it was. Rerunning with the same `df` gives the
    same table (idempotent). Every row of `df` must satisfy `predicate`; Delta
    checks this and fails the write otherwise. Creates the table on first use.
    """
    spark = df.sparkSession
    ensure_database(spark, table.split(".")[0])
    writer = df.write.format("delta")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if not table_exists(spark, table):
        for key, value in (properties or {}).items():
            writer = writer.option(key, value)
        writer.mode("overwrite").saveAsTable(table)
        if properties:
            set_properties(spark, table, properties)
        return
    writer.mode("overwrite").option("replaceWhere", predicate).saveAsTable(table)


def set_properties(spark: SparkSession, table: str, properties: dict[str, str]) -> None:
    pairs = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
    spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ({pairs})")
