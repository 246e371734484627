"""Label jobs: the rows a model learns from, keyed and timed for `build_training_set`."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.delta_io import ensure_database, interval_predicate, require_table
from pipelines.interval import Interval, utc_literal
from pipelines.tables import clean_table
from pipelines.training import delta

CLICK_WINDOW = timedelta(minutes=30)
CTR_COLUMNS = ("member_id", "ad_id", "impression_id", "placement", "event_timestamp", "clicked")


def ctr_labels(
    spark: SparkSession, *, start: str | datetime | date, end: str | datetime | date
) -> DataFrame:
    """Click labels of the impressions in `[start, end)` (UTC), from the clean tables."""
    interval = Interval.parse(start, end)
    for name in ("ad_impressions", "ad_clicks"):
        require_table(spark, clean_table(name), hint="run the ingestion job first")
    return click_labels(
        spark.read.table(clean_table("ad_impressions")),
        spark.read.table(clean_table("ad_clicks")),
        interval,
    )


def click_labels(impressions: DataFrame, clicks: DataFrame, interval: Interval) -> DataFrame:
    """One row per clean impression in `interval`; `clicked` = 1 if a clean click for it
    came at most 30 minutes after it (exactly 30 minutes counts), else 0.

    Clicks are looked for up to 30 minutes past the interval's end, so the labels of
    an interval are final once that much later data has been ingested.
    """
    start, end = interval.start, interval.end
    shown = impressions.where(
        (F.col("event_timestamp") >= utc_literal(start))
        & (F.col("event_timestamp") < utc_literal(end))
    )
    click_times = clicks.where(
        (F.col("event_timestamp") >= utc_literal(start))
        & (F.col("event_timestamp") <= utc_literal(end + CLICK_WINDOW))
    ).select("impression_id", F.col("event_timestamp").alias("click_timestamp"))
    window = F.make_dt_interval(mins=F.lit(int(CLICK_WINDOW.total_seconds() // 60)))
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
) -> DataFrame:
    """Build the click labels of `[start, end)` and replace exactly that interval of
    `output` (a Delta path or catalog table); returns the whole table read back."""
    interval = Interval.parse(start, end)
    labels = ctr_labels(spark, start=interval.start, end=interval.end)
    start_text, end_text = (b.isoformat(sep=" ") for b in interval.spark_bounds())
    predicate = interval_predicate("event_timestamp", start_text, end_text)
    ref = delta.normalize(output)
    writer = labels.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
    if delta.is_path(ref):
        writer.save(ref)
    else:
        if "." in ref:
            ensure_database(spark, ref.split(".")[0])
        writer.saveAsTable(ref)
    return delta.read_latest(spark, ref)
