"""Sliding windows over hourly tiles, in time linear in the number of tiles.

A row at hour `T` aggregates the tiles of hours `[T - w, T)`. Rows are indexed
by `q = T - 1h` (the last hour they include), so a tile at hour `h` and the row
where its events enter the windows share one index, and window `w` is the tiles
of `[q - w + 1, q]`.

Counts and sums are invertible: the value over a window is the running total at
`q` minus the running total at the last row at or before `q - w`. Both are
unbounded-preceding frames of one ordering per entity, so every invertible
window of a view costs one sort in all. Sums are exact decimals, so the
difference does not depend on where the running totals start.

Min, max, sketches and the latest ingestion time have no inverse. For these,
each window is cut into fixed blocks of `w` hours (block `k` = hours
`[k*w, k*w + w)`, aligned to the epoch, so the same tile always falls in the
same block whatever interval is computed). The tiles of `[q - w + 1, q]` are a
suffix of block `k - 1` plus a prefix of block `k` (`k` = block of `q`), merged
with one `combine`:

* prefix of block `k` up to `q`: a running aggregate per block;
* suffix of block `k - 1` from `q - w + 1`: the running aggregate per block in
  reverse order, excluding the current row, taken at the last row at or before
  `q - w`. Every block that holds a tile also holds a row at its first hour (a
  "block start" row, never output), so that row is in block `k - 1` whenever
  block `k - 1` has tiles.

Windows whose lengths divide one another (1d, 7d, 28d) nest their blocks, so
one ascending sort serves the prefixes of all of them (partitioned by the outer
blocks, ordered by the inner ones) and one descending sort the suffixes. A
view therefore costs three sorts per entity: ascending, descending, and the
running order of the invertible windows and the lookups. LAST needs no blocks:
the latest event at or before `q` is in the window iff its hour is at least
`q - w + 1`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from features import Aggregation, FeatureView, Op
from pipelines.compute.tiles import (
    HOUR_MICROS,
    INGESTED,
    POS,
    SUM_TYPE,
    Kind,
    Measure,
    measures_of,
)
from pipelines.feature_tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP, PARTITION_COLUMN

# Whether a grid row is an output row (a tile, or an hour where tiles leave a
# window) rather than a block start; block starts only anchor the lookups.
OUTPUT = "__output"


@dataclass(frozen=True)
class HourRange:
    """Hour indices of one computation: output rows `first_row..last_row`.

    The tiles read start at `first_row - max_window`: the earliest tile whose
    leaving the largest window still changes a row of the interval.
    """

    first_row: int
    last_row: int


def grid(
    view: FeatureView, tile_frames: list[DataFrame], hours: HourRange, chains: list[list[int]]
) -> DataFrame:
    """One row per (entity, index) that is a tile, an output row or a block start.

    Output rows are the hours where a value may change: the index of each tile
    (its events enter) and that index plus each window (they leave); those before
    the interval are dropped. Block starts are the first hour of each block (of
    each length in `chains`) that holds a tile. All come from one pass over the
    tiles, so the events are read and tiled once. Partitioned by entity, sorted
    for the first chain's ascending frames, with a block column per length.
    """
    key = view.entity.join_key
    windows = [w.hours for w in view.windows]
    blocks = [w for chain in chains for w in chain]
    expanded = []
    for tiles in tile_frames:
        measures = [f for f in tiles.schema.fields if f.name not in (key, POS)]
        nulls = [F.lit(None).cast(f.dataType).alias(f.name) for f in measures]
        here = F.struct(
            F.col(POS).alias(POS), F.lit("tile").alias("kind"), *[F.col(f.name) for f in measures]
        )
        leaving = [_empty_row(F.col(POS) + w, "leave", nulls) for w in windows]
        starts = [_empty_row(F.col(POS) - F.col(POS) % b, "start", nulls) for b in blocks]
        rows = tiles.select(key, F.explode(F.array(here, *leaving, *starts)).alias("row"))
        kind = F.col("kind")
        keep = (F.col(POS) <= hours.last_row) & (
            (kind != "leave") | (F.col(POS) >= hours.first_row)
        )
        expanded.append(
            rows.select(key, "row.*")
            .where(keep)
            .select("*", (kind != "start").alias(OUTPUT))
            .drop("kind")
        )
    rows = expanded[0]
    for frame in expanded[1:]:
        rows = rows.unionByName(frame, allowMissingColumns=True)
    measure_columns = [c for c in rows.columns if c not in (key, POS, OUTPUT)]
    # Grouping by the first chain's blocks too (they depend on the hour only)
    # sorts the rows once for the merge and that chain's ascending frames.
    first_chain = chains[0] if chains else []
    grouped = (
        # Repartitioning by entity alone lets the merge and every window of the
        # view reuse one distribution: no further shuffles.
        _by_entity(rows, key)
        .groupBy(key, *[_block_of(w).alias(_block_name(w)) for w in first_chain], POS)
        .agg(
            F.max(OUTPUT).alias(OUTPUT),
            *[
                (F.max(c) if c == INGESTED else F.first(c, ignorenulls=True)).alias(c)
                for c in measure_columns
            ],
        )
    )
    others = [w for w in blocks if w not in first_chain]
    return grouped.select("*", *[_block_of(w).alias(_block_name(w)) for w in others])


def _by_entity(rows: DataFrame, key: str) -> DataFrame:
    """Rows hash-partitioned by entity into `spark.sql.shuffle.partitions` partitions.

    An explicit count, because adaptive execution sizes partitions by shuffled bytes:
    the grid is compact (about 20 bytes a row), but each row then goes through three
    sorts and every window of the view. On 10 days of the feature-compute benchmark,
    AQE merged the largest view's grid into 3 tasks (on 2 cores) that spilled 5.8 GB;
    with 8 tasks nothing spills.
    """
    partitions = int(rows.sparkSession.conf.get("spark.sql.shuffle.partitions") or "200")
    return rows.repartition(partitions, key)


def _empty_row(position: Column, kind: str, nulls: list[Column]) -> Column:
    return F.struct(position.alias(POS), F.lit(kind).alias("kind"), *nulls)


def _block_name(w: int) -> str:
    return f"__block{w}"


def _block_of(w: int) -> Column:
    return F.expr(f"`{POS}` div {w}")


def _block(w: int) -> Column:
    """The block of length `w` of each grid row (a column of the grid)."""
    return F.col(_block_name(w))


def nested_chains(lengths: list[int]) -> list[list[int]]:
    """Window lengths grouped into chains, longest first, each dividing the one before.

    The blocks of a chain nest, so one sort orders all of them.
    """
    chains: list[list[int]] = []
    for w in sorted(set(lengths), reverse=True):
        for chain in chains:
            if chain[-1] % w == 0:
                chain.append(w)
                break
        else:
            chains.append([w])
    return chains


def _block_frames(
    rows: DataFrame, key: str, chain: list[int], needed: dict[int, list[Measure]]
) -> DataFrame:
    """Add `<measure>__pre<w>` and `<measure>__suf<w>` for every window of one chain."""
    ascending = [_block(w) for w in chain] + [F.col(POS)]
    descending = [-c for c in ascending]
    for order, frame_end, suffix in (
        (ascending, Window.currentRow, "pre"),
        (descending, -1, "suf"),
    ):
        columns = []
        for depth, w in enumerate(chain, start=1):
            # Partitioned by this block and the outer ones, ordered by the inner
            # ones and the hour: every window of the chain asks for the same order.
            window = (
                Window.partitionBy(F.col(key), *order[:depth])
                .orderBy(*order[depth:])
                .rowsBetween(Window.unboundedPreceding, frame_end)
            )
            columns += [
                m.over(F.col(m.name)).over(window).alias(f"{m.name}__{suffix}{w}")
                for m in needed[w]
            ]
        rows = rows.select("*", *columns)
    return rows


def blocked_measures(needed: dict[int, list[Measure]]) -> dict[int, list[Measure]]:
    """Per window longer than an hour, its measures without an inverse (merged over blocks)."""
    blocked = {w: [m for m in ms if not m.invertible] for w, ms in needed.items() if w > 1}
    return {w: ms for w, ms in blocked.items() if ms}


def windowed_measures(
    rows: DataFrame,
    key: str,
    needed: dict[int, list[Measure]],
    latest: list[Measure],
    chains: list[list[int]],
) -> tuple[DataFrame, dict[tuple[Measure, int], str]]:
    """For each window and measure, a column with the measure over the window.

    `chains` are the `nested_chains` of the `blocked_measures` windows (the grid
    holds their block columns). Returns the frame and the name of the column
    holding each (measure, window); for the LATEST measures, `<name>__upto` holds
    the latest value up to the row.
    """
    blocked = blocked_measures(needed)
    for chain in chains:
        rows = _block_frames(rows, key, chain, blocked)

    by_pos = Window.partitionBy(key).orderBy(POS)
    running = by_pos.rangeBetween(Window.unboundedPreceding, Window.currentRow)
    # Rows up to q - w: the rows before window w starts.
    until = {w: by_pos.rangeBetween(Window.unboundedPreceding, -w) for w in needed if w > 1}
    lookups: list[Column] = []
    for w, ms in blocked.items():
        # The reverse running aggregate at the last row at or before q - w.
        parts = [_block(w).alias("block")] + [F.col(f"{m.name}__suf{w}") for m in ms]
        lookups.append(F.last(F.struct(*parts)).over(until[w]).alias(f"__before{w}"))
    totals = {m for w, ms in needed.items() if w > 1 for m in ms if m.invertible}
    for m in sorted(totals, key=lambda m: m.name):
        lookups.append(m.over(F.col(m.name)).over(running).alias(f"{m.name}__total"))
        for w, ms in needed.items():
            if w > 1 and m in ms:
                total_before = m.over(F.col(m.name)).over(until[w])
                lookups.append(total_before.alias(f"{m.name}__total_before{w}"))
    lookups += [F.max(m.name).over(running).alias(f"{m.name}__upto") for m in latest]
    rows = rows.select("*", *lookups)

    names: dict[tuple[Measure, int], str] = {}
    values: list[Column] = []
    for w in sorted(needed):
        for m in needed[w]:
            name = f"{m.name}__w{w}"
            names[(m, w)] = name
            if w == 1:
                values.append(F.col(m.name).alias(name))
            elif m.invertible:
                total = F.col(f"{m.name}__total")
                before = F.coalesce(F.col(f"{m.name}__total_before{w}"), F.lit(0))
                if m.kind is Kind.SUM:
                    total, before = total.cast(SUM_TYPE), before.cast(SUM_TYPE)
                values.append((total - before).alias(name))
            else:
                values.append(_blocked_value(m, w).alias(name))
    upto = [F.col(f"{m.name}__upto") for m in latest]
    return rows.where(F.col(OUTPUT)).select(key, POS, *values, *upto), names


def _blocked_value(m: Measure, w: int) -> Column:
    before = F.col(f"__before{w}")
    # Block k - 1 has tiles iff its block start is at or before q - w.
    left = F.when(before["block"] == _block(w) - 1, before[f"{m.name}__suf{w}"])
    prefix_value = F.col(f"{m.name}__pre{w}")
    aligned = (F.col(POS) % w) == w - 1
    return F.when(aligned, prefix_value).otherwise(m.combine(left, prefix_value))


def _finish(aggregation: Aggregation, w: int, value: dict[tuple[Measure, int], Column]) -> Column:
    op = aggregation.op
    first = measures_of(aggregation)[0]
    if op is Op.COUNT:
        return F.coalesce(value[(first, w)], F.lit(0))
    if op is Op.SUM:
        return F.coalesce(value[(first, w)].cast("double"), F.lit(0.0))
    if op is Op.AVG:
        total, count = (value[(m, w)] for m in measures_of(aggregation))
        return F.when(count > 0, total.cast("double") / count)
    if op is Op.APPROX_DISTINCT:
        return F.coalesce(F.hll_sketch_estimate(value[(first, w)]), F.lit(0))
    if op is Op.LAST:
        latest = F.col(f"{first.name}__upto")
        hour = F.expr(f"unix_micros(`{first.name}__upto`.ts) div {HOUR_MICROS}")
        return F.when(hour >= F.col(POS) - w + 1, latest["value"])
    return value[(first, w)]  # MIN, MAX: null when the window is empty


def feature_rows(view: FeatureView, tile_frames: list[DataFrame], hours: HourRange) -> DataFrame:
    """The view's rows for output indices `hours.first_row..last_row`, in table order (no types)."""
    key = view.entity.join_key
    needed: dict[int, list[Measure]] = {}
    latest: list[Measure] = []
    for aggregation in view.aggregations:
        if aggregation.op is Op.LAST:
            latest += [m for m in measures_of(aggregation) if m not in latest]
            continue
        for w in aggregation.windows:
            for m in measures_of(aggregation):
                if m not in needed.setdefault(w.hours, []):
                    needed[w.hours].append(m)
    ingested = Measure(Kind.INGESTED)
    needed.setdefault(view.max_window.hours, []).append(ingested)

    chains = nested_chains(list(blocked_measures(needed)))
    rows, names = windowed_measures(
        grid(view, tile_frames, hours, chains), key, needed, latest, chains
    )
    rows = rows.where(F.col(POS) >= hours.first_row)
    value = {k: F.col(v) for k, v in names.items()}
    event_time = F.timestamp_seconds((F.col(POS) + 1) * 3600)
    features: dict[str, Column] = {}
    for aggregation in view.aggregations:
        for w in aggregation.windows:
            features[aggregation.feature_name(w)] = _finish(aggregation, w.hours, value)
    # Ratios refer to count features: evaluate them from the same expressions.
    for ratio in view.ratios:
        numerator, denominator = features[ratio.numerator], features[ratio.denominator]
        features[ratio.name] = F.least(
            F.lit(1.0),
            (numerator + F.lit(ratio.prior * ratio.weight)) / (denominator + F.lit(ratio.weight)),
        )
    created = F.greatest(event_time, value[(ingested, view.max_window.hours)])
    return rows.select(
        F.col(key),
        event_time.alias(EVENT_TIMESTAMP),
        created.alias(CREATED_TIMESTAMP),
        *[column.alias(name) for name, column in features.items()],
        F.to_date(event_time).alias(PARTITION_COLUMN),
    )
