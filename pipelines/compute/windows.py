"""Bitemporal sliding windows over hourly tiles, in time linear in the number of tiles.

Hours are indexed from the epoch. A row is indexed by `q`, the last hour it
includes (its `event_timestamp` is `q + 1`), and window `w` of row `q` holds the
events of hours `[q - w + 1, q]`. A *version* of the row is indexed by `v`, the
last arrival hour it knows (its `created_timestamp` is `v + 1`): it aggregates the
events of the window that arrived in hours up to `v`. A tile is (entity, event
hour `a`, arrival hour `k`), known at `v` iff `k <= v`.

Which versions exist: a row exists once a tile that places it has arrived (a tile
at `a = q` enters the windows at `q`; one at `a = q - w` leaves window `w` there).
Its first version is `v0 = max(q, earliest arrival of those tiles)`: a row first
holds what was known at its own hour. Every later arrival hour of a tile of the
row's largest window adds a version, so late events add a version of every row
they change, and older versions stay.

How, without a range join, from one pass over the tiles:

1. *Settled values* `S(q)`: window `w` of row `q` as known at `q`, i.e. the tiles
   with `a >= q - w + 1` and `p <= q`, where `p = max(a, k)` is the hour from
   which a tile counts (most tiles arrive within their hour: `p = a`).
   * Counts and sums: `R(q) - RA(q - w) + X(q)`, where `R` is the running total
     of tiles by `p`, `RA` by `a`, and `X` adds back tiles that left the window
     before they arrived (`a + w <= q < p`). Sums are exact decimals, so the
     differences do not depend on where the running totals start.
   * Min, max and sketches have no inverse. Each window is cut into fixed blocks
     of `w` hours aligned to the epoch. The window of `q` (in block `j`) is a
     prefix of block `j` (tiles with `a` and `p` in block `j`, `p <= q`: a
     running aggregate ordered by `p`), a suffix of block `j - 1` (tiles with
     `a` and `p` in block `j - 1`, `a >= q - w + 1`: a running aggregate in
     reverse order of `a`, read at the last row at or before `q - w`), and the
     few *crossing* tiles whose `a` and `p` lie in different blocks (they arrived
     after their block ended): the prefix frame collects them, and each row
     merges those still in its window. Windows whose lengths divide one another
     (1d, 7d, 28d) nest their blocks, so one ascending sort serves all their
     prefixes and one descending sort all their suffixes.
   * LAST: the latest value among tiles with `p <= q`, kept if its hour is in the
     window.
2. *Pending tiles* of row `q`: tiles of its largest window that arrived after `q`
   (`k > q`). Each late tile is copied to the rows it is pending for (`q` in
   `[a, k - 1]`: as many as hours it was late), where the grid merge collects
   them into a short list. Version `v` of the row is `S(q)` merged with the
   pending tiles that arrived by `v` (and are in each window).

A view costs three sorts per entity, as the plain sliding windows do: ascending
blocks, descending blocks and the running order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features import FeatureView, Op
from pipelines.compute.tiles import (
    ARRIVAL_HOUR,
    EVENT_HOUR,
    HOUR_MICROS,
    SUM_TYPE,
    Kind,
    Measure,
    TileHours,
    hour_index,
    measures_of,
)
from pipelines.feature_tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP, PARTITION_COLUMN

# Grid columns. Features never start with "_", so these never clash.
POS = "__hour"  # the grid row's hour index
TRIGGER = "__trigger_arrival"  # earliest arrival of a tile that places an output row here
ANCHOR = "__anchor"  # an entry kept even before the range: it carries a tile or starts a block
VERSION = "__version"


@dataclass(frozen=True)
class HourRange:
    """What one computation outputs: the versions `first_version..last_version` (arrival
    hours) of rows `first_row..last_row` (row indices `q`).

    The tiles read start at `first_row - max_window`: the earliest tile whose
    leaving the largest window still places a row of the range.
    """

    first_row: int
    last_row: int
    first_version: int
    last_version: int


def merged_tile_hours(view: FeatureView, hours: HourRange) -> TileHours:
    """Tile hours under which tiles that every output row sees alike become one tile.

    A tile that happened and arrived before `first_row` counts for every row of the
    range, and it is in window `w` of all of them or of none, unless its event hour
    lies on `w`'s edge `[first_row - w, last_row - w + 1]`, where the range's rows
    enter or leave the window. Between edges such tiles are merged into one at the
    hour before the next edge: every output row sees the same tiles as before, and
    the grid before the range shrinks from every active hour of the largest window
    to a few rows per window. (An hourly run outputs about a dozen rows per entity
    and reads 28 days of tiles.) Returns the (event hour, arrival hour) to group
    events by, from their own.
    """
    edges = sorted({(hours.first_row - w, hours.last_row - w + 1) for w in plan_of(view).windows})

    def merged(event_hour: Column, arrival_hour: Column) -> tuple[Column, Column]:
        first = F.lit(hours.first_row)
        on_edge = reduce(
            Column.__or__, [event_hour.between(lo, hi) for lo, hi in edges], F.lit(False)
        )
        exact = on_edge | (event_hour >= first) | (arrival_hour >= first)
        # Not on an edge and before the range: the next edge starts after the event hour.
        segment_end = reduce(
            lambda later, lo: F.when(event_hour < lo, F.lit(lo - 1)).otherwise(later),
            sorted({lo for lo, _ in edges}, reverse=True),
            F.lit(hours.first_row - 1),
        )
        return (
            F.when(exact, event_hour).otherwise(segment_end),
            F.when(exact, arrival_hour).otherwise(F.greatest(arrival_hour, segment_end)),
        )

    return merged


@dataclass(frozen=True)
class _Plan:
    """What a view needs from the grid, derived from its declaration once."""

    key: str
    windows: tuple[int, ...]
    needed: dict[int, list[Measure]]  # per window, the measures aggregated over it
    latest: tuple[Measure, ...]  # LAST measures (no blocks)
    blocked: dict[int, list[Measure]]  # per window > 1h, its measures without an inverse
    chains: tuple[tuple[int, ...], ...]

    @property
    def max_window(self) -> int:
        return max(self.windows)

    @property
    def invertible(self) -> list[Measure]:
        """Counts and sums over a window longer than an hour: running totals."""
        found: list[Measure] = []
        for w, ms in self.needed.items():
            found += [m for m in ms if w > 1 and m.invertible and m not in found]
        return found

    @property
    def hourly(self) -> list[Measure]:
        return list(self.needed.get(1, []))

    @property
    def measures(self) -> list[Measure]:
        found: list[Measure] = []
        for m in [m for ms in self.needed.values() for m in ms] + list(self.latest):
            if m not in found:
                found.append(m)
        return found

    @property
    def sources(self) -> list[str]:
        return sorted({m.source for m in self.measures})

    def of_source(self, source: str) -> _Plan:
        """The part of the plan whose measures come from one source's tiles."""
        return replace(
            self,
            needed={w: [m for m in ms if m.source == source] for w, ms in self.needed.items()},
            latest=tuple(m for m in self.latest if m.source == source),
            blocked={w: [m for m in ms if m.source == source] for w, ms in self.blocked.items()},
        )


