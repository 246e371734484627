"""The storage contract of feature tables, derived from the declarations.

A feature table `features.<view>` has: the entity's join key, `event_timestamp`
(the hour the values hold for), `created_timestamp` (when the values became
knowable: the latest ingestion time of the events they depend on, and never
before `event_timestamp`), one column per feature, and the partition column
`event_date` (the date of `event_timestamp`).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features import AnyView
from pipelines.delta_io import rows_in
from pipelines.interval import Interval

EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"
PARTITION_COLUMN = "event_date"

SPARK_TYPES: dict[str, T.DataType] = {
    "int64": T.LongType(),
    "float64": T.DoubleType(),
    "string": T.StringType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
}


def spark_type(value_type: str) -> T.DataType:
    return SPARK_TYPES[value_type]


def feature_table_schema(view: AnyView) -> T.StructType:
    values = [T.StructField(f.name, spark_type(f.value_type)) for f in view.features]
    return versioned_schema(view, values)


def versioned_schema(view: AnyView, values: list[T.StructField]) -> T.StructType:
    """The layout of a view's bitemporal tables (its feature table, a real-time view's state
    table): the join key, the two timestamps, `values`, the partition column."""
    return T.StructType(
        [
            T.StructField(view.entity.join_key, spark_type(view.entity.value_type)),
            T.StructField(EVENT_TIMESTAMP, T.TimestampType()),
            T.StructField(CREATED_TIMESTAMP, T.TimestampType()),
            *values,
            T.StructField(PARTITION_COLUMN, T.DateType()),
        ]
    )


def learned_in(interval: Interval) -> str:
    """SQL selecting the versions that became knowable in `(start, end]`: exactly what a
    run over `[start, end)` writes (compute), checks (the gate) and publishes (materialize).
    Delta skips files by their `created_timestamp` range."""
    return interval.sql(CREATED_TIMESTAMP, closed="end")


def versions_learned_in(features: DataFrame, interval: Interval) -> DataFrame:
    """The rows of a feature table that `learned_in` selects."""
    return rows_in(features, CREATED_TIMESTAMP, interval, closed="end")


_RANK = "__newest_rank"


def newest_per_entity(rows: DataFrame, key: str) -> DataFrame:
    """Per entity, its row with the greatest `event_timestamp`, then `created_timestamp`:
    the value a reader of the table's versions sees last (materialize, the stream)."""
    newest_first = Window.partitionBy(key).orderBy(
        F.col(EVENT_TIMESTAMP).desc(), F.col(CREATED_TIMESTAMP).desc()
    )
    ranked = rows.withColumn(_RANK, F.row_number().over(newest_first))
    return ranked.where(F.col(_RANK) == 1).drop(_RANK)
