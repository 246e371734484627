"""`compute`: bring the feature tables up to date with what arrived in `[start, end)`.

The feature tables are bitemporal. A row of a windowed view is (entity,
`event_timestamp` T, `created_timestamp` K): the view's values as of hour T (each
window w over the events with event time in `[T - w, T)`), as known at K (only the
events that had arrived before K). A row is first written as known at T (K = T),
so the row at the end of every hour is fresh the moment the hour's events are in;
an event that arrives later adds a version of every row it changes, with K = the
end of the hour it arrived in, and the older versions stay. `created_timestamp` is
therefore always a whole hour: when the version became knowable to the hourly
pipeline. Rows exist at the hours where a value may change (an event's hour + 1h,
and + 1h + w), so the latest row at or before t is the value as of floor_hour(t).

`compute(start=S, end=E)` writes exactly the versions with `created_timestamp` in
`(S, E]`: the rows at the hours of `(S, E]` as known at their own hour, and the new
versions of earlier rows that events arriving in `[S, E)` change. One Delta
transaction per table replaces exactly those versions, so reruns are idempotent,
adjacent intervals compose into their union (hour by hour gives what one run over
the whole span gives), and the table depends only on the clean data, not on the
order in which runs happened.

Real-time views (`FeatureView.realtime`) keep their windows' mergeable aggregates in
`state.<view>` (`pipelines.compute.state`), written first in the same run; their feature
rows are finished from exactly those state rows.

Attribute views (`AttributeView`): one row per key per version ingested in `[S, E)`,
`event_timestamp` the ingestion time and `created_timestamp` the end of its hour
(`pipelines.compute.attributes`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import REGISTRY, AnyView, AttributeView, FeatureView
from pipelines.compute.attributes import attribute_rows
from pipelines.compute.state import typed_state
from pipelines.compute.tiles import (
    Arrivals,
    arrivals,
    measures_of,
    read_events,
    tiles,
)
from pipelines.compute.windows import HourRange, finish_state, merged_tile_hours, state_rows
from pipelines.delta_io import all_or_nothing, replace_where, require_table
from pipelines.feature_tables import (
    PARTITION_COLUMN,
    feature_table_schema,
    learned_in,
    versions_learned_in,
)
from pipelines.interval import HOUR, Interval, hour_number
from pipelines.progress import progress

LOG = logging.getLogger(__name__)

ViewRef = str | FeatureView | AttributeView
Moment = str | datetime | date


def source_tables(view: AnyView) -> list[str]:
    if isinstance(view, AttributeView):
        return [view.source.table]
    return [source.table for source in view.sources]


def require_sources(spark: SparkSession, views: Sequence[AnyView]) -> None:
    for view in views:
        for table in source_tables(view):
            require_table(spark, table, hint=f"a source of feature view {view.name}")


def windowed_rows(
    spark: SparkSession,
    view: FeatureView,
    interval: Interval,
    arrived: dict[str, Arrivals] | None = None,
) -> DataFrame:
    """The versions of a windowed view that became knowable in `(start, end]`, finished
    (see `windowed_state`)."""
    return finish_state(view, windowed_state(spark, view, interval, arrived))


def windowed_state(
    spark: SparkSession,
    view: FeatureView,
    interval: Interval,
    arrived: dict[str, Arrivals] | None = None,
) -> DataFrame:
    """The window state of the versions of a windowed view that became knowable in
    `(start, end]` (`pipelines.compute.windows.state_rows`).

    They belong to the rows from the earliest event hour of what arrived in the
    interval (late events reach back) to `end`; the events read start one largest
    window before those rows. `arrived` holds each source's `arrivals` if known.
    """
    key = view.entity.join_key
    first_version, last_version = hour_number(interval.start), hour_number(interval.end) - 1
    first_row = first_version
    for source in view.sources:
        if arrived is None or source.name not in arrived:
            reach = arrivals(spark, source, interval.start, interval.end).first_event_hour
        else:
            reach = arrived[source.name].first_event_hour
        if reach is not None:
            first_row = min(first_row, reach)
    hours = HourRange(
        first_row=first_row,
        last_row=last_version,
        first_version=first_version,
        last_version=last_version,
    )
    read_from = _moment(first_row - view.max_window.hours)
    merged = merged_tile_hours(view, hours)
    tiles_by_source = {}
    for source in view.sources:
        measures = []
        for aggregation in view.aggregations:
            if aggregation.source.name == source.name:
                measures += [m for m in measures_of(aggregation) if m not in measures]
        events = read_events(spark, source, key, read_from, interval.end)
        tiles_by_source[source.name] = tiles(events, source, key, measures, merged)
    return state_rows(view, tiles_by_source, hours)


def _moment(hour: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + hour * HOUR


def view_rows(
    spark: SparkSession,
    view: AnyView,
    interval: Interval,
    arrived: dict[str, Arrivals] | None = None,
    state: DataFrame | None = None,
) -> DataFrame:
    """The rows `compute` writes for `view`, with exactly the feature table's schema;
    finished from `state` when given (the view's state rows of the interval)."""
    if isinstance(view, AttributeView):
        rows = attribute_rows(spark, view, interval.start, interval.end)
    elif state is not None:
        rows = finish_state(view, state)
    else:
        rows = windowed_rows(spark, view, interval, arrived)
    schema = feature_table_schema(view)
    return rows.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def _arrivals(
    spark: SparkSession, views: Sequence[AnyView], interval: Interval
) -> dict[str, Arrivals]:
    """What each event source of `views` received in the interval; unusable rows are logged."""
    sources = {s.name: s for v in views if isinstance(v, FeatureView) for s in v.sources}
    found = {}
    for name, source in sources.items():
        found[name] = arrivals(spark, source, interval.start, interval.end)
        skipped = found[name].skipped
        if skipped:
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(skipped.items()))
            LOG.warning(
                "compute skips %d unusable rows of %s that arrived in %s (%s), e.g. %s",
                sum(skipped.values()),
                source.table,
                interval,
                reasons,
                found[name].example,
            )
    return found