def plan_of(view: FeatureView) -> _Plan:
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
    blocked = {w: [m for m in ms if not m.invertible] for w, ms in needed.items() if w > 1}
    blocked = {w: ms for w, ms in blocked.items() if ms}
    return _Plan(
        key=view.entity.join_key,
        windows=tuple(w.hours for w in view.windows),
        needed=needed,
        latest=tuple(latest),
        blocked=blocked,
        chains=tuple(tuple(c) for c in nested_chains(list(blocked))),
    )


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


# Names of the grid's columns, per measure, window and source.
def _enter(m: Measure) -> str:
    return f"{m.name}~enter"


def _at_event(m: Measure) -> str:
    return f"{m.name}~at_event"


def _left_early(m: Measure, w: int) -> str:
    return f"{m.name}~left_early{w}"


def _hour_value(m: Measure) -> str:
    return f"{m.name}~w1"


def _prefix_in(m: Measure, w: int) -> str:
    return f"{m.name}~pre_in{w}"


def _suffix_in(m: Measure, w: int) -> str:
    return f"{m.name}~suf_in{w}"


def _crossing(w: int, source: str) -> str:
    return f"~crossing{w}~{source}"


def _pending(source: str) -> str:
    return f"~pending~{source}"


def _block_name(w: int) -> str:
    return f"__block{w}"


