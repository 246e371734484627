"""The `ingest` job: raw rows that arrived in `[start, end)` -> clean tables + quarantine.

Every raw row lands in exactly one place: its clean table, or `clean.quarantine` with
one reason that names the column at fault (`pipelines.validity`). Over all time, raw =
clean + quarantined, for every source:
- the rows of the interval (by ingestion time) are checked against the source's
  declared validity, then for orphans and duplicates;
- rows that no interval can select, because their ingestion time is null or before
  the source's `earliest`, are quarantined by every run (the same rows each time).
Each output table has exactly its share replaced, so a rerun gives the same tables, and
the tables change together or not at all (`delta_io.all_or_nothing`).

Earlier runs matter in two ways, both looking only at rows ingested before `start`
(so rerunning an old interval is unaffected by later ones): an id that was already
accepted makes every new copy a duplicate, whatever its other fields say, and a click
is matched against the impressions accepted so far (plus this run's). Accepted ids are
kept in `clean.accepted_ids` (source, id, ingestion time), filed under the day each id
names (`features.IdDay`): a run reads the days its batch's ids name, not every clean
table's history, and finds a redelivery however far its times moved.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from features import EventSource
from features.sources import DIMENSION_SOURCES, EVENT_SOURCES
from pipelines.delta_io import (
    all_or_nothing,
    replace_where,
    require_table,
    rows_in,
    table_exists,
)
from pipelines.errors import IntervalError
from pipelines.ingest.rules import (
    REASON,
    RECORD,
    classify,
    flag_row_problems,
    utc_date,
    with_record,
)
from pipelines.interval import Interval, sql_timestamp, utc_literal
from pipelines.tables import (
    ACCEPTED_IDS,
    CLEAN_EVENTS,
    DIMENSIONS,
    QUARANTINE,
    accepted_ids_table,
    quarantine_table,
    raw_table,
)
from pipelines.validity import AnySource, reason_order

# How long before a row its parent (a click's impression) may have happened and still match.
PARENT_LOOKBACK = timedelta(days=2)
# Up to this many arrived ids are broadcast to the scan of the accepted ids (an hourly
# run: the narrow index is read once, nothing shuffled); larger batches are joined.
BROADCAST_IDS = 500_000
# Compacts the small files that hourly appends leave in the accepted-id index.
ACCEPTED_IDS_PROPERTIES = {"delta.autoOptimize.autoCompact": "true"}
# A batch reads the days its ids are filed under (features.IdDay), not the whole index.
INDEX_PARTITIONS = ("source_table", "id_day")
INDEX_FILING = "platform.idFiling"

SOURCES: dict[str, AnySource] = {s.name: s for s in (*DIMENSION_SOURCES, *EVENT_SOURCES)}


@dataclass(frozen=True)
class TableCounts:
    raw: int
    clean: int
    quarantined: dict[str, int] = field(default_factory=dict)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


@dataclass(frozen=True)
class IngestReport:
    interval: Interval
    tables: dict[str, TableCounts]
    # Raw rows no interval selects (null or impossible ingestion time), all quarantined.
    unplaced: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            f"ingested {self.interval}",
            f"  {'table':<16} {'raw':>10} {'clean':>10} {'quarantined':>12}  by reason",
        ]
        for name, counts in self.tables.items():
            reasons = ", ".join(f"{r} {n}" for r, n in counts.quarantined.items()) or "-"
            out.append(
                f"  {name:<16} {counts.raw:>10,} {counts.clean:>10,} "
                f"{counts.quarantined_total:>12,}  {reasons}"
            )
        unplaced = {name: n for name, n in self.unplaced.items() if n}
        if unplaced:
            listed = ", ".join(f"{name} {n:,}" for name, n in unplaced.items())
            out.append(f"  without a usable ingestion time (quarantined, all runs): {listed}")
        return out


def _unplaced_predicate(source: AnySource) -> str:
    """SQL: the rows of `source` whose ingestion time no interval selects."""
    column = source.ingestion_column
    return f"({column} IS NULL OR {column} < {sql_timestamp(source.validity.earliest)})"


def _arrived(spark: SparkSession, source: AnySource, interval: Interval) -> DataFrame:
    return rows_in(spark.table(raw_table(source)), source.ingestion_column, interval)


def _accepted_before(
    spark: SparkSession,
    source: EventSource,
    interval: Interval,
    event_days: Interval,
) -> DataFrame | None:
    """Clean rows of runs before `interval` with event times in `event_days`, if any."""
    if not table_exists(spark, source.table):
        return None
    on_days = rows_in(
        spark.table(source.table),
        source.timestamp_column,
        event_days,
        partition_column=source.partition_column,
    )
    return on_days.where(F.col(source.ingestion_column) < utc_literal(interval.start))


@dataclass(frozen=True)
class BatchFacts:
    """What ingest learns of one source's raw batch before classifying it."""

    rows: int
    days: tuple[date, date] | None  # first and last event day of rows with a usable time
    # The days the batch's ids are filed under (features.IdDay; None: ids without one).
    id_days: frozenset[date | None] = frozenset()


