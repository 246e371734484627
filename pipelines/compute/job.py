"""`compute`: the feature tables' rows for an interval, from the clean tables, in one write each.

Windowed views (`FeatureView`): the row of entity `e` at hour `T` holds every
aggregation over `e`'s events with event time in `[T - w, T)`; rows exist at the
hours where a value may change (an event's hour + 1h, and + 1h + w for each
window w), so the latest row at or before `t` is the value as of `floor_hour(t)`.
Its `created_timestamp` is `greatest(T, latest ingestion time of the events in
[T - max_window, T))`: when the values became knowable. It depends only on the
data, so reruns are identical, and reading only rows with `created_timestamp <=
t` ("as known at t") is leak-free: an event that arrived after `t` never shapes
a row such a reader sees, because recomputing the rows it affects moves their
`created_timestamp` to its arrival.

Attribute views (`AttributeView`): one row per key per version ingested in the
interval (`pipelines.compute.attributes`).

Each table `features.<view>` is overwritten for exactly `[start, end)` of
`event_timestamp` in one Delta transaction, so reruns are idempotent and
adjacent intervals compose into their union.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import REGISTRY, AnyView, AttributeView, DeclarationError, FeatureView
from pipelines.compute.attributes import attribute_rows
from pipelines.compute.tiles import HOUR_MICROS, measures_of, read_events, tiles
from pipelines.compute.windows import HourRange, feature_rows
from pipelines.delta_io import interval_predicate, replace_where, require_table
from pipelines.errors import PlatformError
from pipelines.feature_tables import EVENT_TIMESTAMP, PARTITION_COLUMN, feature_table_schema
from pipelines.interval import HOUR, Interval

ViewRef = str | FeatureView | AttributeView
Moment = str | datetime | date


class UnknownViewError(DeclarationError, PlatformError):
    """A view name that is not declared (a DeclarationError the CLI reports as one line)."""


def parse_view_names(text: str | None) -> list[str] | None:
    """`"a, b"` -> `["a", "b"]`, checked against the registry; None or blank -> None (all)."""
    if text is None or not text.strip():
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    select_views(names)
    return names


def select_views(views: Iterable[ViewRef] | None) -> list[AnyView]:
    """Resolve names (or pass declarations through); None means every registered view."""
    if views is None:
        return list(REGISTRY.views)
    selected: dict[str, AnyView] = {}
    for ref in views:
        if isinstance(ref, FeatureView | AttributeView):
            view: AnyView = ref
        else:
            try:
                view = REGISTRY.view(str(ref).strip())
            except DeclarationError as exc:
                raise UnknownViewError(str(exc)) from None
        selected.setdefault(view.name, view)
    if not selected:
        raise UnknownViewError("no feature views selected")
    return list(selected.values())


def source_tables(view: AnyView) -> list[str]:
    if isinstance(view, AttributeView):
        return [view.source.table]
    return [source.table for source in view.sources]


def require_sources(spark: SparkSession, views: Sequence[AnyView]) -> None:
    for view in views:
        for table in source_tables(view):
            require_table(spark, table, hint=f"a source of feature view {view.name}")


def windowed_rows(spark: SparkSession, view: FeatureView, interval: Interval) -> DataFrame:
    """Rows of a windowed view for `[start, end)`, reading events from `start - max_window - 1h`."""
    read_from = interval.start - view.max_window.duration - HOUR
    # Events of the last hour of the interval only enter rows at `end`, outside it.
    read_to = interval.end - HOUR
    key = view.entity.join_key
    first_row = _hour(interval.start) - 1
    hours = HourRange(first_row=first_row, last_row=_hour(interval.end) - 2)
    frames = []
    for source in view.sources:
        measures = []
        for aggregation in view.aggregations:
            if aggregation.source.name == source.name:
                measures += [m for m in measures_of(aggregation) if m not in measures]
        events = read_events(spark, source, key, read_from, read_to)
        frames.append(tiles(events, source, key, measures))
    return feature_rows(view, frames, hours)


def _hour(moment: datetime) -> int:
    epoch = datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    return (moment - epoch) // timedelta(microseconds=HOUR_MICROS)


def view_rows(spark: SparkSession, view: AnyView, interval: Interval) -> DataFrame:
    """The rows `compute` writes for `view`, with exactly the feature table's schema."""
    if isinstance(view, AttributeView):
        rows = attribute_rows(spark, view, interval.start, interval.end)
    else:
        rows = windowed_rows(spark, view, interval)
    schema = feature_table_schema(view)
    return rows.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def interval_condition(interval: Interval) -> str:
    """SQL selecting the rows of `[start, end)`; the event_date bounds prune partitions."""
    lo, hi = interval.spark_bounds()
    last_day = (hi - timedelta(microseconds=1)).date()
    return (
        f"{PARTITION_COLUMN} >= DATE '{lo.date()}' AND {PARTITION_COLUMN} <= DATE '{last_day}' "
        f"AND {interval_predicate(EVENT_TIMESTAMP, str(lo), str(hi))}"
    )


def compute(
    spark: SparkSession,
    *,
    start: Moment,
    end: Moment,
    views: Iterable[ViewRef] | None = None,
    parallelism: int = 2,
) -> dict[str, int]:
    """Recompute the feature tables' rows with `event_timestamp` in `[start, end)`.

    `start`/`end` must be whole hours. Every view and source table is checked
    before anything is written (DeclarationError for an unknown view,
    MissingTableError for a missing source). Returns rows written per table.

    Up to `parallelism` views are written at once, each by its own Spark jobs in
    its own Delta transaction: a view's fixed costs on the driver (reading the
    tables' logs, planning, committing) then overlap with another view's tasks
    instead of leaving the executors idle. If a view fails, the others still
    finish (each table is all or nothing) and the first error is raised.
    """
    interval = Interval.parse(start, end).require_hour_aligned()
    selected = select_views(views)
    require_sources(spark, selected)
    condition = interval_condition(interval)

    def write(view: AnyView) -> int:
        replace_where(
            view_rows(spark, view, interval),
            view.table,
            predicate=condition,
            partition_by=[PARTITION_COLUMN],
        )
        return int(spark.table(view.table).where(condition).count())

    # Leaving the pool waits for every view, failed or not, before any error is raised.
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        futures = {view.table: pool.submit(write, view) for view in selected}
    return {table: future.result() for table, future in futures.items()}
