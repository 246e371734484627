"""The `generate` job: write what arrived in `[start, end)` into the raw tables."""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from features import EventSource
from features.catalog import RAW
from features.catalog import database as catalog_database
from features.sources import EVENT_SOURCES
from pipelines.delta_io import ensure_database, replace_where, table_exists
from pipelines.generate.dimensions import dimension_tables
from pipelines.generate.events import EVENT_TABLES, arrived_events, to_us
from pipelines.generate.world import DEFAULT_HOSTILE_SHARE, GeneratorConfig, build_world
from pipelines.interval import Interval, utc_literal
from pipelines.tables import DIMENSIONS, RAW_EVENTS

SOURCES = {source.name: source for source in EVENT_SOURCES}


def _to_spark(spark: SparkSession, table: pa.Table, schema: StructType) -> DataFrame:
    if table.num_rows == 0:
        return spark.createDataFrame([], schema)
    # By name: the declared column order need not be the order the rows were built in. A
    # declared column the generator has no model for is written as nulls.
    for name in schema.fieldNames():
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows))
    return spark.createDataFrame(table.select(schema.fieldNames()), schema)


def _dimension_epoch_us(spark: SparkSession, database: str, start_us: int) -> int:
    """When the dimensions count as ingested: the earliest generated start.

    Kept from the existing table, so generating [a, b) then [b, c) stamps them
    exactly as generating [a, c) does; an earlier start moves the stamp back.
    """
    members = f"{database}.members"
    if not table_exists(spark, members):
        return start_us
    existing = spark.table(members).agg(F.min(F.unix_micros("ingestion_timestamp"))).first()
    if existing is None or existing[0] is None:
        return start_us
    return min(int(existing[0]), start_us)


def _unplaced(df: DataFrame, source: EventSource) -> Column:
    ingested = F.col(source.ingestion_column)
    return ingested.isNull() | (ingested < utc_literal(source.validity.earliest))


def _add_missing(rows: DataFrame, table: str, source: EventSource) -> None:
    """Insert the rows `table` does not hold yet (same id and times, nulls equal)."""
    same = " AND ".join(
        f"t.{c} <=> s.{c}"
        for c in (str(source.id_column), source.timestamp_column, source.ingestion_column)
    )
    DeltaTable.forName(rows.sparkSession, table).alias("t").merge(
        rows.alias("s"), same
    ).whenNotMatchedInsertAll().execute()


def _overwrite(df: DataFrame, table: str) -> None:
    ensure_database(df.sparkSession, table.split(".")[0])
    df.write.format("delta").mode("overwrite").saveAsTable(table)


def generate(
    spark: SparkSession,
    *,
    start: str | datetime | date,
    end: str | datetime | date,
    scale: float = 1.0,
    seed: int = 7,
    late_share: float = 0.02,
    malformed_share: float = 0.01,
    duplicate_share: float = 0.005,
    hostile_share: float = DEFAULT_HOSTILE_SHARE,
    shift: str | None = None,
    shift_from: datetime | None = None,
    database: str | None = None,
) -> dict[str, int]:
    """Write the raw rows that arrive (by ingestion time) within `[start, end)`.

    The dimensions are rewritten whole (they depend only on seed and scale); each
    event table has exactly its interval replaced. Hostile rows whose ingestion time is
    null or from 1970 belong to no interval: they are added unless already there, so a
    rerun writes nothing twice. Returns the rows written per table. `database` defaults
    to the catalog's raw layer. `shift` moves a population from `shift_from` on
    (`pipelines.generate.world.SHIFTS`).
    """
    database = database or catalog_database(RAW)
    interval = Interval.parse(start, end)
    config = GeneratorConfig(
        scale=scale,
        seed=seed,
        late_share=late_share,
        malformed_share=malformed_share,
        duplicate_share=duplicate_share,
        hostile_share=hostile_share,
        shift=shift,
        shift_from=shift_from,
    )
    world = build_world(config)
    epoch_us = _dimension_epoch_us(spark, database, to_us(interval.start))
    dimensions = dimension_tables(world, config, epoch_us)
    events = arrived_events(world, config, interval)

    arrived = interval.sql("ingestion_timestamp")
    for name, table in dimensions.items():
        _overwrite(_to_spark(spark, table, DIMENSIONS[name]), f"{database}.{name}")
    for name in EVENT_TABLES:
        source = SOURCES[name]
        # One shuffle by date gives a file per day instead of one per Arrow batch.
        df = _to_spark(spark, events[name], RAW_EVENTS[name]).repartition(source.partition_column)
        table = f"{database}.{name}"
        without_time = _unplaced(df, source)
        replace_where(
            df.where(~without_time),
            table,
            predicate=arrived,
            partition_by=(source.partition_column,),
        )
        _add_missing(df.where(without_time), table, source)
    return {name: table.num_rows for name, table in {**dimensions, **events}.items()}