def _block_of(position: Column, w: int) -> Column:
    return F.floor(position / F.lit(w)).cast("long")


def _block(w: int) -> Column:
    return F.col(_block_name(w))


class _Entries:
    """Grid entries of one kind, built column by column; absent columns are null."""

    def __init__(self, types: dict[str, T.DataType]) -> None:
        self._types = types
        self._columns: dict[str, Column] = {}

    def set(self, name: str, value: Column) -> None:
        self._columns[name] = value

    def struct(self) -> Column:
        return F.struct(
            *[
                self._columns.get(name, F.lit(None).cast(data_type)).alias(name)
                for name, data_type in self._types.items()
            ]
        )


def _tile_entries(tiles: DataFrame, plan: _Plan, source: str, hours: HourRange) -> DataFrame:
    """Every grid entry of one source's tiles, from one pass over them: where a tile
    happened (placing the row where it enters), where it counts from (`p`), where it
    leaves each window, its blocks' starts, and its copies to the rows it is pending for."""
    key, a, k = plan.key, F.col(EVENT_HOUR), F.col(ARRIVAL_HOUR)
    p = F.greatest(a, k)
    held = {f.name: f.dataType for f in tiles.schema.fields}

    def value(m: Measure) -> Column:
        return F.col(m.name)

    late_tile = T.StructType(
        [T.StructField("k", T.LongType()), T.StructField("a", T.LongType())]
        + [T.StructField(m.name, held[m.name]) for m in plan.measures]
    )
    types: dict[str, T.DataType] = {
        POS: T.LongType(),
        TRIGGER: T.LongType(),
        ANCHOR: T.BooleanType(),
    }
    for m in plan.invertible:
        types[_enter(m)] = held[m.name]
        types[_at_event(m)] = held[m.name]
        for w, ms in plan.needed.items():
            if w > 1 and m in ms:
                types[_left_early(m, w)] = held[m.name]
    for m in plan.hourly:
        types[_hour_value(m)] = held[m.name]
    for w, ms in plan.blocked.items():
        for m in ms:
            types[_prefix_in(m, w)] = held[m.name]
            types[_suffix_in(m, w)] = held[m.name]
        if ms:
            types[_crossing(w, source)] = T.StructType(
                [T.StructField("a", T.LongType())]
                + [T.StructField(m.name, held[m.name]) for m in ms]
            )
    for m in plan.latest:
        types[_enter(m)] = held[m.name]
    types[_pending(source)] = late_tile

    counts_here = p == a  # arrived within its hour: counts from where it happened

    def counted(entries: _Entries, when: Column) -> None:
        """The values a tile adds from `p` on (set on the entry at `p`)."""
        for m in plan.invertible:
            entries.set(_enter(m), F.when(when, value(m)))
        for m in plan.hourly:
            # The hour's own window only holds tiles that arrived within it.
            entries.set(_hour_value(m), F.when(when & counts_here, value(m)))
        for w, ms in plan.blocked.items():
            same_block = _block_of(a, w) == _block_of(p, w)
            for m in ms:
                entries.set(_prefix_in(m, w), F.when(when & same_block, value(m)))
            if ms:
                crossing = F.struct(a.alias("a"), *[value(m) for m in ms])
                entries.set(_crossing(w, source), F.when(when & ~same_block, crossing))
        for m in plan.latest:
            entries.set(_enter(m), F.when(when, value(m)))

    kinds: list[Column] = []
    # The row where the tile happened: it places the row, is read by the suffixes and
    # `RA`, and counts from here too when it arrived within the hour.
    here = _Entries(types)
    here.set(POS, a)
    here.set(ANCHOR, F.lit(True))
    here.set(TRIGGER, k)
    for m in plan.invertible:
        here.set(_at_event(m), value(m))
    for w, ms in plan.blocked.items():
        same_block = _block_of(a, w) == _block_of(p, w)
        for m in ms:
            here.set(_suffix_in(m, w), F.when(same_block, value(m)))
    counted(here, counts_here)
    kinds.append(here.struct())

    later = _Entries(types)  # where a tile that arrived after its hour counts from
    later.set(POS, F.when(~counts_here, p))
    later.set(ANCHOR, F.lit(True))
    counted(later, F.lit(True))
    kinds.append(later.struct())

    for w in plan.windows:
        # Leaving window w places a row (values may change); a tile that left before it
        # arrived is added back between the two (`X`).
        leaving = _Entries(types)
        leaving.set(POS, a + w)
        leaving.set(TRIGGER, k)
        arrived_after = _Entries(types)
        arrived_after.set(POS, F.when(p > a + w, p))
        for m in plan.invertible:
            if m in plan.needed.get(w, []):
                leaving.set(_left_early(m, w), F.when(p > a + w, value(m)))
                arrived_after.set(_left_early(m, w), -value(m))
        kinds += [leaving.struct(), arrived_after.struct()]

    for w, ms in plan.blocked.items():
        if ms:  # every block holding a tile has a row at its start
            start = _Entries(types)
            start.set(POS, a - F.pmod(a, F.lit(w)))
            start.set(ANCHOR, F.lit(True))
            kinds.append(start.struct())

    # A late tile is pending for rows [a, k - 1] of its largest window (within the range).
    first = F.greatest(a, F.lit(hours.first_row))
    last = F.least(k - 1, a + plan.max_window - 1, F.lit(hours.last_row))

    def pending_at(q: Column) -> Column:
        entry = _Entries(types)
        entry.set(POS, q)
        entry.set(
            _pending(source),
            F.struct(k.alias("k"), a.alias("a"), *[value(m) for m in plan.measures]),
        )
        return entry.struct()

    no_rows = F.array().cast(T.ArrayType(T.LongType()))
    pending_rows = F.coalesce(F.when(first <= last, F.sequence(first, last)), no_rows)
    entries = F.concat(F.array(*kinds), F.transform(pending_rows, pending_at))
    rows = tiles.select(key, F.explode(entries).alias("entry")).select(key, "entry.*")
    # Before the range, only anchors matter, and tiles that left a window before arriving.
    carries = [
        F.col(_left_early(m, w)).isNotNull()
        for m in plan.invertible
        for w in plan.needed
        if w > 1 and m in plan.needed[w]
    ]
    keep = F.col(POS).isNotNull() & (F.col(POS) <= hours.last_row)
    keep &= (
        (F.col(POS) >= hours.first_row)
        | F.col(ANCHOR).isNotNull()
        | reduce(Column.__or__, carries, F.lit(False))
    )
    return rows.where(keep).drop(ANCHOR)


