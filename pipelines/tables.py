"""Schemas and names of the raw and clean tables, derived from the source declarations.

A source's table has its declared columns in declared order, then (events) its event
time, its ingestion time and its partition column, the UTC date of the event time;
(dimensions) its ingestion time. A raw event table lacks the columns the source
carries from another one (`features.Carried`). Nothing here is written by hand, so a
column added to a source in `features/sources.py` reaches every table, ingest rule,
quality suite and the generator.
"""

from __future__ import annotations

from pyspark.sql import types as T

from features.catalog import CLEAN, RAW, table_name
from features.core import DimensionSource, EventSource
from features.sources import DIMENSION_SOURCES, EVENT_SOURCES
from pipelines.feature_tables import spark_type

TS = T.TimestampType()


def _schema(source: EventSource | DimensionSource, columns: dict[str, str]) -> T.StructType:
    fields = [T.StructField(name, spark_type(value_type)) for name, value_type in columns.items()]
    if isinstance(source, EventSource):
        fields += [
            T.StructField(source.timestamp_column, TS),
            T.StructField(source.ingestion_column, TS),
            T.StructField(source.partition_column, T.DateType()),
        ]
    else:
        fields.append(T.StructField(source.ingestion_column, TS))
    return T.StructType(fields)


def clean_schema(source: EventSource | DimensionSource) -> T.StructType:
    return _schema(source, source.columns)


def raw_schema(source: EventSource | DimensionSource) -> T.StructType:
    columns = source.raw_columns if isinstance(source, EventSource) else source.columns
    return _schema(source, columns)


# One quarantine table for every source: the raw row kept whole as JSON.
QUARANTINE = T.StructType(
    [
        T.StructField("source_table", T.StringType()),
        T.StructField("reason", T.StringType()),
        T.StructField("record", T.StringType()),
        T.StructField("event_timestamp", TS),
        T.StructField("ingestion_timestamp", TS),
        T.StructField("ingestion_date", T.DateType()),
    ]
)

# Every event id ingest accepted: duplicates are found by identity across all runs.
ACCEPTED_IDS = T.StructType(
    [
        T.StructField("source_table", T.StringType()),
        T.StructField("id", T.StringType()),
        T.StructField("ingestion_timestamp", TS),
        T.StructField("id_day", T.DateType()),  # features.IdDay: where the id is filed
    ]
)

DIMENSIONS = {source.name: clean_schema(source) for source in DIMENSION_SOURCES}
RAW_EVENTS = {source.name: raw_schema(source) for source in EVENT_SOURCES}
CLEAN_EVENTS = {source.name: clean_schema(source) for source in EVENT_SOURCES}


def clean_table(name: str) -> str:
    return table_name(CLEAN, name)


def raw_table(source: EventSource | DimensionSource) -> str:
    return table_name(RAW, source.name)


def quarantine_table() -> str:
    return clean_table("quarantine")


def accepted_ids_table() -> str:
    return clean_table("accepted_ids")