def batch_facts(raw: dict[str, DataFrame]) -> dict[str, BatchFacts]:
    """Size, event days and the days its ids name, of each raw event batch, in one Spark job."""
    per_table = []
    for name, df in raw.items():
        source = SOURCES[name]
        assert isinstance(source, EventSource)
        ts = F.col(source.timestamp_column)
        usable = ts >= utc_literal(source.validity.earliest)
        day = F.when(usable, utc_date(source.timestamp_column))
        # Wrapped, so that "filed under no day" survives collect_set, which drops nulls.
        filed = F.lit(None).cast("struct<day:date>")
        if source.id_column is not None:
            id_column = F.col(source.id_column)
            filed = F.when(
                id_column.isNotNull(), F.struct(filed_day(source, id_column).alias("day"))
            )
        per_table.append(
            df.agg(
                F.count(F.lit(1)).alias("rows"),
                F.min(day).alias("first"),
                F.max(day).alias("last"),
                F.collect_set(filed).alias("id_days"),
            ).withColumn("source", F.lit(name))
        )
    found = {}
    for row in _union(per_table).collect():
        days = None if row["first"] is None else (row["first"], row["last"])
        id_days = frozenset(filed["day"] for filed in row["id_days"])
        found[row["source"]] = BatchFacts(int(row["rows"]), days, id_days)
    return found


def _to_quarantine(classified: DataFrame, source: AnySource) -> DataFrame:
    if isinstance(source, EventSource):
        event_time = F.col(source.timestamp_column)
    else:
        event_time = F.lit(None).cast("timestamp")
    return classified.where(F.col(REASON).isNotNull()).select(
        F.lit(source.name).alias("source_table"),
        F.col(REASON).alias("reason"),
        F.col(RECORD).alias("record"),
        event_time.alias("event_timestamp"),
        F.col(source.ingestion_column).alias("ingestion_timestamp"),
        F.to_date(source.ingestion_column).alias("ingestion_date"),
    )


def _clean_rows(classified: DataFrame, columns: list[str]) -> DataFrame:
    return classified.where(F.col(REASON).isNull()).select(*columns)


def _counts(classified: dict[str, DataFrame]) -> dict[str, TableCounts]:
    """Rows per reason of every table, in one Spark job."""
    per_table = [
        df.groupBy(REASON).count().withColumn("source", F.lit(name))
        for name, df in classified.items()
    ]
    found: dict[str, dict[str | None, int]] = {name: {} for name in classified}
    for row in _union(per_table).collect():
        found[row["source"]][row[REASON]] = row["count"]
    report = {}
    for name, by_reason in found.items():
        clean = by_reason.pop(None, 0)
        quarantined = {r: by_reason[r] for r in reason_order(str(r) for r in by_reason)}
        report[name] = TableCounts(clean + sum(quarantined.values()), clean, quarantined)
    return report


def _index_properties() -> dict[str, str]:
    """The index's table properties, with a fingerprint of how its ids are filed."""
    filing = [
        (s.name, s.id_day and (s.id_day.pattern, s.id_day.date_format)) for s in EVENT_SOURCES
    ]
    fingerprint = hashlib.sha256(repr(filing).encode()).hexdigest()[:16]
    return {**ACCEPTED_IDS_PROPERTIES, INDEX_FILING: fingerprint}


def ensure_accepted_ids(spark: SparkSession) -> str:
    """The accepted-id index, built from the clean event tables the first time, and
    again whenever the declared id days (`features.IdDay`) changed since it was built:
    an id filed under another day than it is looked for would not be found."""
    table = accepted_ids_table()
    properties = _index_properties()
    if table_exists(spark, table):
        found = {
            row["key"]: row["value"] for row in spark.sql(f"SHOW TBLPROPERTIES {table}").collect()
        }
        if found.get(INDEX_FILING) == properties[INDEX_FILING]:
            return table
        spark.sql(f"DROP TABLE {table}")
    parts = [
        _ids_of(spark.table(source.table), source)
        for source in EVENT_SOURCES
        if table_exists(spark, source.table)
    ]
    if parts:
        replace_where(
            _union(parts),
            table,
            predicate="true",
            partition_by=INDEX_PARTITIONS,
            properties=properties,
        )
    return table