def grid(view: FeatureView, tiles_by_source: dict[str, DataFrame], hours: HourRange) -> DataFrame:
    """One row per (entity, hour) where something happens, every entry merged there,
    partitioned by entity. Crossing and pending tiles are collected into short lists."""
    plan = plan_of(view)
    key = plan.key
    parts = [
        _tile_entries(tiles, plan.of_source(source), source, hours)
        for source, tiles in tiles_by_source.items()
    ]
    rows = reduce(lambda x, y: x.unionByName(y, allowMissingColumns=True), parts)

    merges: list[Column] = [F.min(TRIGGER).alias(TRIGGER)]
    for column in rows.columns:
        if column in (key, POS, TRIGGER):
            continue
        if column.startswith("~"):  # crossing and pending tiles: kept one by one
            merges.append(F.collect_list(column).alias(column))
        else:
            merges.append(_measure_of(plan, column).over(F.col(column)).alias(column))
    first_chain = plan.chains[0] if plan.chains else ()
    others = [w for chain in plan.chains[1:] for w in chain]
    # Grouping by the first chain's blocks too (they depend on the hour only) sorts
    # the rows once for the merge and that chain's ascending frames.
    blocks = [_block_of(F.col(POS), w).alias(_block_name(w)) for w in first_chain]
    grouped = _by_entity(rows, key).groupBy(key, *blocks, POS).agg(*merges)
    return grouped.select("*", *[_block_of(F.col(POS), w).alias(_block_name(w)) for w in others])


def _measure_of(plan: _Plan, column: str) -> Measure:
    name = column.split("~", 1)[0]
    for m in plan.measures:
        if m.name == name:
            return m
    raise KeyError(column)


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


