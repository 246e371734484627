"""A brute-force reference for the feature tables, independent of `pipelines.compute`.

It reads the semantics straight from `features.core` and `pipelines.compute.job`
and evaluates them by scanning the raw events of each entity for every (hour,
knowledge hour) asked about: no tiles, no window functions, no Spark. Events and
dimension rows are plain dicts (the rows the tests write into the clean tables);
timestamps are naive UTC datetimes.

Bitemporal semantics: the version of row (entity, T) known at K (a whole hour,
K >= T) aggregates the events with event time in the window before T that arrived
before K. A row exists at K once an event that places it (its hour + 1h, or + 1h +
a window, is T) has arrived; its first version is at max(T, the end of that
event's arrival hour), and each later end of an arrival hour of an event in its
largest window adds a version.

Distinct counts here are exact; the engine's HyperLogLog estimates equal them
for the small cardinalities of the tests (a few dozen distinct values: the sketch
is then in its exact list/set mode).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from features import AttributeView, FeatureView, Op, Window

HOUR = timedelta(hours=1)
Row = dict[str, Any]


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _entity_events(view: FeatureView, events: dict[str, list[Row]]) -> dict[Any, list[Row]]:
    """Every event of the view's sources, grouped by entity (rows tagged with their source)."""
    key = view.entity.join_key
    grouped: dict[Any, list[Row]] = defaultdict(list)
    for source in view.sources:
        for row in events[source.name]:
            if row[key] is not None and row[source.timestamp_column] is not None:
                grouped[row[key]].append({**row, "__source": source.name})
    return grouped


def known_from(row: Row) -> datetime:
    """The end of the hour an event arrived in: the first knowledge hour that holds it."""
    return floor_hour(row["ingestion_timestamp"]) + HOUR


def change_hours(
    view: FeatureView, events: dict[str, list[Row]]
) -> dict[Any, dict[datetime, datetime]]:
    """Per entity, the hours where its row may change (event hour + 1h, and + 1h + each
    window), each with the first knowledge hour at which the row exists there."""
    out: dict[Any, dict[datetime, datetime]] = defaultdict(dict)
    for entity, rows in _entity_events(view, events).items():
        for row in rows:
            entered = floor_hour(row["event_timestamp"]) + HOUR
            for moment in [entered, *[entered + w.duration for w in view.windows]]:
                exists = max(moment, known_from(row))
                out[entity][moment] = min(out[entity].get(moment, exists), exists)
    return out


def _aggregate(op: Op, column: str | None, rows: list[Row]) -> Any:
    if op is Op.COUNT:
        return len(rows) if column is None else sum(r[column] is not None for r in rows)
    values = [r[column] for r in rows if r[column] is not None]
    if op is Op.SUM:
        return float(sum(values))
    if op is Op.AVG:
        return sum(values) / len(values) if values else None
    if op is Op.MIN:
        return min(values) if values else None
    if op is Op.MAX:
        return max(values) if values else None
    if op is Op.APPROX_DISTINCT:
        return len(set(values))
    # LAST: the latest event with a value; ties on time go to the greatest value.
    latest = [(r["event_timestamp"], r[column]) for r in rows if r[column] is not None]
    return max(latest)[1] if latest else None


def _values(view: FeatureView, rows: list[Row], since: Callable[[Window], datetime]) -> Row:
    """Every feature over `rows` (already cut at the windows' end), window `w` keeping the
    rows with event time at or after `since(w)`."""
    out: Row = {}
    for aggregation in view.aggregations:
        for window in aggregation.windows:
            in_window = [
                r
                for r in rows
                if r["__source"] == aggregation.source.name
                and r["event_timestamp"] >= since(window)
            ]
            out[aggregation.feature_name(window)] = _aggregate(
                aggregation.op, aggregation.column, in_window
            )
    for ratio in view.ratios:
        numerator, denominator = out[ratio.numerator], out[ratio.denominator]
        out[ratio.name] = min(
            1.0, (numerator + ratio.prior * ratio.weight) / (denominator + ratio.weight)
        )
    return out


