"""Hourly tiles: mergeable partial aggregates of one source's events per entity and hours.

Every aggregation of a feature view is computed from a few *measures* (row count,
non-null count, sum, min, max, HyperLogLog sketch, latest value). A measure is
first aggregated over the events of one entity that happened in one hour and
arrived in one hour (a tile: entity, event hour, arrival hour), then merged over
the tiles of a window as known at some hour. Tiling bounds the work per entity by
the number of hours, not the number of events: a popular title with thousands of
plays an hour still has a few tiles per hour (most events arrive within their hour,
some in the next, a few hours late).

Sums are exact decimals (`SUM_TYPE`): a window's sum is then a difference of
running sums (`pipelines.compute.windows`) that does not depend on where the
running sums start, so adjacent intervals compose into their union bit for bit.
Each value is rounded to 1e-12 first; a sum beyond 1e25 in magnitude fails the
job (Spark's ANSI overflow error) instead of losing digits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from features import Aggregation, EventSource, Op
from pipelines.delta_io import rows_in
from pipelines.interval import Interval, utc_literal
from pipelines.validity import UNUSABLE, row_problem

HOUR_MICROS = 3_600_000_000
# Column names of the engine's own intermediate values; features never start with "_".
EVENT_HOUR = "__event_hour"
ARRIVAL_HOUR = "__arrival_hour"
# 37 digits, so that a difference of two running sums still fits 38 at scale 12.
SUM_TYPE = "decimal(37,12)"


def hour_index(column: str) -> Column:
    """Whole hours since the epoch of a timestamp column (exact integer arithmetic)."""
    return F.expr(f"unix_micros(`{column}`) div {HOUR_MICROS}")


class Kind(StrEnum):
    ROWS = "rows"
    NONNULL = "nonnull"
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    HLL = "hll"
    LATEST = "latest"


@dataclass(frozen=True)
class Measure:
    """A partial aggregate of one source column, mergeable across tiles."""

    kind: Kind
    source: str = ""
    column: str | None = None

    @property
    def invertible(self) -> bool:
        """Whether a window's value is a difference of running aggregates (no sliding merge)."""
        return self.kind in (Kind.ROWS, Kind.NONNULL, Kind.SUM)

    @property
    def name(self) -> str:
        return f"__{self.source}__{self.kind.value}__{self.column or ''}"

    def tile(self, source: EventSource, where: Column | None = None) -> Column:
        """The aggregate of this measure over the events of one tile (those of a group
        for which `where` holds, if given)."""
        if self.kind is Kind.ROWS:
            return F.count(F.lit(1) if where is None else F.when(where, F.lit(1)))
        value = F.col(str(self.column))
        if where is not None:
            value = F.when(where, value)
        if self.kind is Kind.NONNULL:
            return F.count(value)
        if self.kind is Kind.SUM:
            return F.sum(value.cast(SUM_TYPE))
        if self.kind is Kind.MIN:
            return F.min(value)
        if self.kind is Kind.MAX:
            return F.max(value)
        if self.kind is Kind.HLL:
            return F.hll_sketch_agg(_sketchable(value, source.column_type(str(self.column))))
        # The latest value; ties on event time go to the greatest value (struct order).
        return F.max(
            F.when(
                value.isNotNull(),
                F.struct(F.col(source.timestamp_column).alias("ts"), value.alias("value")),
            )
        )

    def over(self, column: Column) -> Column:
        """The aggregate of this measure's tile values over a window frame."""
        if self.invertible:
            return F.sum(column)
        if self.kind is Kind.MIN:
            return F.min(column)
        if self.kind is Kind.HLL:
            return F.hll_union_agg(column)
        return F.max(column)  # MAX, LATEST

    def combine(self, left: Column, right: Column) -> Column:
        """Merge the aggregates of two disjoint sets of tiles (non-invertible measures)."""
        if self.invertible:
            raise ValueError(f"{self.kind} windows are differences of running sums")
        if self.kind is Kind.MIN:
            return F.least(left, right)
        if self.kind is Kind.HLL:
            return (
                F.when(left.isNull(), right)
                .when(right.isNull(), left)
                .otherwise(F.hll_union(left, right))
            )
        return F.greatest(left, right)


def _sketchable(value: Column, value_type: str) -> Column:
    # hll_sketch_agg takes integers, strings and binaries only.
    return value if value_type in ("int64", "string") else value.cast("string")