def _block_frames(rows: DataFrame, chain: Sequence[int], plan: _Plan) -> DataFrame:
    """Add `<measure>~pre<w>` and `<measure>~suf<w>` for every window of one chain, and
    the crossing tiles counted in each block up to each row."""
    ascending = [_block(w) for w in chain] + [F.col(POS)]
    descending = [-c for c in ascending]
    for order, frame_end, inputs, suffix in (
        (ascending, Window.currentRow, _prefix_in, "pre"),
        (descending, -1, _suffix_in, "suf"),
    ):
        columns = []
        for depth, w in enumerate(chain, start=1):
            # Partitioned by this block and the outer ones, ordered by the inner
            # ones and the hour: every window of the chain asks for the same order.
            window = (
                Window.partitionBy(F.col(plan.key), *order[:depth])
                .orderBy(*order[depth:])
                .rowsBetween(Window.unboundedPreceding, frame_end)
            )
            columns += [
                m.over(F.col(inputs(m, w))).over(window).alias(f"{m.name}~{suffix}{w}")
                for m in plan.blocked[w]
            ]
            if suffix == "pre":
                for source in sorted({m.source for m in plan.blocked[w]}):
                    crossing = _crossing(w, source)
                    collected = F.flatten(F.collect_list(crossing).over(window))
                    columns.append(collected.alias(f"{crossing}~upto"))
        rows = rows.select("*", *columns)
    return rows


def _fold(m: Measure, items: Column, value: Callable[[Column], Column]) -> Column:
    """The measure merged over the values of an array's items (a few late or crossing
    tiles): 0 for counts and sums of none, null for the others."""
    values = F.transform(items, value)
    if m.invertible:
        kind = SUM_TYPE if m.kind is Kind.SUM else "bigint"
        zero = F.lit(0).cast(kind)
        # 37 digits each, so that the exact sum of two fits in 38.
        return F.aggregate(
            values, zero, lambda acc, x: (acc + F.coalesce(x.cast(kind), zero)).cast(kind)
        )
    if m.kind is Kind.MIN:
        return F.array_min(values)
    if m.kind is Kind.HLL:
        return F.aggregate(values, F.lit(None).cast("binary"), lambda acc, x: m.combine(acc, x))
    return F.array_max(values)  # MAX, LATEST


def settled_values(
    rows: DataFrame, plan: _Plan
) -> tuple[DataFrame, dict[tuple[Measure, int], str]]:
    """Per output row: each measure over each window as known at the row's own hour
    (`S(q)`), each LAST measure's latest value counted by then (`<name>~upto`), the
    row's first version, and its pending tiles. Returns the rows and the column of
    each (measure, window)."""
    key = plan.key
    for chain in plan.chains:
        rows = _block_frames(rows, chain, plan)

    by_pos = Window.partitionBy(key).orderBy(POS)
    running = by_pos.rangeBetween(Window.unboundedPreceding, Window.currentRow)
    # Rows up to q - w: the rows before window w starts.
    until = {w: by_pos.rangeBetween(Window.unboundedPreceding, -w) for w in plan.needed if w > 1}
    lookups: list[Column] = []
    for w, ms in plan.blocked.items():
        # The reverse running aggregate at the last row at or before q - w.
        parts = [_block(w).alias("block")] + [F.col(f"{m.name}~suf{w}") for m in ms]
        lookups.append(F.last(F.struct(*parts)).over(until[w]).alias(f"~before{w}"))
    for m in plan.invertible:
        lookups.append(F.sum(_enter(m)).over(running).alias(f"{m.name}~counted"))
        for w, ms in plan.needed.items():
            if w > 1 and m in ms:
                lookups.append(F.sum(_at_event(m)).over(until[w]).alias(f"{m.name}~gone{w}"))
                lookups.append(F.sum(_left_early(m, w)).over(running).alias(f"{m.name}~back{w}"))
    lookups += [F.max(_enter(m)).over(running).alias(f"{m.name}~upto") for m in plan.latest]
    rows = rows.select("*", *lookups).where(F.col(TRIGGER).isNotNull())

    names: dict[tuple[Measure, int], str] = {}
    values: list[Column] = []
    for w in sorted(plan.needed):
        for m in plan.needed[w]:
            name = f"{m.name}~settled{w}"
            names[(m, w)] = name
            if w == 1:
                value = F.col(_hour_value(m))
            elif m.invertible:
                counted, gone, back = (
                    _total(F.col(c), m)
                    for c in (f"{m.name}~counted", f"{m.name}~gone{w}", f"{m.name}~back{w}")
                )
                # Counted and gone before q - w: subtracting it in one term keeps sums exact.
                value = counted - _total(gone - back, m)
            else:
                value = _blocked_value(m, w)
            values.append(value.alias(name))
    upto = [F.col(f"{m.name}~upto") for m in plan.latest]
    first_version = F.greatest(F.col(POS), F.col(TRIGGER)).alias(VERSION)
    pending = [F.col(_pending(source)) for source in plan.sources]
    return rows.select(key, POS, first_version, *values, *upto, *pending), names


