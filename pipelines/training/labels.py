"""Label jobs: the rows a model learns from, keyed and timed for `build_training_set`.

Click labels (`features.labels.ctr`) mature: a click may come up to the click window after
its impression and arrive up to the clicks source's `max_lateness` after that. The labels
of `[start, end)` count the clicks ingested before `end + ctr.maturity`, so they are final
(and reproducible) once the pipeline has ingested that far, and the builder refuses to
build them before.
"""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.labels import ctr
from pipelines.delta_io import ensure_database, require_table, rows_in
from pipelines.errors import PlatformError
from pipelines.interval import Interval, from_unix_micros, utc_literal
from pipelines.training import delta


class LabelsNotMatureError(PlatformError):
    pass


def ctr_labels(
    spark: SparkSession,
    *,
    start: str | datetime | date,
    end: str | datetime | date,
    allow_immature: bool = False,
) -> DataFrame:
    """Click labels of the impressions in `[start, end)` (UTC), from the clean tables.

    Raises LabelsNotMatureError while the clean clicks do not yet reach `end +
    ctr.maturity` (nothing has been ingested from then on), unless `allow_immature`.
    """
    interval = Interval.parse(start, end)
    for source in (ctr.impressions, ctr.clicks):
        require_table(spark, source.table, hint="run the ingestion job first")
    clicks = spark.read.table(ctr.clicks.table)
    cutoff = interval.end + ctr.maturity
    if not allow_immature:
        reached = clicks.agg(F.max(F.unix_micros("ingestion_timestamp")).alias("t")).first()
        if reached is None or reached["t"] is None or from_unix_micros(reached["t"]) < cutoff:
            latest = (
                "nothing"
                if reached is None or reached["t"] is None
                else (from_unix_micros(reached["t"]).isoformat())
            )
            raise LabelsNotMatureError(
                f"click labels of {interval} are final once clicks ingested until "
                f"{cutoff.isoformat()} are in; the latest clean click arrived at {latest}"
            )
    return click_labels(spark.read.table(ctr.impressions.table), clicks, interval)


def click_labels(impressions: DataFrame, clicks: DataFrame, interval: Interval) -> DataFrame:
    """One row per clean impression in `interval`; `clicked` = 1 if a clean click for it
    came at most `ctr.window` after it (exactly the window counts) and was ingested before
    `end + ctr.maturity`, else 0: the same labels however late they are built."""
    start, end = interval.start, interval.end
    shown = rows_in(
        impressions,
        ctr.impressions.timestamp_column,
        interval,
        partition_column=ctr.impressions.partition_column,
    )
    click_times = clicks.where(
        (F.col("event_timestamp") >= utc_literal(start))
        & (F.col("event_timestamp") <= utc_literal(end + ctr.window))
        & (F.col("ingestion_timestamp") < utc_literal(end + ctr.maturity))
    ).select("impression_id", F.col("event_timestamp").alias("click_timestamp"))
    window = F.make_dt_interval(secs=F.lit(int(ctr.window.total_seconds())))
    clicked = (
        shown.alias("i")
        .join(
            click_times.alias("c"),
            (F.col("i.impression_id") == F.col("c.impression_id"))
            & (F.col("c.click_timestamp") >= F.col("i.event_timestamp"))
            & (F.col("c.click_timestamp") <= F.col("i.event_timestamp") + window),
            "left_semi",
        )
        .select("impression_id", "event_timestamp")
        .distinct()
        .withColumn("clicked", F.lit(1))
    )
    return shown.join(clicked, ["impression_id", "event_timestamp"], "left").select(
        "member_id",
        "ad_id",
        "impression_id",
        "placement",
        "event_timestamp",
        F.coalesce(F.col("clicked"), F.lit(0)).cast(T.IntegerType()).alias("clicked"),
    )


def write_ctr_labels(
    spark: SparkSession,
    *,
    start: str | datetime | date,
    end: str | datetime | date,
    output: str,
    allow_immature: bool = False,
) -> DataFrame:
    """Build the click labels of `[start, end)` and replace exactly that interval of
    `output` (a Delta path or catalog table); returns the whole table read back."""
    interval = Interval.parse(start, end)
    labels = ctr_labels(
        spark, start=interval.start, end=interval.end, allow_immature=allow_immature
    )
    predicate = interval.sql("event_timestamp")
    ref = delta.normalize(output)
    writer = labels.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
    if delta.is_path(ref):
        writer.save(ref)
    else:
        if "." in ref:
            ensure_database(spark, ref.split(".")[0])
        writer.saveAsTable(ref)
    return delta.read_latest(spark, ref)
