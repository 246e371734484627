"""Expectation suites derived from the feature declarations, one per table.

Nothing here lists columns by hand: each rule follows from what a declared feature is
(see features/core.py for the semantics) or from the table contracts in
pipelines/feature_tables.py and pipelines/tables.py.

Feature view (`features.<view>`, the versions written for one interval, i.e. created in
`(start, end]`):
- schema: exactly the contract's columns, each of its declared type;
- the join key is never null; (join key, event_timestamp, created_timestamp) is unique;
- event_timestamp is a whole hour; created_timestamp is a whole hour in `(start, end]`
  and >= event_timestamp;
- counts and sums are never null (empty windows give 0), and with approx distinct counts
  are >= 0; smoothed ratios lie in [0, 1];
- windows nest: for a count, sum or approx distinct aggregation, the value over a shorter
  window is <= the value over the next longer one;
- an approx distinct count is <= the event count over the same source and window;
- freshness: the latest event_timestamp is within `freshness_lag` of the interval end;
- volume: the row count is within a band around the row count of the same hours a day
  earlier (`gate.comparison_interval`; the previous interval for intervals over a day).
Attribute view: schema and types, key not null, (key, event_timestamp, created_timestamp)
unique, created_timestamp a whole hour in `(start, end]` and >= event_timestamp.
Clean event table: the source's declared validity (`features.Validity`: required
columns, ranges, allowed categories, finite floats, clock skew, earliest time), the
entity keys of the views that read it never null, summed measures >= 0,
ingestion_timestamp within the interval, and event_date the date of event_timestamp.

Tolerances: counts compare exactly. Sums over nested windows may be added up in a
different order, so they get a relative float tolerance. Approx distinct counts come
from HyperLogLog sketches: Spark's `hll_sketch_estimate` (lgConfigK 12) is exact below
about 390 distinct values and within ~1.6% (one standard error) above, and a sketch of a
superset can estimate a hair lower than one of its subset; `hll_tolerance` (default 10%,
about six standard errors) keeps per-row checks over millions of rows from failing on
estimator noise while a real error (a doubled or unioned-twice sketch) still fails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise

from great_expectations.expectations.expectation import Expectation

from features import REGISTRY, AttributeView, EventSource, Feature, FeatureView, Op, Registry
from pipelines.feature_tables import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    feature_table_schema,
)
from pipelines.interval import Interval, sql_timestamp
from pipelines.quality import expectations as ex
from pipelines.tables import CLEAN_EVENTS


@dataclass(frozen=True)
class QualityPolicy:
    """Thresholds of the checks that are not exact."""

    freshness_lag: timedelta = timedelta(hours=2)
    # Rows of this interval / rows of the previous one must lie in [low, high].
    row_count_band: tuple[float, float] = (0.5, 2.0)
    hll_tolerance: float = 0.1
    float_tolerance: float = 1e-9


DEFAULT_POLICY = QualityPolicy()

_NESTING_OPS = (Op.COUNT, Op.SUM, Op.APPROX_DISTINCT)


def nested_window_pairs(view: FeatureView) -> list[tuple[Feature, Feature]]:
    """(shorter, longer) features of each count/sum/approx-distinct aggregation, by window."""
    pairs: list[tuple[Feature, Feature]] = []
    for agg in view.aggregations:
        if agg.op in _NESTING_OPS:
            by_window = sorted(agg.features(), key=lambda f: f.window.hours if f.window else 0)
            pairs += list(pairwise(by_window))
    return pairs


def distinct_count_bounds(view: FeatureView) -> list[tuple[Feature, Feature]]:
    """(approx distinct, count) over the same source and window: distinct values <= events.

    A count of a column counts that column's present values, so it bounds only a distinct
    count of the same column; a count without a column counts every event.
    """
    counts = {
        (agg.source.name, agg.column, f.window): f
        for agg in view.aggregations
        if agg.op is Op.COUNT
        for f in agg.features()
    }
    bounds = []
    for agg in view.aggregations:
        if agg.op is not Op.APPROX_DISTINCT:
            continue
        for feature in agg.features():
            count = counts.get((agg.source.name, None, feature.window)) or counts.get(
                (agg.source.name, agg.column, feature.window)
            )
            if count is not None:
                bounds.append((feature, count))
    return bounds


def _tolerant_excess(value: str, bound: str, relative: float, absolute: float = 0.0) -> str:
    """SQL: `value` exceeds `bound` by more than the tolerance."""
    slack = f"{relative!r} * abs({bound})" + (f" + {absolute!r}" if absolute else "")
    return f"{value} > {bound} + {slack}"


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes} min"


def _schema_expectations(view_schema: Sequence[tuple[str, str]], about: str) -> list[Expectation]:
    columns = [name for name, _ in view_schema]
    out = [ex.columns_match(columns, about=about, exact=True)]
    out += [ex.of_type(name, type_name, about=about) for name, type_name in view_schema]
    return out


def _contract_schema(view: FeatureView | AttributeView) -> list[tuple[str, str]]:
    return [(f.name, type(f.dataType).__name__) for f in feature_table_schema(view).fields]


def _keys_and_times(view: FeatureView | AttributeView) -> list[Expectation]:
    about = view.table
    key = view.entity.join_key
    ident = [key, EVENT_TIMESTAMP, CREATED_TIMESTAMP]
    return [
        ex.not_null(key, about=about, ident=ident),
        ex.unique([key, EVENT_TIMESTAMP, CREATED_TIMESTAMP], about=about),
        ex.not_null(CREATED_TIMESTAMP, about=about, ident=ident),
        ex.at_least(
            CREATED_TIMESTAMP,
            EVENT_TIMESTAMP,
            about=about,
            ident=ident,
            why="values cannot be known before the time they hold for",
        ),
    ]


def _knowledge_rules(interval: Interval) -> list[ex.RowRule]:
    """created_timestamp: the end of the hour in which a version became knowable, within
    the interval that wrote it."""
    start, end = sql_timestamp(interval.start), sql_timestamp(interval.end)
    return [
        ex.RowRule(
            f"{CREATED_TIMESTAMP} is a whole hour",
            f"{CREATED_TIMESTAMP} <> date_trunc('HOUR', {CREATED_TIMESTAMP})",
            (CREATED_TIMESTAMP,),
        ),
        ex.RowRule(
            f"{CREATED_TIMESTAMP} within ({interval.start.isoformat()}, {interval.end.isoformat()}]",
            f"{CREATED_TIMESTAMP} <= {start} OR {CREATED_TIMESTAMP} > {end}",
            (CREATED_TIMESTAMP,),
        ),
    ]


def attribute_view_suite(view: AttributeView, *, interval: Interval) -> list[Expectation]:
    about = view.table
    ident = [view.entity.join_key, EVENT_TIMESTAMP, CREATED_TIMESTAMP]
    return [
        *_schema_expectations(_contract_schema(view), about),
        *_keys_and_times(view),
        ex.rows_satisfy(_knowledge_rules(interval), about=about, ident=ident),
    ]


def feature_view_suite(
    view: FeatureView,
    *,
    interval: Interval,
    previous_rows: int | None,
    policy: QualityPolicy = DEFAULT_POLICY,
) -> list[Expectation]:
    """The suite of one interval of `features.<view>`.

    `previous_rows` is the row count of the comparison interval (the same hours a day
    earlier); with None or 0 there is nothing to compare against and the volume check is
    left out.
    """
    about = view.table
    key = view.entity.join_key
    ident = [key, EVENT_TIMESTAMP, CREATED_TIMESTAMP]
    out = _schema_expectations(_contract_schema(view), about) + _keys_and_times(view)
    for feature in view.features:
        out += _value_range(feature, about=about, ident=ident)
    # Count windows nest exactly: GE's column-pair expectation states that directly.
    rules = [
        ex.RowRule(
            f"{EVENT_TIMESTAMP} is a whole hour",
            f"{EVENT_TIMESTAMP} <> date_trunc('HOUR', {EVENT_TIMESTAMP})",
            (EVENT_TIMESTAMP,),
        ),
        *_knowledge_rules(interval),
    ]
    for shorter, longer in nested_window_pairs(view):
        why = f"windows nest: {shorter.window} within {longer.window}"
        if shorter.op is Op.COUNT:
            out.append(ex.at_least(longer.name, shorter.name, about=about, ident=ident, why=why))
        elif shorter.op is Op.SUM:
            tolerance = policy.float_tolerance
            rules.append(
                ex.RowRule(
                    f"{shorter.name} <= {longer.name}",
                    _tolerant_excess(shorter.name, longer.name, tolerance, tolerance),
                    (shorter.name, longer.name),
                    why=f"{why}; float tolerance {tolerance:g}",
                )
            )
        else:
            rules.append(
                ex.RowRule(
                    f"{shorter.name} <= {longer.name}",
                    _tolerant_excess(shorter.name, longer.name, policy.hll_tolerance),
                    (shorter.name, longer.name),
                    why=f"{why}; HLL tolerance {policy.hll_tolerance:.0%}",
                )
            )
    for distinct, count in distinct_count_bounds(view):
        rules.append(
            ex.RowRule(
                f"{distinct.name} <= {count.name}",
                _tolerant_excess(distinct.name, count.name, policy.hll_tolerance),
                (distinct.name, count.name),
                why=(
                    "distinct values cannot outnumber events; "
                    f"HLL tolerance {policy.hll_tolerance:.0%}"
                ),
            )
        )
    out.append(ex.rows_satisfy(rules, about=about, ident=ident))
    out.append(
        ex.latest_not_before(
            EVENT_TIMESTAMP,
            interval.end - policy.freshness_lag,
            about=about,
            why=(
                f"fresh: within {_duration(policy.freshness_lag)} of the interval end "
                f"{interval.end.isoformat()}"
            ),
        )
    )
    if previous_rows:
        low, high = policy.row_count_band
        out.append(
            ex.row_count_between(
                math.ceil(previous_rows * low),
                math.floor(previous_rows * high),
                about=about,
                why=f"{low:g}x to {high:g}x the {previous_rows} rows of a day earlier",
            )
        )
    return out


def _value_range(feature: Feature, *, about: str, ident: list[str]) -> list[Expectation]:
    """Counts and sums are never null (empty windows give 0); none of them is negative."""
    name = feature.name
    if feature.ratio is not None:
        return [
            ex.not_null(name, about=about, ident=ident),
            ex.between(name, min_value=0.0, max_value=1.0, about=about, ident=ident, why="a ratio"),
        ]
    if feature.op in (Op.COUNT, Op.SUM):
        return [
            ex.not_null(name, about=about, ident=ident),
            ex.between(name, min_value=0, about=about, ident=ident, why=f"a {feature.op}"),
        ]
    if feature.op is Op.APPROX_DISTINCT:
        return [ex.between(name, min_value=0, about=about, ident=ident, why="a distinct count")]
    return []


def entity_keys(source: EventSource, registry: Registry = REGISTRY) -> list[str]:
    """The join keys of the feature views that aggregate `source`: never null in clean rows."""
    keys = {
        view.entity.join_key
        for view in registry.views
        if isinstance(view, FeatureView) and source.name in {s.name for s in view.sources}
    }
    return [c for c in source.columns if c in keys]


def summed_columns(source: EventSource, registry: Registry = REGISTRY) -> list[str]:
    """Columns some feature sums: sums are checked >= 0 and nest, so these must be >= 0."""
    summed = {
        str(agg.column)
        for view in registry.views
        if isinstance(view, FeatureView)
        for agg in view.aggregations
        if agg.op is Op.SUM and agg.source.name == source.name
    }
    return [c for c in source.columns if c in summed]


def clean_table_suite(
    source: EventSource, *, interval: Interval, policy: QualityPolicy = DEFAULT_POLICY
) -> list[Expectation]:
    """The suite of the rows of a clean event table that arrived in `interval`: the
    source's declared validity (what ingest enforces) plus what features rely on."""
    about = source.table
    schema = CLEAN_EVENTS[source.name]
    validity = source.validity
    event_ts, ingestion_ts = source.timestamp_column, source.ingestion_column
    ids = [c for c in (source.id_column,) if c]
    ident = [*ids, event_ts, ingestion_ts]
    out = [ex.columns_match(schema.names, about=about, exact=False)]
    out += [ex.of_type(f.name, type(f.dataType).__name__, about=about) for f in schema.fields]
    required = [*ids, *validity.required, *entity_keys(source), event_ts, ingestion_ts]
    out += [ex.not_null(column, about=about, ident=ident) for column in dict.fromkeys(required)]
    for column, bounds in validity.ranges.items():
        out.append(
            ex.between(
                column,
                min_value=bounds.low,
                max_value=bounds.high,
                about=about,
                ident=ident,
                why="declared range",
            )
        )
    out += [
        ex.between(column, min_value=0, about=about, ident=ident, why="a summed measure")
        for column in summed_columns(source)
        if column not in validity.ranges
    ]
    skew_seconds = int(validity.clock_skew.total_seconds())
    start, end = sql_timestamp(interval.start), sql_timestamp(interval.end)
    earliest = sql_timestamp(validity.earliest)
    rules = [
        ex.RowRule(
            f"{event_ts} <= {ingestion_ts} + {_duration(validity.clock_skew)}",
            f"{event_ts} > {ingestion_ts} + INTERVAL {skew_seconds} SECONDS",
            (event_ts, ingestion_ts),
            why="no events from the future",
        ),
        ex.RowRule(
            f"{event_ts} >= {validity.earliest:%Y-%m-%d}",
            f"{event_ts} < {earliest}",
            (event_ts,),
            why="no broken clocks",
        ),
        ex.RowRule(
            f"{ingestion_ts} within {interval}",
            f"{ingestion_ts} < {start} OR {ingestion_ts} >= {end}",
            (ingestion_ts,),
        ),
        ex.RowRule(
            f"{source.partition_column} is the date of {event_ts}",
            f"{source.partition_column} != to_date({event_ts})",
            (source.partition_column, event_ts),
            why="compute prunes by it",
        ),
    ]
    for column, value_type in source.columns.items():
        if value_type == "float64":
            rules.append(
                ex.RowRule(
                    f"{column} is finite",
                    f"isnan({column}) OR abs({column}) = double('infinity')",
                    (column,),
                )
            )
    for column, values in validity.allowed.items():
        listed = ", ".join(f"'{v}'" for v in values)
        rules.append(
            ex.RowRule(f"{column} is one of {listed}", f"{column} NOT IN ({listed})", (column,))
        )
    out.append(ex.rows_satisfy(rules, about=about, ident=ident))
    return out


def event_sources(registry: Registry = REGISTRY) -> list[EventSource]:
    """The clean event tables the feature views read, in declaration order."""
    seen: dict[str, EventSource] = {}
    for view in registry.views:
        if isinstance(view, FeatureView):
            for source in view.sources:
                seen.setdefault(source.name, source)
    return list(seen.values())