def _total(column: Column, m: Measure) -> Column:
    """A running total, 0 where nothing was summed; sums keep 37 digits, so that a
    difference of two still fits in 38."""
    if m.kind is Kind.SUM:
        return F.coalesce(column.cast(SUM_TYPE), F.lit(0).cast(SUM_TYPE))
    return F.coalesce(column, F.lit(0).cast("long"))


def _blocked_value(m: Measure, w: int) -> Column:
    before = F.col(f"~before{w}")
    # Block j - 1 has tiles iff its block start is at or before q - w.
    left = F.when(before["block"] == _block(w) - 1, before[f"{m.name}~suf{w}"])
    prefix_value = F.col(f"{m.name}~pre{w}")
    crossed = F.col(f"{_crossing(w, m.source)}~upto")
    still_in = F.filter(crossed, lambda t: t["a"] >= F.col(POS) - w + 1)
    crossing = _fold(m, still_in, lambda t: t[m.name])
    aligned = (F.col(POS) % w) == w - 1
    # An aligned row's window is exactly its block: no suffix, no tile crossing into it.
    return F.when(aligned, prefix_value).otherwise(
        m.combine(m.combine(left, prefix_value), crossing)
    )


def _versions(
    rows: DataFrame, plan: _Plan, names: dict[tuple[Measure, int], str]
) -> tuple[DataFrame, dict[tuple[Measure, int], Column], dict[Measure, Column]]:
    """One row per version: the first at `VERSION`, one more per later arrival hour of a
    pending tile; each (measure, window) and LAST measure merged with the pending tiles
    that arrived by then."""
    first = F.col(VERSION)
    arrivals = [F.transform(F.col(_pending(s)), lambda t: t["k"]) for s in plan.sources]
    later = F.filter(F.concat(*arrivals), lambda v: v > first)
    versions = F.array_sort(F.array_distinct(F.concat(F.array(first), later)))
    rows = rows.select(
        *[c for c in rows.columns if c != VERSION], F.explode(versions).alias(VERSION)
    )

    def arrived(source: str, w: int | None) -> Column:
        def keep(t: Column) -> Column:
            known = t["k"] <= F.col(VERSION)
            return known if w is None else known & (t["a"] >= F.col(POS) - w + 1)

        return F.filter(F.col(_pending(source)), keep)

    value: dict[tuple[Measure, int], Column] = {}
    for (m, w), name in names.items():
        late = _fold(m, arrived(m.source, w), _field(m))
        if m.invertible:
            value[(m, w)] = _total(F.col(name), m) + late
        else:
            value[(m, w)] = m.combine(F.col(name), late)
    latest = {
        m: F.greatest(F.col(f"{m.name}~upto"), _fold(m, arrived(m.source, None), _field(m)))
        for m in plan.latest
    }
    return rows, value, latest


def _field(m: Measure) -> Callable[[Column], Column]:
    return lambda tile: tile[m.name]


StateEntry = tuple[Measure, int | None]


def state_entries(view: FeatureView) -> list[StateEntry]:
    """What a row's window state holds: each measure over each window it is needed for,
    and each LAST measure's latest value (window None: windows only filter it)."""
    plan = plan_of(view)
    entries: list[StateEntry] = [(m, w) for w in sorted(plan.needed) for m in plan.needed[w]]
    return entries + [(m, None) for m in plan.latest]