def filed_day(source: EventSource, id_column: Column) -> Column:
    """The day the accepted-id index files an id under (`features.IdDay`), else null."""
    if source.id_day is None:
        return F.lit(None).cast("date")
    text = F.regexp_extract(id_column, source.id_day.pattern, 1)
    day = F.try_to_date(text, source.id_day.date_format)
    first = source.validity.earliest.date()
    plausible = day.between(F.lit(first), F.lit(date(first.year + 100, 1, 1)))
    return F.when(plausible, day)


def _ids_of(clean: DataFrame, source: EventSource) -> DataFrame:
    id_column = F.col(str(source.id_column))
    return clean.select(
        F.lit(source.name).alias("source_table"),
        id_column.alias("id"),
        F.col(source.ingestion_column).alias("ingestion_timestamp"),
        filed_day(source, id_column).alias("id_day"),
    ).select(*ACCEPTED_IDS.fieldNames())


def already_accepted(
    spark: SparkSession,
    index: str,
    source: EventSource,
    batch: DataFrame,
    batch_rows: int,
    interval: Interval,
    id_days: frozenset[date | None] | None = None,
) -> DataFrame | None:
    """The ids of `batch` that runs before `start` accepted (one `id` column).

    With `id_days` (the days the batch's ids are filed under), only those days of the
    index are read: an id is filed under the same day whenever it arrives.
    """
    if not table_exists(spark, index):
        return None
    accepted = spark.table(index).where(
        f"source_table = '{source.name}' AND ingestion_timestamp < {sql_timestamp(interval.start)}"
    )
    if id_days is not None:
        accepted = accepted.where(_on_days(id_days))
    arrived = batch.select(F.col(str(source.id_column)).alias("id")).where("id IS NOT NULL")
    if batch_rows <= BROADCAST_IDS:
        arrived = F.broadcast(arrived.distinct())
    return accepted.join(arrived, on="id", how="left_semi").select("id")


def _on_days(id_days: frozenset[date | None]) -> Column:
    """The index partitions of `id_days`: a literal filter, so Delta prunes by it."""
    days = sorted(d for d in id_days if d is not None)
    on_days = F.col("id_day").isin([F.lit(d) for d in days]) if days else F.lit(False)
    return on_days | F.col("id_day").isNull() if None in id_days else on_days


def _unplaced(spark: SparkSession, source: AnySource) -> DataFrame:
    """Raw rows no interval selects, with their reason (every one of them has one)."""
    raw = spark.table(raw_table(source)).where(_unplaced_predicate(source))
    return flag_row_problems(with_record(raw), source)


def ingest(
    spark: SparkSession,
    *,
    start: str | datetime | date,
    end: str | datetime | date,
    events_only: bool = False,
) -> IngestReport:
    """Check the raw rows that arrived in `[start, end)` and write them clean or quarantined.

    With `events_only` (a stream's micro-batch: `pipelines.streaming.land`), the dimension
    sources are left to the hourly run: none of their rows, clean or quarantined, is read
    or written, which saves a micro-batch a write per dimension. No event rule reads a
    dimension, so the event sources' share is the same either way."""
    interval = Interval.parse(start, end)
    sources = {
        name: source
        for name, source in SOURCES.items()
        if not events_only or isinstance(source, EventSource)
    }
    dimensions = [s for s in DIMENSION_SOURCES if s.name in sources]
    earliest = max(source.validity.earliest for source in sources.values())
    if interval.start < earliest:
        raise IntervalError(
            f"interval {interval} starts before {earliest.isoformat()}: "
            "no row arrived that early (see Validity.earliest in features/)"
        )
    for source in sources.values():
        require_table(spark, raw_table(source), hint="run `feature-platform generate` first")
    raw = {name: _arrived(spark, source, interval) for name, source in sources.items()}
    batches = batch_facts({source.name: raw[source.name] for source in EVENT_SOURCES})
    index = ensure_accepted_ids(spark)

    classified: dict[str, DataFrame] = {}
    unplaced: dict[str, DataFrame] = {}
    try:
        for source in sources.values():
            unplaced[source.name] = _kept(_unplaced(spark, source))
        for dimension in dimensions:
            classified[dimension.name] = _kept(classify(raw[dimension.name], dimension))
        for source in EVENT_SOURCES:
            batch = batches[source.name]
            seen = already_accepted(
                spark, index, source, raw[source.name], batch.rows, interval, batch.id_days
            )
            parents = None
            if source.carried is not None:
                parents = _parents(spark, interval, source, batch, classified)
            classified[source.name] = _kept(
                classify(raw[source.name], source, accepted_ids=seen, parents=parents)
            )
        without_time = {name: c.quarantined_total for name, c in _counts(unplaced).items()}
        report = IngestReport(interval, _counts(classified), without_time)
        written = [s.table for s in sources.values()] + [index, quarantine_table()]
        with all_or_nothing(spark, written) as run:
            _write(classified, unplaced, interval, index, run)
    finally:
        for df in [*classified.values(), *unplaced.values()]:
            df.unpersist()
    return report