def measures_of(aggregation: Aggregation) -> tuple[Measure, ...]:
    source, column, op = aggregation.source.name, aggregation.column, aggregation.op
    if op is Op.COUNT:
        if column is None:
            return (Measure(Kind.ROWS, source),)
        return (Measure(Kind.NONNULL, source, column),)
    if op is Op.SUM:
        return (Measure(Kind.SUM, source, column),)
    if op is Op.AVG:
        return (Measure(Kind.SUM, source, column), Measure(Kind.NONNULL, source, column))
    if op is Op.MIN:
        return (Measure(Kind.MIN, source, column),)
    if op is Op.MAX:
        return (Measure(Kind.MAX, source, column),)
    if op is Op.APPROX_DISTINCT:
        return (Measure(Kind.HLL, source, column),)
    return (Measure(Kind.LATEST, source, column),)


def read_events(
    spark: SparkSession, source: EventSource, key: str, start: datetime, end: datetime
) -> DataFrame:
    """The source's events of entities (non-null key) with event time in `[start, end)` that
    had arrived by `end`: what the platform knew at `end`.

    Rows with values compute cannot aggregate (`pipelines.validity.UNUSABLE`: not finite,
    out of the declared range, a time before `earliest`) are skipped: ingest never writes
    them, and one written by another tool must not stop every compute whose window covers
    it (`arrivals` counts them)."""
    interval = Interval.parse(start, end)
    events = rows_in(
        spark.table(source.table),
        source.timestamp_column,
        interval,
        partition_column=source.partition_column,
    )
    arrived = F.col(source.ingestion_column) < utc_literal(interval.end)
    return usable_events(events.where(arrived), source, key)


def usable_events(events: DataFrame, source: EventSource, key: str) -> DataFrame:
    """The rows of a source's clean table that compute aggregates for entities of `key`."""
    return events.where(
        F.col(key).isNotNull() & row_problem(source, events.columns, UNUSABLE).isNull()
    )


TileHours = Callable[[Column, Column], tuple[Column, Column]]


def tiles(
    events: DataFrame,
    source: EventSource,
    key: str,
    measures: list[Measure],
    merged: TileHours | None = None,
) -> DataFrame:
    """One row per (entity, event hour, arrival hour) with every measure of `source`
    aggregated over its events. `merged` maps an event's (event hour, arrival hour) to
    those of the tile it goes into, where one tile may stand for several hours
    (`pipelines.compute.windows.merged_tile_hours`)."""
    event_hour = hour_index(source.timestamp_column)
    arrival_hour = hour_index(source.ingestion_column)
    if merged is not None:
        event_hour, arrival_hour = merged(event_hour, arrival_hour)
    return events.groupBy(
        F.col(key), event_hour.alias(EVENT_HOUR), arrival_hour.alias(ARRIVAL_HOUR)
    ).agg(*[m.tile(source).alias(m.name) for m in measures])


@dataclass(frozen=True)
class Arrivals:
    """What a source received in an interval, as compute sees it."""

    first_event_hour: int | None  # earliest event hour of the valid arrivals
    skipped: dict[str, int]  # unusable arrivals per reason (see `read_events`)
    example: str | None  # one skipped row, as JSON


def arrivals(spark: SparkSession, source: EventSource, start: datetime, end: datetime) -> Arrivals:
    """The source's rows that arrived in `[start, end)`: how far back the rows they change
    reach, and which of them compute skips as unusable (one Spark job)."""
    table = spark.table(source.table)
    problem = row_problem(source, table.columns, UNUSABLE)
    rows = rows_in(table, source.ingestion_column, Interval.parse(start, end)).withColumn(
        "__problem", problem
    )
    found = (
        rows.groupBy("__problem")
        .agg(
            F.min(hour_index(source.timestamp_column)).alias("first"),
            F.count(F.lit(1)).alias("rows"),
            # Only skipped rows need an example: valid ones are never turned into JSON.
            F.first(
                F.when(
                    F.col("__problem").isNotNull(),
                    F.to_json(F.struct(*[F.col(c) for c in table.columns])),
                ),
                ignorenulls=True,
            ).alias("example"),
        )
        .collect()
    )
    first, skipped, example = None, {}, None
    for row in found:
        if row["__problem"] is None:
            first = None if row["first"] is None else int(row["first"])
        else:
            skipped[row["__problem"]] = int(row["rows"])
            example = example or row["example"]
    return Arrivals(first, skipped, example)