def state_column(entry: StateEntry) -> str:
    """The column of a state entry, e.g. `__ad_clicks__rows____24h`."""
    measure, window = entry
    return f"{measure.name}__{'latest' if window is None else f'{window}h'}"


def state_rows(
    view: FeatureView, tiles_by_source: dict[str, DataFrame], hours: HourRange
) -> DataFrame:
    """The versions `hours.first_version..last_version` of the view's rows
    `hours.first_row..last_row` before their values are finished: the key, the two
    timestamps, one column per `state_entries` (`state_column`) and the partition column.
    Merging two disjoint sets of events is merging these, measure by measure."""
    plan = plan_of(view)
    rows, names = settled_values(grid(view, tiles_by_source, hours), plan)
    rows = rows.where(F.col(POS) >= hours.first_row)
    rows, value, latest = _versions(rows, plan, names)
    rows = rows.where(
        (F.col(VERSION) >= hours.first_version) & (F.col(VERSION) <= hours.last_version)
    )
    state = [
        (value[(m, w)] if w is not None else latest[m]).alias(state_column((m, w)))
        for m, w in state_entries(view)
    ]
    event_time = F.timestamp_seconds((F.col(POS) + 1) * 3600)
    created = F.timestamp_seconds((F.col(VERSION) + 1) * 3600)
    return rows.select(
        F.col(plan.key),
        event_time.alias(EVENT_TIMESTAMP),
        created.alias(CREATED_TIMESTAMP),
        *state,
        F.to_date(event_time).alias(PARTITION_COLUMN),
    )


def finished_features(
    view: FeatureView, state: Callable[[StateEntry], Column], window_end_hour: Column
) -> dict[str, Column]:
    """Each feature of the view from the state of windows that end at `window_end_hour`
    (an hour index; `state` gives each entry's column)."""
    features: dict[str, Column] = {}
    for aggregation in view.aggregations:
        measures = measures_of(aggregation)
        for window in aggregation.windows:
            w = window.hours
            name = aggregation.feature_name(window)
            op = aggregation.op
            if op is Op.COUNT:
                features[name] = F.coalesce(state((measures[0], w)), F.lit(0))
            elif op is Op.SUM:
                features[name] = F.coalesce(state((measures[0], w)).cast("double"), F.lit(0.0))
            elif op is Op.AVG:
                total, count = (state((m, w)) for m in measures)
                features[name] = F.when(count > 0, total.cast("double") / count)
            elif op is Op.APPROX_DISTINCT:
                features[name] = F.coalesce(
                    F.hll_sketch_estimate(state((measures[0], w))), F.lit(0)
                )
            elif op is Op.LAST:
                found = state((measures[0], None))
                # Exact in a double: hour boundaries in microseconds are far below 2^53.
                hour = F.floor(F.unix_micros(found["ts"]) / F.lit(HOUR_MICROS))
                features[name] = F.when(hour >= window_end_hour - w, found["value"])
            else:  # MIN, MAX: null when the window is empty
                features[name] = state((measures[0], w))
    # Ratios refer to count features: evaluate them from the same expressions.
    for ratio in view.ratios:
        numerator, denominator = features[ratio.numerator], features[ratio.denominator]
        features[ratio.name] = F.least(
            F.lit(1.0),
            (numerator + F.lit(ratio.prior * ratio.weight)) / (denominator + F.lit(ratio.weight)),
        )
    return features


def finish_state(view: FeatureView, state: DataFrame) -> DataFrame:
    """Feature rows, in table order (no types), from `state_rows` or a state table."""
    window_end_hour = hour_index(EVENT_TIMESTAMP)
    features = finished_features(view, lambda entry: F.col(state_column(entry)), window_end_hour)
    return state.select(
        F.col(view.entity.join_key),
        F.col(EVENT_TIMESTAMP),
        F.col(CREATED_TIMESTAMP),
        *[column.alias(name) for name, column in features.items()],
        F.col(PARTITION_COLUMN),
    )


def feature_rows(
    view: FeatureView, tiles_by_source: dict[str, DataFrame], hours: HourRange
) -> DataFrame:
    """The versions `hours.first_version..last_version` of the view's rows
    `hours.first_row..last_row`, in table order (no types)."""
    return finish_state(view, state_rows(view, tiles_by_source, hours))