def _parents(
    spark: SparkSession,
    interval: Interval,
    source: EventSource,
    batch: BatchFacts,
    classified: dict[str, DataFrame],
) -> DataFrame:
    """The rows the batch's carried columns may come from: the parent source's rows
    accepted by this run (classified before it), and by earlier runs on its days."""
    carried = source.carried
    assert carried is not None  # and its parent comes first in EVENT_SOURCES
    parent = SOURCES[carried.source]
    assert isinstance(parent, EventSource)
    columns = [carried.on, *carried.columns]
    parents = classified[carried.source].where(F.col(REASON).isNull()).select(*columns)
    if batch.days is not None:
        first_day, last_day = batch.days
        event_days = Interval.parse(first_day - PARENT_LOOKBACK, last_day + timedelta(days=1))
        earlier = _accepted_before(spark, parent, interval, event_days)
        if earlier is not None:
            parents = earlier.select(*columns).unionByName(parents)
    return parents.dropDuplicates([carried.on])


def _kept(df: DataFrame) -> DataFrame:
    # Counted, written clean and written to quarantine: classify once.
    return df.persist(StorageLevel.MEMORY_AND_DISK)


def _union(parts: list[DataFrame]) -> DataFrame:
    combined = parts[0]
    for part in parts[1:]:
        combined = combined.unionByName(part)
    return combined


def _write(
    classified: dict[str, DataFrame],
    unplaced: dict[str, DataFrame],
    interval: Interval,
    index: str,
    run: str,
) -> None:
    """Each table's share of the interval: the sources in `classified`, the accepted ids
    of the event sources, and the quarantine rows of the sources in `classified` (those
    of the interval, and those of every time that no interval selects)."""
    arrived = interval.sql("ingestion_timestamp")
    dimensions = [s for s in DIMENSION_SOURCES if s.name in classified]
    for dimension in dimensions:
        clean = _clean_rows(classified[dimension.name], DIMENSIONS[dimension.name].fieldNames())
        replace_where(clean, dimension.table, predicate=arrived, run=run)
    for source in EVENT_SOURCES:
        clean = _clean_rows(classified[source.name], CLEAN_EVENTS[source.name].fieldNames())
        replace_where(
            clean,
            source.table,
            predicate=arrived,
            partition_by=(source.partition_column,),
            run=run,
        )
    event_names = ", ".join(f"'{source.name}'" for source in EVENT_SOURCES)
    accepted = _union(
        [
            _ids_of(classified[source.name].where(F.col(REASON).isNull()), source)
            for source in EVENT_SOURCES
        ]
    )
    replace_where(
        accepted,
        index,
        predicate=f"source_table IN ({event_names}) AND {arrived}",
        partition_by=INDEX_PARTITIONS,
        properties=_index_properties(),
        run=run,
    )
    quarantined = [_to_quarantine(df, SOURCES[name]) for name, df in classified.items()]
    quarantined += [_to_quarantine(df, SOURCES[name]) for name, df in unplaced.items()]
    sources = ", ".join(f"'{name}'" for name in classified)
    never_arrived = " OR ".join(
        f"(source_table = '{name}' AND {_unplaced_predicate(SOURCES[name])})" for name in classified
    )
    replace_where(
        _union(quarantined).select(*QUARANTINE.fieldNames()),
        quarantine_table(),
        predicate=f"source_table IN ({sources}) AND ({arrived} OR {never_arrived})",
        partition_by=("ingestion_date",),
        run=run,
    )
