"""Sawtooth values of a real-time view at exact label times (semantics: `features.core`).

For a label row (entity e, time t), with T = floor_hour(t):

1. *Core*: e's window state at T as known at T, i.e. the row of `state.<view>` that the
   point-in-time join gives a label at T in `Mode.KNOWN` (`pipelines.training.asof`).
2. *Head*: e's events that arrived in `[T, t)`, or before T with an event time at or
   after T (a clock ahead), that happened before t and arrived before t, each counted in
   the windows `[T - w, t)` its event time lies in (`pipelines.compute.state.head_state`).
   Every event is filed under the label hours it can be head for (its arrival hour, and
   the hours up to its event hour when it arrived early), so the head is an equi-join on
   (entity, hour), aggregated per distinct (entity, label time).
3. Core and head are merged measure by measure (`merged_state`) and finished by the
   expressions that finish the feature table (`windows.finished_features`).

A label whose entity has no state row yet and no head event gets nulls, as a key the
online store never saw does. The head pairs each distinct (entity, label time) with that
entity's events of one arrival hour: labels times events per entity-hour, at most one
hour of events per label and no range join over history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from features import DeclarationError, EventSource, FeatureView
from features.errors import PlatformError
from pipelines.compute.state import head_state, merged_state
from pipelines.compute.tiles import HOUR_MICROS, hour_index, usable_events
from pipelines.compute.windows import StateEntry, finished_features, state_column, state_entries
from pipelines.delta_io import rows_in
from pipelines.interval import Interval, floor_hour, hour_number
from pipelines.training.asof import LabelStats, label_stats, point_in_time_join
from pipelines.training.spec import Mode, ViewRead

# Internal columns; labels may not use the `__` prefix (checked in pipelines.training.api).
_TAIL_END = "__sawtooth_tail_end"  # T = floor_hour(t): the state row must be known then
_KEY = "__sawtooth_key"
_TIME = "__sawtooth_time"
_HOUR = "__sawtooth_hour"  # T as an hour index
_HAS_ROW = "__sawtooth_row"
_HAS_HEAD = "__sawtooth_head"


def _head_column(entry: StateEntry) -> str:
    return f"__head{state_column(entry)}"


def sawtooth_join(
    labels: DataFrame,
    view: FeatureView,
    *,
    state: DataFrame,
    events: Mapping[str, DataFrame],
    timestamp_column: str,
    features: Sequence[str] | None = None,
    base_labels: DataFrame | None = None,
) -> DataFrame:
    """The label columns (unchanged, in order) followed by `features` of `view` (all by
    default) as of each label's exact time. `state` is the view's state table and
    `events` maps each of its sources to its clean table, read at versions the caller
    pins. Labels hold the view's join key and a timestamp column.

    `base_labels`: when `labels` is the output of earlier joins over them (same rows,
    more columns), the labels those joins started from. The label times' range and the
    distinct (entity, time) pairs are then read from them, so the earlier joins are not
    run again just for those."""
    if not view.realtime:
        raise DeclarationError(
            f"feature view {view.name} is not declared realtime: it keeps no window state"
        )
    missing = [source.table for source in view.sources if source.name not in events]
    if missing:
        raise PlatformError(f"sawtooth values of {view.name} need the events of {missing}")
    key = view.entity.join_key
    names = list(features) if features is not None else [f.name for f in view.features]
    label_time = F.col(timestamp_column).cast("timestamp")
    label_hour = F.expr(f"unix_micros(CAST(`{timestamp_column}` AS TIMESTAMP)) div {HOUR_MICROS}")
    with_tail = labels.withColumn(_TAIL_END, F.timestamp_seconds(label_hour * 3600))
    entries = state_entries(view)
    state_read = ViewRead(
        name=view.name,
        table=view.state_table,
        join_key=key,
        key_type=view.entity.value_type,
        ttl_seconds=0,  # a state row holds until the next one (rows exist at every change)
        features=(*[state_column(e) for e in entries], _HAS_ROW),
        definition_hash="",
    )
    base = labels if base_labels is None else base_labels
    stats = label_stats(base, timestamp_column)
    tail_stats = LabelStats(
        stats.rows,
        None if stats.earliest is None else floor_hour(stats.earliest),
        None if stats.latest is None else floor_hour(stats.latest),
    )
    core = point_in_time_join(
        with_tail,
        [(state_read, state.withColumn(_HAS_ROW, F.lit(True)))],
        timestamp_column=_TAIL_END,
        stats=tail_stats,
        mode=Mode.KNOWN,
    )
    if stats.earliest is None or stats.latest is None:
        joined = core.select("*", F.lit(False).alias(_HAS_HEAD))
        head_of: dict[StateEntry, Column] = {e: F.lit(None) for e in entries}
    else:
        points = (
            base.where(F.col(key).isNotNull() & label_time.isNotNull())
            .select(F.col(key).alias(_KEY), label_time.alias(_TIME), label_hour.alias(_HOUR))
            .distinct()
        )
        heads = [
            _head(view, source, events[source.name], points, stats.earliest, stats.latest)
            for source in view.sources
        ]
        head = reduce(lambda left, right: left.join(right, [_KEY, _TIME], "full_outer"), heads)
        has_head = reduce(
            Column.__or__,
            [F.coalesce(F.col(f"{_HAS_HEAD}{s.name}"), F.lit(False)) for s in view.sources],
        )
        head = head.select(
            _KEY, _TIME, *[_head_column(e) for e in entries], has_head.alias(_HAS_HEAD)
        )
        matches = (F.col(key) == F.col(_KEY)) & (label_time == F.col(_TIME))
        joined = core.join(head, matches, "left")
        head_of = {e: F.col(_head_column(e)) for e in entries}

    merged = {e: merged_state(e[0], F.col(state_column(e)), head_of[e]) for e in entries}
    values = finished_features(view, merged.__getitem__, hour_index(_TAIL_END))
    found = F.coalesce(F.col(_HAS_ROW), F.lit(False)) | F.coalesce(F.col(_HAS_HEAD), F.lit(False))
    return joined.select(
        *[F.col(c) for c in labels.columns],
        *[F.when(found, values[name]).alias(name) for name in names],
    )


def _head(
    view: FeatureView,
    source: EventSource,
    clean: DataFrame,
    points: DataFrame,
    earliest: datetime,
    latest: datetime,
) -> DataFrame:
    """Per (entity, label time) of `points`, the head aggregates of `source`'s events."""
    key = view.entity.join_key
    first_hour, last_hour = hour_number(earliest), hour_number(latest)
    longest = view.max_window.hours
    reach = Interval(
        floor_hour(earliest) - view.max_window.duration, latest + timedelta(microseconds=1)
    )
    rows = rows_in(clean, source.timestamp_column, reach, partition_column=source.partition_column)
    arrival_hour = hour_index(source.ingestion_column)
    event_hour = hour_index(source.timestamp_column)
    # An event is head for the hour it arrived in and, if its clock ran ahead, for every
    # later hour up to its own (it is not in those hours' state rows): clipped to the
    # labels' hours, so a broken clock far ahead files one copy per label hour at most.
    filed_until = F.least(F.greatest(arrival_hour, event_hour), F.lit(last_hour))
    filed_from = F.greatest(arrival_hour, F.lit(first_hour))
    filed = (
        usable_events(rows, source, key)
        .where(filed_from <= filed_until)
        .select(
            F.col(key).alias(_KEY),
            F.explode(F.sequence(filed_from, filed_until)).alias(_HOUR),
            *[F.col(c) for c in rows.columns],
        )
    )
    paired = points.join(filed, [_KEY, _HOUR])
    label_time = F.col(_TIME)
    seen = (F.col(source.ingestion_column) < label_time) & (
        F.col(source.timestamp_column) < label_time
    )

    def in_window(entry: StateEntry) -> Column:
        window = entry[1]
        return seen if window is None else seen & (event_hour >= F.col(_HOUR) - window)

    aggregates = head_state(view, source, in_window)
    return paired.groupBy(_KEY, _TIME).agg(
        *[column.alias(_head_column(entry)) for entry, column in aggregates.items()],
        F.max(seen & (event_hour >= F.col(_HOUR) - longest)).alias(f"{_HAS_HEAD}{source.name}"),
    )
