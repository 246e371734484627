"""A brute-force reference for the feature tables, independent of `pipelines.compute`.

It reads the semantics straight from `features.core` and evaluates them by
scanning the raw events of each entity for every hour asked about: no tiles, no
window functions, no Spark. Events and dimension rows are plain dicts (the rows
the tests write into the clean tables); timestamps are naive UTC datetimes.

Distinct counts here are exact; the engine's HyperLogLog estimates equal them
for the small cardinalities of the tests (a few dozen distinct values: the sketch
is then in its exact list/set mode).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from features import AttributeView, FeatureView, Op

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


def change_hours(view: FeatureView, events: dict[str, list[Row]]) -> dict[Any, set[datetime]]:
    """Hours where an entity's row may change: event hour + 1h, and + 1h + each window."""
    out: dict[Any, set[datetime]] = defaultdict(set)
    for entity, rows in _entity_events(view, events).items():
        for row in rows:
            entered = floor_hour(row["event_timestamp"]) + HOUR
            out[entity].add(entered)
            for window in view.windows:
                out[entity].add(entered + window.duration)
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


def value_at(view: FeatureView, entity_rows: list[Row], moment: datetime) -> Row:
    """Every feature of one entity at hour `moment`, plus its `created_timestamp`."""
    out: Row = {}
    for aggregation in view.aggregations:
        for window in aggregation.windows:
            in_window = [
                r
                for r in entity_rows
                if r["__source"] == aggregation.source.name
                and moment - window.duration <= r["event_timestamp"] < moment
            ]
            out[aggregation.feature_name(window)] = _aggregate(
                aggregation.op, aggregation.column, in_window
            )
    for ratio in view.ratios:
        numerator, denominator = out[ratio.numerator], out[ratio.denominator]
        out[ratio.name] = min(
            1.0, (numerator + ratio.prior * ratio.weight) / (denominator + ratio.weight)
        )
    horizon = moment - view.max_window.duration
    arrivals = [
        r["ingestion_timestamp"] for r in entity_rows if horizon <= r["event_timestamp"] < moment
    ]
    out["created_timestamp"] = max([moment, *arrivals])
    return out


def windowed_rows(
    view: FeatureView, events: dict[str, list[Row]], start: datetime, end: datetime
) -> dict[tuple[Any, datetime], Row]:
    """The rows the table must hold for `[start, end)`, keyed by (entity, event_timestamp)."""
    grouped = _entity_events(view, events)
    out: dict[tuple[Any, datetime], Row] = {}
    for entity, hours in change_hours(view, events).items():
        for moment in hours:
            if start <= moment < end:
                out[(entity, moment)] = value_at(view, grouped[entity], moment)
    return out


def values_as_of(
    view: FeatureView, events: dict[str, list[Row]], entity: Any, moment: datetime
) -> Row:
    """The features of `entity` at `floor_hour(moment)` (no created_timestamp)."""
    values = value_at(view, _entity_events(view, events).get(entity, []), floor_hour(moment))
    values.pop("created_timestamp")
    return values


def attribute_rows(
    view: AttributeView, dimension: list[Row], start: datetime, end: datetime
) -> dict[tuple[Any, datetime], Row]:
    """One row per key per ingestion time in `[start, end)`; conflicts: greatest attributes."""
    key = view.entity.join_key
    versions: dict[tuple[Any, datetime], tuple] = {}
    for row in dimension:
        moment = row[view.source.ingestion_column]
        if row[key] is None or moment is None or not start <= moment < end:
            continue
        values = tuple(row[a] for a in view.attributes)
        previous = versions.get((row[key], moment))
        # Nulls sort first, as in Spark's ordering of structs.
        if previous is None or _null_first(values) > _null_first(previous):
            versions[(row[key], moment)] = values
    return {
        (entity, moment): {
            **dict(zip(view.attributes, values, strict=True)),
            "created_timestamp": moment,
        }
        for (entity, moment), values in versions.items()
    }


def _null_first(values: tuple) -> tuple:
    return tuple((v is not None, v) for v in values)
