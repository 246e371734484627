"""Benchmark: sawtooth values at exact label times, and what real-time state costs compute.

    python -m bench.sawtooth --events 2000000 --days 7 --repeats 3

Clean tables straight from numpy (`bench.feature_compute.synthesize_clean_tables`:
Zipf-skewed members and ads, 2 % of events hours late), then, in one Spark session:

- `compute` of the three real-time views over the whole span, as the pipeline runs it
  (state tables, then feature rows finished from them), against the same views declared
  `realtime=False` (feature tables only): what keeping the state costs;
- labels = the last day's impressions (member, ad, impression time): `sawtooth_join` of
  `member_ad_history` and `ad_performance` (values at the exact label time) against the
  point-in-time join of the same labels to the same views' feature tables as known at the
  label time (`Mode.KNOWN`: the hourly values a batch-only store gives). Each result is
  written with Spark's `noop` sink.

Reports medians over `--repeats` (after one warm-up each), ratios, and how many labels'
sawtooth values differ from the hourly ones (what the head adds).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from bench.feature_compute import SPARK_CONF, START, synthesize_clean_tables
from bench.materialize import timed as timed_between

REALTIME = ("member_engagement", "ad_performance", "member_ad_history")
JOINED = ("member_ad_history", "ad_performance")


def timed(label: str, repeats: int, body: Callable[[], object]) -> float:
    """Median seconds of `repeats` runs after a warm-up (nothing to reset between runs)."""
    return timed_between(label, repeats, lambda: None, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    os.environ["FEATURE_PLATFORM_DATA_DIR"] = tempfile.mkdtemp(prefix="feature-bench-")
    from pyspark.sql import functions as F

    from features import REGISTRY, FeatureView
    from pipelines.compute import compute
    from pipelines.spark import get_spark
    from pipelines.tables import clean_table
    from pipelines.training.asof import label_stats, point_in_time_join
    from pipelines.training.sawtooth import sawtooth_join
    from pipelines.training.spec import Mode, select_features

    spark = get_spark("bench-sawtooth", extra_conf=SPARK_CONF)
    total = synthesize_clean_tables(spark, args.events, args.days)
    end = START + timedelta(days=args.days)
    views = [REGISTRY.view(name) for name in REALTIME]
    assert all(isinstance(v, FeatureView) and v.realtime for v in views)
    batch_only = [replace(v, realtime=False) for v in views if isinstance(v, FeatureView)]

    rows: list[tuple[str, float, str]] = []
    with_state = timed(
        "compute with state",
        args.repeats,
        lambda: compute(spark, start=START, end=end, views=views),
    )
    without = timed(
        "compute without state",
        args.repeats,
        lambda: compute(spark, start=START, end=end, views=batch_only),
    )
    compute(spark, start=START, end=end, views=views)  # the state tables of this span
    rows.append(("compute, 3 views, with state", with_state, f"{with_state / without:.2f}x"))
    rows.append(("compute, 3 views, feature tables only", without, "1.00x"))

    impressions = spark.table(clean_table("ad_impressions"))
    labels = (
        impressions.where(F.col("event_timestamp") >= F.lit(end - timedelta(days=1)))
        .select("member_id", "ad_id", F.col("event_timestamp").alias("label_time"))
        .cache()
    )
    n_labels = labels.count()
    stats = label_stats(labels, "label_time")
    selection = select_features(REGISTRY, [f"{name}:{f.name}" for name in JOINED
                                           for f in REGISTRY.view(name).features])  # fmt: skip

    def hourly():
        return point_in_time_join(
            labels,
            [(view, spark.table(view.table)) for view in selection.views],
            timestamp_column="label_time",
            stats=stats,
            mode=Mode.KNOWN,
        )

    def sawtooth():
        out = labels
        for name in JOINED:
            view = REGISTRY.view(name)
            assert isinstance(view, FeatureView)
            out = sawtooth_join(
                out,
                view,
                state=spark.table(view.state_table),
                events={s.name: spark.table(s.table) for s in view.sources},
                timestamp_column="label_time",
                base_labels=labels,
            )
        return out

    known = timed(
        "as known (hourly rows)",
        args.repeats,
        lambda: hourly().write.format("noop").mode("overwrite").save(),
    )
    exact = timed("sawtooth", args.repeats,
                  lambda: sawtooth().write.format("noop").mode("overwrite").save())  # fmt: skip
    rows.append((f"as-of join, {n_labels:,} labels, 2 views, as known", known, "1.00x"))
    rows.append((f"sawtooth join, {n_labels:,} labels, 2 views", exact, f"{exact / known:.2f}x"))

    keys = ["member_id", "ad_id", "label_time"]
    counted = "member_impressions_count_1d"
    a, b = hourly().alias("a"), sawtooth().alias("b")
    differ = (
        a.groupBy(*keys).agg(F.max(counted).alias(counted))
        .join(b.groupBy(*keys).agg(F.max(counted).alias("s")), keys)
        .where(~F.col(counted).eqNullSafe(F.col("s")))
        .count()
    )  # fmt: skip

    print()
    print(f"{total:,} clean events over {args.days} days; cores {os.cpu_count()}, Spark local[2]; "
          f"medians of {args.repeats}")  # fmt: skip
    print(f"{'what':<52} {'seconds':>8} {'ratio':>7}")
    for what, seconds, ratio in rows:
        print(f"{what:<52} {seconds:>8.1f} {ratio:>7}")
    print(f"labels whose {counted} differs from the hourly row: {differ:,} of {n_labels:,}")


if __name__ == "__main__":
    main()
