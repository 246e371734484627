"""Row checks of ingestion as DataFrame -> DataFrame transforms.

Each check fills the `reason` column of rows that still have none, and the
checks run in `reasons.PRECEDENCE` order, so a row gets exactly one reason: the
first that applies. A row whose `reason` stays null is clean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines.ingest.reasons import FUTURE_TOLERANCE_SECONDS, Reason

REASON = "reason"
RECORD = "record"
MATCHED = "_matched"
SEEN = "_seen"
# Keep null fields and microseconds: the record is the raw row, not a summary of it.
RECORD_JSON_OPTIONS = {
    "ignoreNullFields": "false",
    "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
}


@dataclass(frozen=True)
class SourceRules:
    """What a raw table must satisfy: its key, the columns that may not be null."""

    name: str
    key: str
    required: tuple[str, ...]
    non_negative: tuple[str, ...] = ()
    is_event: bool = True


def with_record(df: DataFrame) -> DataFrame:
    """Keep the raw row whole as JSON (nulls included) and start with no reason."""
    row = F.struct(*[F.col(c) for c in df.columns])
    record = F.to_json(row, RECORD_JSON_OPTIONS)
    return df.withColumn(RECORD, record).withColumn(REASON, F.lit(None).cast("string"))


def _flag(df: DataFrame, condition: Column, reason: Reason) -> DataFrame:
    """Give `reason` to the rows matching `condition` that have no reason yet."""
    flagged = F.when(F.col(REASON).isNull() & condition, F.lit(str(reason)))
    return df.withColumn(REASON, F.coalesce(F.col(REASON), flagged))


def flag_null_keys(df: DataFrame, required: Sequence[str]) -> DataFrame:
    any_null = F.lit(False)
    for column in required:
        any_null = any_null | F.col(column).isNull()
    return _flag(df, any_null, Reason.NULL_KEY)


def flag_future_timestamps(df: DataFrame) -> DataFrame:
    # Compared in microseconds so the tolerance needs no interval arithmetic.
    ahead = F.unix_micros("event_timestamp") - F.unix_micros("ingestion_timestamp")
    return _flag(df, ahead > F.lit(FUTURE_TOLERANCE_SECONDS * 1_000_000), Reason.FUTURE_TIMESTAMP)


def flag_negative(df: DataFrame, columns: Sequence[str]) -> DataFrame:
    negative = F.lit(False)
    for column in columns:
        negative = negative | (F.col(column) < 0)
    return _flag(df, negative, Reason.NEGATIVE_DURATION)


def flag_orphan_clicks(clicks: DataFrame, impressions: DataFrame) -> DataFrame:
    """Attach the impression's member and ad to each click; clicks without one are orphans.

    `impressions` holds (impression_id, member_id, ad_id) with one row per id.
    """
    known = impressions.select("impression_id", "member_id", "ad_id").withColumn(
        MATCHED, F.lit(True)
    )
    joined = clicks.join(known, on="impression_id", how="left")
    return _flag(joined, F.col(MATCHED).isNull(), Reason.ORPHAN_CLICK).drop(MATCHED)


def flag_duplicates(
    df: DataFrame,
    keys: Sequence[str],
    seen_before: DataFrame | None = None,
    order: Sequence[str] = (),
) -> DataFrame:
    """Among rows without a reason, keep the first per `keys`; later copies are duplicates.

    Keys found in `seen_before` (accepted by earlier runs) make every copy a duplicate.
    "First" is by `order`, then the record text, so the choice never depends on
    how Spark happens to split the data.
    """
    ranking = Window.partitionBy(*keys).orderBy(
        F.col(REASON).isNotNull(), *[F.col(c) for c in order], F.col(RECORD)
    )
    ranked = df.withColumn("_rank", F.row_number().over(ranking))
    repeated = F.col("_rank") > 1
    if seen_before is not None:
        seen = seen_before.select(*keys).distinct().withColumn(SEEN, F.lit(True))
        ranked = ranked.join(seen, on=list(keys), how="left")
        repeated = repeated | F.col(SEEN).isNotNull()
    flagged = _flag(ranked, repeated, Reason.DUPLICATE)
    return flagged.drop("_rank", SEEN)


def classify(
    raw: DataFrame,
    rules: SourceRules,
    *,
    seen_before: DataFrame | None = None,
    impressions: DataFrame | None = None,
) -> DataFrame:
    """The raw rows with `record` and `reason` (null when clean), checks in precedence order."""
    df = flag_null_keys(with_record(raw), rules.required)
    if rules.is_event:
        df = flag_future_timestamps(df)
    if rules.non_negative:
        df = flag_negative(df, rules.non_negative)
    if impressions is not None:
        df = flag_orphan_clicks(df, impressions)
    if rules.is_event:
        return flag_duplicates(
            df, [rules.key], seen_before, order=("ingestion_timestamp", "event_timestamp")
        )
    # Dimension rows are versions: a key may repeat at a later ingestion time.
    return flag_duplicates(df, [rules.key, "ingestion_timestamp"], seen_before)
