"""`backfill`: `compute` over a long interval, chunk by chunk, resumable after a failure.

Each (view, chunk) that was written is recorded in `monitoring.backfill_progress`
together with a fingerprint of the view's declaration. A rerun skips the chunks
already covered by records with the same fingerprint (so a changed declaration
is recomputed), unless `force` is given. A chunk reads `max_window + 1h` of
events before it, so larger chunks read less in total for views with long windows.
Chunks write the same versions as hourly runs would (`compute` depends only on what
arrived when, not on how the interval is split).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features import REGISTRY, AnyView
from features.catalog import MONITORING, table_name
from features.definition import definition_hash
from pipelines.compute.job import Moment, ViewRef, compute, require_sources
from pipelines.delta_io import replace_where, table_exists
from pipelines.errors import IntervalError
from pipelines.interval import HOUR, Interval, from_unix_micros, sql_timestamp
from pipelines.progress import progress


def progress_table() -> str:
    return table_name(MONITORING, "backfill_progress")


PROGRESS_SCHEMA = T.StructType(
    [
        T.StructField("view", T.StringType()),
        T.StructField("fingerprint", T.StringType()),
        T.StructField("chunk_start", T.TimestampType()),
        T.StructField("chunk_end", T.TimestampType()),
        T.StructField("table", T.StringType()),
        T.StructField("rows_written", T.LongType()),
    ]
)


def fingerprint(view: AnyView) -> str:
    """The view's definition hash (`features.definition`): a changed meaning recomputes,
    a changed description or tag keeps the progress."""
    return definition_hash(view)[:16]


def completed(spark: SparkSession, view: AnyView) -> list[tuple[datetime, datetime]]:
    """The recorded chunks of `view` (UTC bounds), for its current declaration."""
    if not table_exists(spark, progress_table()):
        return []
    records = (
        spark.table(progress_table())
        .where((F.col("view") == view.name) & (F.col("fingerprint") == fingerprint(view)))
        .select(F.unix_micros("chunk_start").alias("lo"), F.unix_micros("chunk_end").alias("hi"))
        .collect()
    )
    return [(from_unix_micros(r["lo"]), from_unix_micros(r["hi"])) for r in records]


def is_covered(chunk: Interval, done: list[tuple[datetime, datetime]]) -> bool:
    cursor, end = chunk.start, chunk.end
    for lo, hi in sorted(done):
        if lo <= cursor < hi:
            cursor = hi
    return cursor >= end


def record(spark: SparkSession, view: AnyView, chunk: Interval, table: str, rows: int) -> None:
    entry = spark.createDataFrame(
        [(view.name, fingerprint(view), chunk.start, chunk.end, table, rows)], PROGRESS_SCHEMA
    )
    predicate = (
        f"view = '{view.name}' AND chunk_start = {sql_timestamp(chunk.start)} "
        f"AND chunk_end = {sql_timestamp(chunk.end)}"
    )
    replace_where(entry, progress_table(), predicate=predicate)


def backfill(
    spark: SparkSession,
    *,
    start: Moment,
    end: Moment,
    chunk: timedelta = timedelta(days=1),
    views: Iterable[ViewRef] | None = None,
    force: bool = False,
    parallelism: int = 2,
) -> dict[str, int]:
    """Run `compute` chunk by chunk over `[start, end)`; returns rows written per table.

    Chunks already recorded as complete are skipped unless `force`. A failure
    leaves every finished chunk recorded, so the rerun resumes where it stopped.
    The views of one chunk are computed together, `parallelism` at a time.
    """
    interval = Interval.parse(start, end).require_hour_aligned()
    if chunk < HOUR or chunk % HOUR:
        raise IntervalError(f"backfill chunk must be a positive whole number of hours: {chunk}")
    selected = REGISTRY.select_views(views)
    require_sources(spark, selected)
    done = {view.name: [] if force else completed(spark, view) for view in selected}
    written: dict[str, int] = {view.table: 0 for view in selected}
    parts = list(interval.chunks(chunk))
    with progress(f"backfill {len(parts)} chunks", len(parts)) as advance:
        for part in parts:
            pending = [view for view in selected if not is_covered(part, done[view.name])]
            if pending:
                rows = compute(
                    spark, start=part.start, end=part.end, views=pending, parallelism=parallelism
                )
                for view in pending:
                    record(spark, view, part, view.table, rows[view.table])
                    written[view.table] += rows[view.table]
            advance()
    return written
