"""The `ingest` job: raw rows that arrived in `[start, end)` -> clean tables + quarantine.

Every raw row of the interval lands in exactly one place: its clean table, or
`clean.quarantine` with one reason. Each output table has exactly the interval
replaced (by ingestion time), so a rerun gives the same tables.

Earlier runs matter in two ways, both looking only at rows ingested before
`start` (so rerunning an old interval is unaffected by later ones): an id that
was already accepted makes a new copy a duplicate, and a click is matched
against the impressions accepted so far (plus this run's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.config import CLEAN_DB, RAW_DB
from pipelines.delta_io import interval_predicate, replace_where, require_table
from pipelines.ingest.reasons import PRECEDENCE
from pipelines.ingest.rules import REASON, RECORD, SourceRules, classify
from pipelines.interval import Interval
from pipelines.tables import CLEAN_EVENTS, DIMENSIONS, QUARANTINE

PARTITION_COLUMN = "event_date"
QUARANTINE_NAME = "quarantine"
# How long before a click its impression may have happened and still be matched.
IMPRESSION_LOOKBACK = timedelta(days=2)

SOURCES: dict[str, SourceRules] = {
    "members": SourceRules("members", "member_id", ("member_id",), is_event=False),
    "titles": SourceRules("titles", "title_id", ("title_id",), is_event=False),
    "ads": SourceRules("ads", "ad_id", ("ad_id",), is_event=False),
    "playback_events": SourceRules(
        "playback_events",
        "event_id",
        ("event_id", "member_id", "title_id", "event_timestamp", "watch_seconds"),
        non_negative=("watch_seconds",),
    ),
    "ad_impressions": SourceRules(
        "ad_impressions",
        "impression_id",
        ("impression_id", "member_id", "ad_id", "event_timestamp"),
    ),
    "ad_clicks": SourceRules("ad_clicks", "impression_id", ("impression_id", "event_timestamp")),
}


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
        return out


def _bounds(interval: Interval) -> tuple[str, str]:
    # SQL literals are read in the session time zone (UTC), unlike Python datetimes.
    lower, upper = interval.spark_bounds()
    return lower.isoformat(sep=" "), upper.isoformat(sep=" ")


def _arrived(spark: SparkSession, table: str, interval: Interval) -> DataFrame:
    return spark.table(table).where(interval_predicate("ingestion_timestamp", *_bounds(interval)))


def _accepted_before(
    spark: SparkSession, table: str, interval: Interval, first_day: date, last_day: date
) -> DataFrame | None:
    """Clean rows of earlier runs on the given event days (partition-pruned), if any."""
    if not spark.catalog.tableExists(table):
        return None
    lower, _ = _bounds(interval)
    return spark.table(table).where(
        f"ingestion_timestamp < TIMESTAMP '{lower}' AND {PARTITION_COLUMN} "
        f"BETWEEN DATE '{first_day.isoformat()}' AND DATE '{last_day.isoformat()}'"
    )


DayRange = tuple[date, date]


def _event_days(raw: dict[str, DataFrame]) -> dict[str, DayRange | None]:
    """First and last event day of each raw event batch (one Spark job), None when empty."""
    per_table = [
        df.agg(
            F.min(PARTITION_COLUMN).alias("first"), F.max(PARTITION_COLUMN).alias("last")
        ).withColumn("source", F.lit(name))
        for name, df in raw.items()
    ]
    combined = per_table[0]
    for part in per_table[1:]:
        combined = combined.unionByName(part)
    days: dict[str, DayRange | None] = {name: None for name in raw}
    for row in combined.collect():
        if row["first"] is not None:
            days[row["source"]] = (row["first"], row["last"])
    return days


def _to_quarantine(classified: DataFrame, source: str, is_event: bool) -> DataFrame:
    event_time = F.col("event_timestamp") if is_event else F.lit(None).cast("timestamp")
    return classified.where(F.col(REASON).isNotNull()).select(
        F.lit(source).alias("source_table"),
        F.col(REASON).alias("reason"),
        F.col(RECORD).alias("record"),
        event_time.alias("event_timestamp"),
        F.col("ingestion_timestamp"),
        F.to_date("ingestion_timestamp").alias("ingestion_date"),
    )


def _clean_rows(classified: DataFrame, columns: list[str]) -> DataFrame:
    return classified.where(F.col(REASON).isNull()).select(*columns)


def _counts(classified: dict[str, DataFrame]) -> dict[str, TableCounts]:
    """Rows per reason of every table, in one Spark job."""
    per_table = [
        df.groupBy(REASON).count().withColumn("source", F.lit(name))
        for name, df in classified.items()
    ]
    combined = per_table[0]
    for part in per_table[1:]:
        combined = combined.unionByName(part)
    found: dict[str, dict[str | None, int]] = {name: {} for name in classified}
    for row in combined.collect():
        found[row["source"]][row[REASON]] = row["count"]
    report = {}
    for name, by_reason in found.items():
        clean = by_reason.pop(None, 0)
        ordered = {str(r): by_reason[str(r)] for r in PRECEDENCE if str(r) in by_reason}
        unknown = {str(r): n for r, n in by_reason.items() if str(r) not in ordered}
        quarantined = {**ordered, **unknown}
        report[name] = TableCounts(clean + sum(quarantined.values()), clean, quarantined)
    return report


def _classify_events(
    spark: SparkSession,
    name: str,
    raw: DataFrame,
    days: DayRange | None,
    interval: Interval,
    clean_database: str,
    impressions: DataFrame | None = None,
) -> DataFrame:
    rules = SOURCES[name]
    if days is None:  # nothing arrived: no history to consult
        return classify(raw, rules, impressions=impressions)
    accepted = _accepted_before(spark, f"{clean_database}.{name}", interval, *days)
    seen_before = None if accepted is None else accepted.select(rules.key)
    if impressions is not None:
        columns = ["impression_id", "member_id", "ad_id"]
        earlier = _accepted_before(
            spark,
            f"{clean_database}.ad_impressions",
            interval,
            days[0] - IMPRESSION_LOOKBACK,
            days[1],
        )
        if earlier is not None:
            impressions = earlier.select(*columns).unionByName(impressions.select(*columns))
        impressions = impressions.dropDuplicates(["impression_id"])
    return classify(raw, rules, seen_before=seen_before, impressions=impressions)


def ingest(
    spark: SparkSession,
    *,
    start: str | datetime | date,
    end: str | datetime | date,
    raw_database: str = RAW_DB,
    clean_database: str = CLEAN_DB,
) -> IngestReport:
    """Check the raw rows that arrived in `[start, end)` and write them clean or quarantined."""
    interval = Interval.parse(start, end)
    for name in SOURCES:
        require_table(spark, f"{raw_database}.{name}", hint="run `feature-platform generate` first")
    raw = {name: _arrived(spark, f"{raw_database}.{name}", interval) for name in SOURCES}
    days = _event_days({name: raw[name] for name in CLEAN_EVENTS})

    classified: dict[str, DataFrame] = {}
    try:
        for name in DIMENSIONS:
            classified[name] = _kept(classify(raw[name], SOURCES[name]))
        for name in ("playback_events", "ad_impressions"):
            classified[name] = _kept(
                _classify_events(spark, name, raw[name], days[name], interval, clean_database)
            )
        accepted_impressions = classified["ad_impressions"].where(F.col(REASON).isNull())
        classified["ad_clicks"] = _kept(
            _classify_events(
                spark,
                "ad_clicks",
                raw["ad_clicks"],
                days["ad_clicks"],
                interval,
                clean_database,
                impressions=accepted_impressions,
            )
        )
        report = IngestReport(interval, _counts(classified))
        _write(classified, interval, clean_database)
    finally:
        for df in classified.values():
            df.unpersist()
    return report


def _kept(df: DataFrame) -> DataFrame:
    # Counted, written clean and written to quarantine: classify once.
    return df.persist(StorageLevel.MEMORY_AND_DISK)


def _write(classified: dict[str, DataFrame], interval: Interval, clean_database: str) -> None:
    arrived = interval_predicate("ingestion_timestamp", *_bounds(interval))
    for name, schema in DIMENSIONS.items():
        clean = _clean_rows(classified[name], schema.fieldNames())
        replace_where(clean, f"{clean_database}.{name}", predicate=arrived)
    for name, schema in CLEAN_EVENTS.items():
        clean = _clean_rows(classified[name], schema.fieldNames())
        replace_where(
            clean,
            f"{clean_database}.{name}",
            predicate=arrived,
            partition_by=(PARTITION_COLUMN,),
        )
    quarantined = [
        _to_quarantine(df, name, SOURCES[name].is_event) for name, df in classified.items()
    ]
    all_quarantined = quarantined[0]
    for part in quarantined[1:]:
        all_quarantined = all_quarantined.unionByName(part)
    sources = ", ".join(f"'{name}'" for name in SOURCES)
    replace_where(
        all_quarantined.select(*QUARANTINE.fieldNames()),
        f"{clean_database}.{QUARANTINE_NAME}",
        predicate=f"source_table IN ({sources}) AND {arrived}",
        partition_by=("ingestion_date",),
    )
