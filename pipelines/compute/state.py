"""Window state: the mergeable aggregates behind a real-time view's feature values.

A row of `state.<view>` has the keys and timestamps of the view's feature row and,
instead of finished values, one column per `windows.state_entries` entry: counts and
exact sums, min and max, HyperLogLog sketches, and each LAST measure's latest
(time, value). The feature row is `windows.finish_state` of it, so the two tables
never disagree. Merging the state of a row with the aggregates of events it does not
hold yet (`head_state`, `merged_state`) and finishing the result gives the view's
value at any instant (the sawtooth windows of `features.core`).
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features import EventSource, FeatureView
from pipelines.compute.tiles import Kind, Measure
from pipelines.compute.windows import StateEntry, state_column, state_entries
from pipelines.feature_tables import spark_type, versioned_schema

# A merged sum of two 37-digit running totals needs the 38th digit.
STATE_SUM_TYPE = T.DecimalType(38, 12)


def _source(view: FeatureView, measure: Measure) -> EventSource:
    return next(s for s in view.sources if s.name == measure.source)


def entry_type(view: FeatureView, entry: StateEntry) -> T.DataType:
    measure = entry[0]
    if measure.kind in (Kind.ROWS, Kind.NONNULL):
        return T.LongType()
    if measure.kind is Kind.SUM:
        return STATE_SUM_TYPE
    if measure.kind is Kind.HLL:
        return T.BinaryType()
    value_type = spark_type(_source(view, measure).column_type(str(measure.column)))
    if measure.kind is Kind.LATEST:
        return T.StructType(
            [T.StructField("ts", T.TimestampType()), T.StructField("value", value_type)]
        )
    return value_type  # MIN, MAX


def state_table_schema(view: FeatureView) -> T.StructType:
    values = [
        T.StructField(state_column(entry), entry_type(view, entry)) for entry in state_entries(view)
    ]
    return versioned_schema(view, values)


def typed_state(view: FeatureView, state: DataFrame) -> DataFrame:
    """State rows with exactly the state table's schema."""
    fields = state_table_schema(view).fields
    return state.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in fields])


HeadWindow = Callable[[StateEntry], Column]


def head_state(
    view: FeatureView, source: EventSource, in_window: HeadWindow
) -> dict[StateEntry, Column]:
    """Aggregates, over a group of `source`'s events, of the view's state entries of that
    source: each counts the events for which `in_window(entry)` holds."""
    return {
        entry: entry[0].tile(source, in_window(entry))
        for entry in state_entries(view)
        if entry[0].source == source.name
    }


def merged_state(measure: Measure, held: Column, fresh: Column) -> Column:
    """The state of a window over two disjoint sets of events, from the state of each
    (either may be null: no row, or no event)."""
    if measure.invertible:
        kind = STATE_SUM_TYPE if measure.kind is Kind.SUM else T.LongType()
        zero = F.lit(0).cast(kind)
        return (F.coalesce(held, zero) + F.coalesce(fresh, zero)).cast(kind)
    return measure.combine(held, fresh)  # least/greatest skip nulls; sketches checked
