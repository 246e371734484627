"""Sliding windows over hourly tiles, in time linear in the number of tiles.

A row at hour `T` aggregates the tiles of hours `[T - w, T)`. Rows are indexed
by `q = T - 1h` (the last hour they include), so a tile at hour `h` and the row
where its events enter the windows share one index, and window `w` is the tiles
of `[q - w + 1, q]`.

A sliding frame that re-reads `w` tiles for every row would cost rows x tiles in
the window. Instead each window is cut into fixed blocks of `w` hours
(block `k` = hours `[k*w, k*w + w)`, aligned to the epoch, so the same tile always
falls in the same block whatever interval is computed). The tiles of
`[q - w + 1, q]` are a suffix of block `k - 1` plus a prefix of block `k`
(`k` = block of `q`), two disjoint sets merged with one `combine`:

* prefix of block `k` up to `q`: a running aggregate per block;
* suffix of block `k - 1` from `q - w + 1`: the running aggregate per block in
  reverse order, excluding the current row, taken at the last row at or before
  `q - w` (an unbounded-preceding frame, so incremental); if that row is not in
  block `k - 1`, the whole of block `k - 1` (a frame over the previous block,
  recomputed once per block).

Every frame used is incremental, so the cost per entity is linear in its rows
(min, max and sketches have no inverse, so cumulative differences would not do).
LAST needs no blocks: the latest event at or before `q` is in the window iff its
hour is at least `q - w + 1`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from features import Aggregation, FeatureView, Op
from pipelines.compute.tiles import HOUR_MICROS, INGESTED, POS, Kind, Measure, measures_of
from pipelines.feature_tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP, PARTITION_COLUMN


@dataclass(frozen=True)
class HourRange:
    """Hour indices of one computation: output rows `first_row..last_row`.

    The tiles read start at `first_row - max_window`: the earliest tile whose
    leaving the largest window still changes a row of the interval.
    """

    first_row: int
    last_row: int


def grid(view: FeatureView, tile_frames: list[DataFrame], hours: HourRange) -> DataFrame:
    """One row per (entity, index) that is a tile or an output row, partitioned by entity.

    Output rows are the hours where a value may change: the index of each tile
    (its events enter) and that index plus each window (they leave). Both come
    from one pass over the tiles, so the events are read and tiled once.
    """
    key = view.entity.join_key
    windows = [w.hours for w in view.windows]
    expanded = []
    for tiles in tile_frames:
        measures = [f for f in tiles.schema.fields if f.name not in (key, POS)]
        here = F.struct(F.col(POS).alias(POS), *[F.col(f.name) for f in measures])
        later = [
            F.struct(
                (F.col(POS) + w).alias(POS),
                *[F.lit(None).cast(f.dataType).alias(f.name) for f in measures],
            )
            for w in windows
        ]
        rows = tiles.select(key, F.explode(F.array(here, *later)).alias("row"))
        expanded.append(rows.select(key, "row.*").where(F.col(POS) <= hours.last_row))
    rows = expanded[0]
    for frame in expanded[1:]:
        rows = rows.unionByName(frame, allowMissingColumns=True)
    measure_columns = [c for c in rows.columns if c not in (key, POS)]
    # Repartitioning by entity alone lets the merge below and every window of
    # the view reuse one distribution: no further shuffles.
    return (
        rows.repartition(key)
        .groupBy(key, POS)
        .agg(
            *[
                (F.max(c) if c == INGESTED else F.first(c, ignorenulls=True)).alias(c)
                for c in measure_columns
            ]
        )
    )


def _block(w: int) -> Column:
    return F.expr(f"`{POS}` div {w}")


def windowed_measures(
    rows: DataFrame, key: str, needed: dict[int, list[Measure]], latest: list[Measure]
) -> tuple[DataFrame, dict[tuple[Measure, int], str]]:
    """For each window and measure, a column with the measure over the window.

    Returns the frame and the name of the column holding each (measure, window);
    for the LATEST measures, `<name>__upto` holds the latest value up to the row.
    """
    names: dict[tuple[Measure, int], str] = {}
    by_pos = Window.partitionBy(key).orderBy(POS)
    blocked = [w for w in sorted(needed) if w > 1]
    for w in blocked:
        # In this order, the previous-block frame reuses the prefix frame's sort.
        in_block = Window.partitionBy(key, _block(w)).orderBy(POS)
        prefix = in_block.rowsBetween(Window.unboundedPreceding, Window.currentRow)
        previous_block = Window.partitionBy(key).orderBy(_block(w)).rangeBetween(-1, -1)
        after = (
            Window.partitionBy(key, _block(w))
            .orderBy(F.col(POS).desc())
            .rowsBetween(Window.unboundedPreceding, -1)
        )
        for frame, suffix in ((prefix, "pre"), (previous_block, "prev"), (after, "suf")):
            rows = rows.select(
                "*",
                *[
                    m.over(F.col(m.name)).over(frame).alias(f"{m.name}__{suffix}{w}")
                    for m in needed[w]
                ],
            )

    stage2: list[Column] = []
    for w in blocked:
        # The reverse running aggregate at the last row at or before q - w.
        until = by_pos.rangeBetween(Window.unboundedPreceding, -w)
        parts = [_block(w).alias("block")] + [F.col(f"{m.name}__suf{w}") for m in needed[w]]
        stage2.append(F.last(F.struct(*parts)).over(until).alias(f"__before{w}"))
    rows = rows.select("*", *stage2)

    values: list[Column] = []
    for w in sorted(needed):
        for m in needed[w]:
            name = f"{m.name}__w{w}"
            names[(m, w)] = name
            if w == 1:
                values.append(F.col(m.name).alias(name))
                continue
            before = F.col(f"__before{w}")
            left = F.when(before["block"] == _block(w) - 1, before[f"{m.name}__suf{w}"]).otherwise(
                F.col(f"{m.name}__prev{w}")
            )
            prefix_value = F.col(f"{m.name}__pre{w}")
            aligned = (F.col(POS) % w) == w - 1
            values.append(
                F.when(aligned, prefix_value).otherwise(m.combine(left, prefix_value)).alias(name)
            )
    running = by_pos.rangeBetween(Window.unboundedPreceding, Window.currentRow)
    latest_upto = [F.max(m.name).over(running).alias(f"{m.name}__upto") for m in latest]
    return rows.select(key, POS, *values, *latest_upto), names


def _finish(aggregation: Aggregation, w: int, value: dict[tuple[Measure, int], Column]) -> Column:
    op = aggregation.op
    first = measures_of(aggregation)[0]
    if op is Op.COUNT:
        return F.coalesce(value[(first, w)], F.lit(0))
    if op is Op.SUM:
        return F.coalesce(value[(first, w)], F.lit(0.0))
    if op is Op.AVG:
        total, count = (value[(m, w)] for m in measures_of(aggregation))
        return F.when(count > 0, total / count)
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

    rows, names = windowed_measures(grid(view, tile_frames, hours), key, needed, latest)
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