def value_at(
    view: FeatureView, entity_rows: list[Row], moment: datetime, known_at: datetime | None = None
) -> Row:
    """Every feature of one entity at hour `moment`, from the events that arrived before
    `known_at` (all of them when None)."""
    before = [
        r
        for r in entity_rows
        if r["event_timestamp"] < moment
        and (known_at is None or r["ingestion_timestamp"] < known_at)
    ]
    return _values(view, before, lambda window: moment - window.duration)


def versions_of(
    view: FeatureView, entity_rows: list[Row], moment: datetime, exists: datetime
) -> list[datetime]:
    """The knowledge hours of the versions of row `moment`, first one `exists`."""
    horizon = moment - view.max_window.duration
    later = {
        known_from(r)
        for r in entity_rows
        if horizon <= r["event_timestamp"] < moment and known_from(r) > exists
    }
    return sorted({exists, *later})


def windowed_rows(
    view: FeatureView, events: dict[str, list[Row]], start: datetime, end: datetime
) -> dict[tuple[Any, datetime, datetime], Row]:
    """The versions a run over `[start, end)` writes (knowledge hours in `(start, end]`),
    keyed by (entity, event_timestamp, created_timestamp)."""
    grouped = _entity_events(view, events)
    out: dict[tuple[Any, datetime, datetime], Row] = {}
    for entity, hours in change_hours(view, events).items():
        for moment, exists in hours.items():
            for known in versions_of(view, grouped[entity], moment, exists):
                if start < known <= end:
                    out[(entity, moment, known)] = value_at(view, grouped[entity], moment, known)
    return out


def values_as_of(
    view: FeatureView,
    events: dict[str, list[Row]],
    entity: Any,
    moment: datetime,
    known_at: datetime | None = None,
) -> Row:
    """The features of `entity` at `floor_hour(moment)`, from what arrived before
    `known_at` (everything when None)."""
    rows = _entity_events(view, events).get(entity, [])
    return value_at(view, rows, floor_hour(moment), known_at)


def attribute_rows(
    view: AttributeView, dimension: list[Row], start: datetime, end: datetime
) -> dict[tuple[Any, datetime, datetime], Row]:
    """One row per key per ingestion time in `[start, end)`, created at the end of its
    hour; conflicts: the greatest tuple of the source's columns (in declared order) wins."""
    key = view.entity.join_key
    columns = [c for c in view.source.columns if c != key]
    versions: dict[tuple[Any, datetime], tuple] = {}
    for row in dimension:
        moment = row[view.source.ingestion_column]
        if row[key] is None or moment is None or not start <= moment < end:
            continue
        values = tuple(row[c] for c in columns)
        previous = versions.get((row[key], moment))
        # Nulls sort first, as in Spark's ordering of structs.
        if previous is None or _null_first(values) > _null_first(previous):
            versions[(row[key], moment)] = values
    return {
        (entity, moment, floor_hour(moment) + HOUR): {
            a: values[columns.index(a)] for a in view.attributes
        }
        for (entity, moment), values in versions.items()
    }


def _null_first(values: tuple) -> tuple:
    return tuple((v is not None, v) for v in values)


def sawtooth_values(
    view: FeatureView, events: dict[str, list[Row]], entity: Any, moment: datetime
) -> Row | None:
    """Every feature of one entity at the instant `moment` with sawtooth windows: window
    `w` holds the events with event time in `[floor_hour(moment) - w, moment)` that
    arrived before `moment`. None when nothing of the entity was known by then: no row
    of the table known at `floor_hour(moment)` and no such event."""
    rows = _entity_events(view, events).get(entity, [])
    tail_end = floor_hour(moment)
    has_row = any(
        max(floor_hour(r["event_timestamp"]) + HOUR, known_from(r)) <= tail_end for r in rows
    )
    seen = [
        r
        for r in rows
        if r["ingestion_timestamp"] < moment
        and tail_end - view.max_window.duration <= r["event_timestamp"] < moment
    ]
    if not has_row and not seen:
        return None
    return _values(view, seen, lambda window: tail_end - window.duration)
