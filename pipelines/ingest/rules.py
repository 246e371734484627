"""Row checks of ingestion as DataFrame -> DataFrame transforms.

The checks that look at one row alone come from the source's declared validity
(`pipelines.validity.row_problem`); the ones that need other rows (orphan clicks,
duplicates, conflicting dimension rows) run after them and only fill the `reason`
of rows that still have none, so a row gets exactly one reason: the first that
applies. A row whose `reason` stays null is clean.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from features import Carried, DimensionSource, EventSource
from pipelines.validity import AnySource, Kind, reason, row_problem, version_tuple

REASON = "reason"
RECORD = "record"
MATCHED = "_matched"
SEEN = "_seen"
# Keep null fields and microseconds: the record is the raw row, not a summary of it.
RECORD_JSON_OPTIONS = {
    "ignoreNullFields": "false",
    "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
}
MICROS_PER_DAY = 86_400_000_000


def with_record(df: DataFrame) -> DataFrame:
    """Keep the raw row whole as JSON (nulls included) and start with no reason."""
    row = F.struct(*[F.col(c) for c in df.columns])
    record = F.to_json(row, RECORD_JSON_OPTIONS)
    return df.withColumn(RECORD, record).withColumn(REASON, F.lit(None).cast("string"))


def utc_date(column: str) -> Column:
    """The UTC calendar day of a timestamp, whatever the session time zone."""
    return F.date_from_unix_date(F.floor(F.unix_micros(column) / MICROS_PER_DAY).cast("int"))


def _flag(df: DataFrame, condition: Column, text: str) -> DataFrame:
    """Give reason `text` to the rows matching `condition` that have no reason yet."""
    flagged = F.when(F.col(REASON).isNull() & condition, F.lit(text))
    return df.withColumn(REASON, F.coalesce(F.col(REASON), flagged))


def flag_row_problems(df: DataFrame, source: AnySource) -> DataFrame:
    """The declared checks that look at one row alone (see `pipelines.validity`)."""
    return df.withColumn(REASON, F.coalesce(F.col(REASON), row_problem(source, df.columns)))


def flag_orphans(rows: DataFrame, carried: Carried, parents: DataFrame) -> DataFrame:
    """Copy the carried columns from each row's parent; rows without one are orphans.

    `parents` holds the parent source's accepted rows, one per `carried.on` value.
    """
    known = parents.select(carried.on, *carried.columns).withColumn(MATCHED, F.lit(True))
    joined = rows.join(known, on=carried.on, how="left")
    return _flag(joined, F.col(MATCHED).isNull(), reason(Kind.ORPHAN, carried.on)).drop(MATCHED)


def flag_duplicate_ids(
    df: DataFrame, source: EventSource, accepted_ids: DataFrame | None = None
) -> DataFrame:
    """Among rows without a reason, keep the first delivery of each id; other copies, and
    every copy of an id in `accepted_ids` (one `id` column), are duplicates.

    "First" is by ingestion time, then event time, then the record text, so the choice
    never depends on how Spark happens to split the data.
    """
    key = str(source.id_column)
    ranking = Window.partitionBy(key).orderBy(
        F.col(REASON).isNotNull(),
        F.col(source.ingestion_column),
        F.col(source.timestamp_column),
        F.col(RECORD),
    )
    ranked = df.withColumn("_rank", F.row_number().over(ranking))
    repeated = F.col("_rank") > 1
    if accepted_ids is not None:
        seen = accepted_ids.select(F.col("id").alias(key)).distinct().withColumn(SEEN, F.lit(True))
        ranked = ranked.join(seen, on=key, how="left")
        repeated = repeated | F.col(SEEN).isNotNull()
    return _flag(ranked, repeated, reason(Kind.DUPLICATE, key)).drop("_rank", SEEN)


def flag_version_conflicts(df: DataFrame, source: DimensionSource) -> DataFrame:
    """Rows of one dimension version (key, ingestion time) resolve to one row.

    The row with the greatest `version_tuple` wins; exact copies of it are duplicates
    and rows that disagree with it are conflicts.
    """
    key, valid = source.key_column, F.col(REASON).isNull()
    version = Window.partitionBy(key, source.ingestion_column)
    tuple_ = version_tuple(source)
    with_winner = df.withColumn("_tuple", tuple_).withColumn(
        "_winner", F.max(F.when(valid, F.col("_tuple"))).over(version)
    )
    copies = Window.partitionBy(key, source.ingestion_column, "_tuple").orderBy(
        F.col(REASON).isNotNull(), F.col(RECORD)
    )
    ranked = with_winner.withColumn("_rank", F.row_number().over(copies))
    same = F.col("_tuple").eqNullSafe(F.col("_winner"))
    flagged = _flag(ranked, ~same, reason(Kind.CONFLICT, key))
    flagged = _flag(flagged, F.col("_rank") > 1, reason(Kind.DUPLICATE, key))
    return flagged.drop("_tuple", "_winner", "_rank")


def classify(
    raw: DataFrame,
    source: AnySource,
    *,
    accepted_ids: DataFrame | None = None,
    parents: DataFrame | None = None,
) -> DataFrame:
    """The raw rows with `record` and `reason` (null when clean), checks in precedence
    order; event rows get `event_date` derived from their event time."""
    df = flag_row_problems(with_record(raw), source)
    if isinstance(source, DimensionSource):
        return flag_version_conflicts(df, source)
    # The partition column follows the event time; a producer's own value may lie.
    df = df.withColumn(source.partition_column, utc_date(source.timestamp_column))
    if source.carried is not None:
        if parents is None:
            raise ValueError(f"{source.name} carries columns of {source.carried.source}: pass them")
        df = flag_orphans(df, source.carried, parents)
    return flag_duplicate_ids(df, source, accepted_ids)
