"""Point-in-time ("as of") join of label rows to feature tables, without a range join.

For every label row and feature view: the view's row of the same entity with the
greatest `event_timestamp <= label time` (ties: greatest `created_timestamp`), kept
only if `event_timestamp >= label time - ttl` (ttl 0 = unbounded); otherwise nulls.
These are the semantics of Feast's `get_historical_features` (Spark offline store),
`Mode.FEAST`. In the other modes a row (a version) counts only once visible:
`created_timestamp <= label time` as known (`Mode.KNOWN`, Feast's
`filter_by_created_timestamp`), `created_timestamp + serving lag <= label time` as
served (`Mode.SERVING`, and `Mode.REALTIME` for the views that are not real-time); among
visible versions the same order picks the best one.

How, per entity key (views on the same key are joined in one pass, one shuffle):

1. Label rows and feature rows are put in one DataFrame, partitioned by key and
   sorted by (visible time, kind): a feature row at the same instant as a label sorts
   first, so it is visible to it. The visible time of a feature row is its
   `event_timestamp`, or `greatest(event_timestamp, created_timestamp + lag)`.
2. A running aggregate over that order gives each label row the best feature row
   visible to it: the greatest event time, then the greatest created time, then (only
   to be deterministic when two rows tie on both) the greatest values. Each view's
   row travels as one struct, so a row's null values stay null instead of being filled
   from older rows, as `last(ignorenulls)` per column would do. By default the visible
   time is the event time, so the rows are also ordered by that struct and the best
   row is simply the last one (`last(struct, ignorenulls)`). Known or served, the visible
   time is when a version became visible, which does not order rows by event time, so a
   running `max(struct)` picks the best one (a struct comparison per row: slower).
3. Hot keys (at least `SkewPolicy.min_hot_labels` label rows and more than
   `SkewPolicy.hot_share` of them) are also split by time bucket, so one popular
   entity does not land in one task (Spark's adaptive skew handling only splits joins,
   not windows). Every (hot key, bucket) with labels gets one "carry-in" row: the best
   feature row of all its earlier buckets, from a running max over per-bucket maxima
   (a few rows per bucket, however hot the key). Label rows that cannot match (null key
   or null time) are spread over salted partitions.
4. The TTL check is applied to the chosen row. The label row travels whole through the
   sort (no join back), so every label row comes out exactly once, duplicates included.

Only feature rows that can match are read: `event_timestamp <= latest label time` and,
with a TTL, `>= earliest label time - ttl`. For label sets up to `PRUNE_KEYS_MAX_LABELS`
rows, feature rows are also kept only for keys that occur in the labels (a broadcast
semi-join), so a small training set does not sort the history of every entity.

Spark's window operator is not the bottleneck here: a carry-forward written as a JVM
`mapPartitions` over the same sorted rows measured no faster, and pruning feature rows
to the labels' (key, day) pairs cost more in its extra aggregates than the smaller sort
saved. The time goes to scanning, shuffling and sorting the feature rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.feature_tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP, spark_type
from pipelines.interval import from_unix_micros, utc_literal
from pipelines.training.spec import Mode, ViewRead

# Internal column names; declared names are lower_snake_case and labels may not use
# the prefix (checked in pipelines.training.api).
_LABEL = "__pit_label"
_TIME = "__pit_time"
_KEY = "__pit_key"
_BUCKET = "__pit_bucket"
_VISIBLE = "__pit_visible"
_KIND = "__pit_kind"
_ORDER = "__pit_order"
_EVENT = "__pit_event"
_CREATED = "__pit_created"

_FEATURE_ROW, _LABEL_ROW = 0, 1
# Label rows that cannot match anything are spread over this many partitions.
_UNMATCHABLE_SALT = 64
# The bucket of every row of a key that is not hot.
_WHOLE_KEY = 0
# Up to this many label rows, feature rows are pruned to the labels' keys. Measured on
# bench/training_set.py's data (10 M feature rows): 20 k labels 9.5 -> 6.6 s, 100 k
# 9.6 -> 8.6 s, but 1 M labels 12.4 -> 14.2 s, as nearly every key has labels there and
# the distinct keys and the hash probes cost more than the rows they remove.
PRUNE_KEYS_MAX_LABELS = 250_000


@dataclass(frozen=True)
class SkewPolicy:
    """When a key counts as hot, and into how many time buckets hot keys are split."""

    # A key is hot with at least this many label rows. Below it, one task sorts a key's
    # rows easily, and splitting costs more than it saves: a second scan of the key's
    # feature rows and a carry-in aggregate (see bench/training_set.py).
    min_hot_labels: int = 1_000_000
    hot_share: float = 0.01  # ... and more than this share of the label rows
    max_hot_keys: int = 512
    buckets: int = 64  # over the label time range
    min_bucket_width: timedelta = timedelta(minutes=1)


@dataclass(frozen=True)
class LabelStats:
    """Label row count and earliest/latest label time in UTC (None when no row has a time)."""

    rows: int
    earliest: datetime | None
    latest: datetime | None

    def time_range(self) -> tuple[datetime, datetime]:
        """(earliest, latest), for joins that run only when some label has a time."""
        if self.earliest is None or self.latest is None:
            raise ValueError("no label row has a time")
        return self.earliest, self.latest


def label_stats(labels: DataFrame, timestamp_column: str) -> LabelStats:
    """Three scalars from one aggregate: they prune feature rows and size time buckets."""
    label_time = F.unix_micros(_as_timestamp(labels, timestamp_column))
    row = labels.agg(
        F.count(F.lit(1)).alias("n"), F.min(label_time).alias("lo"), F.max(label_time).alias("hi")
    ).first()
    if row is None:
        return LabelStats(0, None, None)
    lo, hi = (None if us is None else from_unix_micros(us) for us in (row["lo"], row["hi"]))
    return LabelStats(int(row["n"]), lo, hi)


def bucket_width(stats: LabelStats, policy: SkewPolicy) -> timedelta:
    if stats.earliest is None or stats.latest is None:
        return policy.min_bucket_width
    span_us = (stats.latest - stats.earliest) / timedelta(microseconds=1)
    width = timedelta(microseconds=math.ceil(span_us / max(policy.buckets, 1)))
    return max(width, policy.min_bucket_width)


def point_in_time_join(
    labels: DataFrame,
    views: Sequence[tuple[ViewRead, DataFrame]],
    *,
    timestamp_column: str,
    stats: LabelStats,
    mode: Mode = Mode.FEAST,
    skew: SkewPolicy | None = None,
    prune_keys: bool | None = None,
) -> DataFrame:
    """Label columns (unchanged, in order) followed by the views' features (in order).

    `views` pairs each view with its feature rows (a DataFrame holding at least
    `view.columns()`). Inputs are assumed validated (see `pipelines.training.api`).
    `prune_keys` keeps only feature rows of keys present in the labels; by default it
    is on for up to `PRUNE_KEYS_MAX_LABELS` label rows. Neither it nor `skew` changes
    the rows returned.
    """
    policy = skew or SkewPolicy()
    if prune_keys is None:
        prune_keys = stats.rows <= PRUNE_KEYS_MAX_LABELS
    label_columns = labels.columns
    rows = labels.select(
        F.struct(*[column_named(c) for c in label_columns]).alias(_LABEL),
        _as_timestamp(labels, timestamp_column).alias(_TIME),
    )
    out = rows
    if stats.earliest is None or stats.latest is None:
        # No label has a time: nothing can match.
        for view, table in views:
            for name in view.features:
                out = out.withColumn(name, F.lit(None).cast(table.schema[name].dataType))
    else:
        width_us = bucket_width(stats, policy) // timedelta(microseconds=1)
        groups = _group_by_key(views)
        hot_keys = _hot_keys(rows, [group[0][0] for group in groups], stats, policy)
        for group, hot in zip(groups, hot_keys, strict=True):
            out = _join_key_group(
                out,
                rows,
                group,
                hot,
                stats=stats,
                width_us=width_us,
                mode=mode,
                prune_keys=prune_keys,
            )
    features = [column_named(name) for view, _ in views for name in view.features]
    return out.select(*[F.col(_LABEL)[c].alias(c) for c in label_columns], *features)


def _hot_keys(
    rows: DataFrame, views: list[ViewRead], stats: LabelStats, policy: SkewPolicy
) -> list[list[Any]]:
    """Per join key (one view each), the keys with more label rows than the policy
    allows: one aggregate over the labels for all join keys (grouping sets), and a
    bounded list to the driver."""
    if stats.rows < policy.min_hot_labels:
        return [[] for _ in views]
    threshold = max(int(stats.rows * policy.hot_share), policy.min_hot_labels - 1)
    names = [f"{_KEY}_{n}" for n in range(len(views))]
    keys = rows.select(
        *[_label_key(view).alias(name) for view, name in zip(views, names, strict=True)]
    )
    counts = (
        keys.groupingSets([[name] for name in names], *names)
        .agg(F.count(F.lit(1)).alias("count"), F.grouping_id().alias("set"))
        .where(F.col("count") > threshold)
        .orderBy(F.desc("count"))
        # A shared bound; a join key left past it is just not split (speed, not rows).
        .limit(policy.max_hot_keys * len(views))
        .collect()
    )
    everything_but = (1 << len(names)) - 1  # grouping_id bit i: column i aggregated away
    hot: list[list[Any]] = []
    for n, name in enumerate(names):
        own_set = everything_but - (1 << (len(names) - 1 - n))
        found = [r[name] for r in counts if r["set"] == own_set and r[name] is not None]
        hot.append(found[: policy.max_hot_keys])
    return hot


def _join_key_group(
    current: DataFrame,
    original: DataFrame,
    group: list[tuple[ViewRead, DataFrame]],
    hot_keys: list[Any],
    *,
    stats: LabelStats,
    width_us: int,
    mode: Mode,
    prune_keys: bool,
) -> DataFrame:
    """Add the features of views sharing one join key to `current` (one shuffle, one sort)."""
    carried = [c for c in current.columns if c not in (_LABEL, _TIME)]
    label_key = _label_key(group[0][0])
    matchable = label_key.isNotNull() & F.col(_TIME).isNotNull()
    first_bucket = _bucket(utc_literal(stats.time_range()[0]), width_us)

    def is_hot(key: Column) -> Column:
        return key.isin(hot_keys) if hot_keys else F.lit(False)

    label_bucket = (
        F.when(~matchable, -1 - F.pmod(F.xxhash64(F.col(_LABEL)), F.lit(_UNMATCHABLE_SALT)))
        .when(is_hot(label_key), _bucket(F.col(_TIME), width_us))
        .otherwise(_WHOLE_KEY)
    )
    label_rows = current.select(
        F.col(_LABEL),
        F.col(_TIME),
        *[F.col(c) for c in carried],
        F.when(matchable, label_key).alias(_KEY),
        label_bucket.alias(_BUCKET),
        F.when(matchable, F.col(_TIME)).alias(_VISIBLE),
        F.lit(_LABEL_ROW).alias(_KIND),
    )

    structs = [_state_column(view) for view, _ in group]
    feature_rows: DataFrame | None = None
    for view, table in group:
        rows = _feature_rows(table, view, stats=stats, mode=mode)
        feature_rows = (
            rows
            if feature_rows is None
            else feature_rows.unionByName(rows, allowMissingColumns=True)
        )
    assert feature_rows is not None
    if prune_keys:
        # Keys from the original labels: from `current`, they would recompute the
        # previous key group's sort.
        label_keys = original.select(label_key.alias(_KEY)).where(F.col(_KEY).isNotNull())
        feature_rows = feature_rows.join(F.broadcast(label_keys.distinct()), _KEY, "left_semi")
    # A hot key's rows older than its first label bucket only matter through carry-ins.
    feature_rows = feature_rows.withColumn(
        _BUCKET,
        F.when(
            is_hot(F.col(_KEY)),
            F.greatest(_bucket(F.col(_VISIBLE), width_us), first_bucket - 1),
        ).otherwise(_WHOLE_KEY),
    )
    everything = label_rows.unionByName(
        feature_rows.where(~is_hot(F.col(_KEY)) | (F.col(_BUCKET) >= first_bucket)),
        allowMissingColumns=True,
    )
    if hot_keys:
        # Label buckets come from the original labels: deriving them from `current`
        # would recompute the previous key group's sort.
        hot_label_buckets = (
            original.where(F.col(_TIME).isNotNull() & is_hot(label_key))
            .select(label_key.alias(_KEY), _bucket(F.col(_TIME), width_us).alias(_BUCKET))
            .distinct()
        )
        carry_ins = _carry_ins(feature_rows.where(is_hot(F.col(_KEY))), hot_label_buckets, structs)
        everything = everything.unionByName(carry_ins, allowMissingColumns=True)

    order = [F.col(_VISIBLE).asc_nulls_first(), F.col(_KIND).asc()]
    best_so_far: Callable[[str], Column]
    if mode is not Mode.FEAST:
        best_so_far = F.max
    else:
        # Rows at the same event time are ordered by their struct (created time first),
        # so the last row seen is the best one.
        order += [F.col(state).asc_nulls_first() for state in structs]
        best_so_far = _last_non_null
    running = (
        Window.partitionBy(_KEY, _BUCKET)
        .orderBy(*order)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    best = everything.select(
        F.col(_LABEL),
        F.col(_TIME),
        F.col(_KIND),
        *[F.col(c) for c in carried],
        *[best_so_far(state).over(running).alias(state) for state in structs],
    ).where(F.col(_KIND) == _LABEL_ROW)

    new_features = []
    for view, _ in group:
        state = F.col(_state_column(view))
        fresh = state.isNotNull()
        if view.ttl_seconds > 0:
            fresh = fresh & (
                state[_EVENT] >= F.col(_TIME) - F.make_dt_interval(secs=F.lit(view.ttl_seconds))
            )
        new_features += [F.when(fresh, state[name]).alias(name) for name in view.features]
    return best.select(F.col(_LABEL), F.col(_TIME), *[F.col(c) for c in carried], *new_features)


def _feature_rows(table: DataFrame, view: ViewRead, *, stats: LabelStats, mode: Mode) -> DataFrame:
    """(key, visible time, kind, state struct) for the rows that can match some label."""
    event, created = F.col(EVENT_TIMESTAMP), F.col(CREATED_TIMESTAMP)
    key = F.col(view.join_key).cast(spark_type(view.key_type))
    earliest, latest = (utc_literal(moment) for moment in stats.time_range())
    keep = key.isNotNull() & event.isNotNull() & (event <= latest)
    if view.ttl_seconds > 0:
        keep = keep & (event >= earliest - F.make_dt_interval(secs=F.lit(view.ttl_seconds)))
    lag = view.visible_after_seconds(mode)
    if lag is None:
        visible = event
    else:
        visible = F.greatest(event, created + F.make_dt_interval(secs=F.lit(lag)))
        keep = keep & created.isNotNull() & (visible <= latest)
    state = F.struct(
        event.alias(_EVENT), created.alias(_CREATED), *[F.col(name) for name in view.features]
    )
    return table.where(keep).select(
        key.alias(_KEY),
        visible.alias(_VISIBLE),
        F.lit(_FEATURE_ROW).alias(_KIND),
        state.alias(_state_column(view)),
    )


def _carry_ins(feature_rows: DataFrame, label_buckets: DataFrame, structs: list[str]) -> DataFrame:
    """Per (hot key, label bucket): the best feature row of every earlier bucket."""
    per_bucket = feature_rows.groupBy(_KEY, _BUCKET).agg(
        *[F.max(state).alias(state) for state in structs]
    )
    # A label bucket sorts before the feature maximum of its own bucket: strictly earlier.
    ordered = (
        Window.partitionBy(_KEY)
        .orderBy(F.col(_BUCKET).asc(), F.col(_ORDER).asc())
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    combined = per_bucket.withColumn(_ORDER, F.lit(1)).unionByName(
        label_buckets.withColumn(_ORDER, F.lit(0)), allowMissingColumns=True
    )
    any_state = F.lit(False)
    for state in structs:
        any_state = any_state | F.col(state).isNotNull()
    return (
        combined.select(
            _KEY,
            _BUCKET,
            _ORDER,
            *[F.max(state).over(ordered).alias(state) for state in structs],
        )
        .where((F.col(_ORDER) == 0) & any_state)
        .select(
            _KEY,
            _BUCKET,
            F.lit(None).cast(T.TimestampType()).alias(_VISIBLE),
            F.lit(_FEATURE_ROW).alias(_KIND),
            *structs,
        )
    )


def _last_non_null(column: str) -> Column:
    return F.last(column, ignorenulls=True)


def _group_by_key(
    views: Sequence[tuple[ViewRead, DataFrame]],
) -> list[list[tuple[ViewRead, DataFrame]]]:
    groups: dict[tuple[str, str], list[tuple[ViewRead, DataFrame]]] = {}
    for view, table in views:
        groups.setdefault((view.join_key, view.key_type), []).append((view, table))
    return list(groups.values())


def _label_key(view: ViewRead) -> Column:
    return F.col(_LABEL)[view.join_key].cast(spark_type(view.key_type))


def _state_column(view: ViewRead) -> str:
    return f"__pit_state_{view.name}"


def _bucket(time: Column, width_us: int) -> Column:
    # Any non-decreasing function of time works; buckets only need to be contiguous.
    return F.floor(F.unix_micros(time) / F.lit(width_us)).cast(T.LongType())


def _as_timestamp(labels: DataFrame, timestamp_column: str) -> Column:
    """The label time as an instant; TIMESTAMP_NTZ is read in the session time zone (UTC)."""
    column = column_named(timestamp_column)
    if isinstance(labels.schema[timestamp_column].dataType, T.TimestampNTZType):
        return column.cast(T.TimestampType())
    return column


def column_named(name: str) -> Column:
    """A column by its name, quoted when the name is not a plain identifier."""
    if name.replace("_", "").isalnum():
        return F.col(name)
    return F.col("`" + name.replace("`", "``") + "`")
