"""Attribute views: versions of an entity's static attributes, keyed by when they became known."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import AttributeView
from pipelines.delta_io import rows_in
from pipelines.feature_tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP, PARTITION_COLUMN
from pipelines.interval import Interval
from pipelines.validity import UNUSABLE, row_problem, version_tuple


def attribute_rows(
    spark: SparkSession, view: AttributeView, start: datetime, end: datetime
) -> DataFrame:
    """One row per key per version ingested in `[start, end)`.

    A version is a (key, ingestion time) pair; its `event_timestamp` is that ingestion
    time, so a point-in-time join never sees attributes before they were known, and its
    `created_timestamp` the end of that hour, when the hourly pipeline that ingested it
    knew it (as for windowed views). Rows repeated at the same instant collapse;
    conflicting ones resolve by the rule ingest applies (`pipelines.validity.version_tuple`:
    the greatest tuple of the source's columns wins), so the result does not depend on row
    order, and rows with unusable values (`pipelines.validity.UNUSABLE`) are skipped.
    """
    source = view.source
    key, ingested = view.entity.join_key, source.ingestion_column
    table = spark.table(source.table)
    dimension = rows_in(table, ingested, Interval.parse(start, end)).where(
        F.col(key).isNotNull() & row_problem(source, table.columns, UNUSABLE).isNull()
    )
    versions = dimension.groupBy(key, ingested).agg(F.max(version_tuple(source)).alias("version"))
    return versions.select(
        F.col(key),
        F.col(ingested).alias(EVENT_TIMESTAMP),
        # The end of the ingestion hour (epoch hours: independent of the session time zone).
        F.timestamp_seconds((F.floor(F.unix_seconds(F.col(ingested)) / 3600) + 1) * 3600).alias(
            CREATED_TIMESTAMP
        ),
        *[F.col("version")[a].alias(a) for a in view.attributes],
        F.to_date(F.col(ingested)).alias(PARTITION_COLUMN),
    )