def written_tables(views: Sequence[AnyView]) -> list[str]:
    """The tables compute writes for `views`: feature tables and real-time views' state."""
    tables = [view.table for view in views]
    return tables + [v.state_table for v in views if isinstance(v, FeatureView) and v.realtime]


def compute(
    spark: SparkSession,
    *,
    start: Moment,
    end: Moment,
    views: Iterable[ViewRef] | None = None,
    parallelism: int = 2,
) -> dict[str, int]:
    """Write the feature tables' versions that became knowable in `(start, end]`: the rows
    of the hours up to `end` as known at their hour, and what the events that arrived in
    `[start, end)` change in earlier rows (see the module docstring).

    `start`/`end` must be whole hours; the clean tables must hold what arrived before
    `end`. Every view and source table is checked
    before anything is written (DeclarationError for an unknown view,
    MissingTableError for a missing source). Returns rows written per table.

    Up to `parallelism` views are written at once, each by its own Spark jobs in
    its own Delta transaction: a view's fixed costs on the driver (reading the
    tables' logs, planning, committing) then overlap with another view's tasks
    instead of leaving the executors idle. If a view fails, the others still
    finish, then every table is restored to what it was before the run
    (`delta_io.all_or_nothing`) and the first error is raised.
    """
    interval = Interval.parse(start, end).require_hour_aligned()
    selected = REGISTRY.select_views(views)
    require_sources(spark, selected)
    condition = learned_in(interval)
    arrived = _arrivals(spark, selected, interval)

    def write(view: AnyView, run: str) -> int:
        state = None
        if isinstance(view, FeatureView) and view.realtime:
            replace_where(
                typed_state(view, windowed_state(spark, view, interval, arrived)),
                view.state_table,
                predicate=condition,
                partition_by=[PARTITION_COLUMN],
                run=run,
            )
            state = versions_learned_in(spark.table(view.state_table), interval)
        replace_where(
            view_rows(spark, view, interval, arrived, state),
            view.table,
            predicate=condition,
            partition_by=[PARTITION_COLUMN],
            run=run,
        )
        return int(versions_learned_in(spark.table(view.table), interval).count())

    with (
        all_or_nothing(spark, written_tables(selected)) as run,
        progress(f"compute {len(selected)} views", len(selected)) as advance,
    ):
        # Leaving the pool waits for every view, failed or not, before any error is raised.
        with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
            futures = {view.table: pool.submit(write, view, run) for view in selected}
            for future in futures.values():
                future.add_done_callback(lambda _: advance())
        return {table: future.result() for table, future in futures.items()}
