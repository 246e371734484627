"""Benchmark: the tiled feature engine against a naive range join, on generated data.

    python -m bench.feature_compute --events 10000000

Generates about `--events` clean events (pipelines.generate + pipelines.ingest,
Zipf-skewed members, titles and ads) in a throwaway data directory, then times
`pipelines.compute.compute` over every windowed view (every version learned in the
span), and a naive baseline that range-joins each view's change hours against the
events known at the span's end, once per window (what a direct SQL translation of the
semantics does, for the final values only). They must agree on those: the engine's
latest version of every row against the baseline's row. By default the baseline
covers all the data, as the engine does (about 50 minutes for 10 M events on 2
cores: it is quadratic in the events of popular entities). `--baseline-days N`
limits it to the first N days for a quicker look; the engine is then also timed
on that subset, so the speedup compares equal work. Both write Delta tables, two
views at a time.
Reports medians over `--repeats`, the driver's and the JVM's peak resident
memory, and the JVM heap pools' peak usage.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import psutil

SPARK_CONF = {
    "spark.master": "local[2]",
    "spark.driver.memory": "6g",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
}
EVENTS_PER_DAY_AT_SCALE_1 = 37_000
# Views written at once, by the engine and by the baseline alike.
PARALLELISM = 2
START = datetime(2026, 1, 5)


class PeakMemory:
    """Samples the resident memory of this process and of the Spark JVM (its child)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.driver = 0
        self.jvm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.driver = max(self.driver, me.memory_info().rss)
            for child in me.children(recursive=True):
                try:
                    if "java" in child.name():
                        self.jvm = max(self.jvm, child.memory_info().rss)
                except psutil.Error:
                    pass
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def heap_pool_peaks(spark, reset: bool = False) -> int:
    """Sum of the JVM heap pools' peak usage since the last reset (bytes)."""
    management = spark.sparkContext._jvm.java.lang.management.ManagementFactory
    total = 0
    for pool in management.getMemoryPoolMXBeans():
        if str(pool.getType()) == "Heap memory":
            total += pool.getPeakUsage().getUsed()
            if reset:
                pool.resetPeakUsage()
    return total


def prepare_data(spark, events: int, days: int) -> int:
    from pipelines.generate import generate
    from pipelines.ingest import ingest

    scale = events / (EVENTS_PER_DAY_AT_SCALE_1 * days)
    # Late arrivals land up to a few days after their event: ingest a margin.
    end = START + timedelta(days=days + 3)
    generate(spark, start=START, end=end, scale=scale)
    ingest(spark, start=START, end=end)
    return clean_events(spark, START, START + timedelta(days=days))


def synthesize_clean_tables(spark, events: int, days: int, seed: int = 7) -> int:
    """Clean tables straight from numpy: Zipf-skewed members, titles and ads, no dimensions.

    Shares follow the generator (about 64% plays, 34% impressions, 2% clicks);
    2% of events arrive late (up to 2 days), the rest within minutes.
    """
    import numpy as np
    import pyarrow as pa

    from features.catalog import CLEAN, database
    from pipelines.tables import CLEAN_EVENTS, clean_table

    rng = np.random.default_rng(seed)
    members, titles, ads = 50_000, 8_000, 1_600
    start_us = int((START - datetime(1970, 1, 1)).total_seconds()) * 1_000_000
    span_us = days * 86_400 * 1_000_000

    def zipf(n_items: int, size: int) -> np.ndarray:
        weights = (rng.permutation(n_items) + 1 + 0.002 * n_items) ** -1.0
        return rng.choice(n_items, size=size, p=weights / weights.sum()).astype(np.int64) + 1

    def times(size: int) -> tuple[np.ndarray, np.ndarray]:
        event = np.sort(start_us + rng.integers(0, span_us, size))
        delay = rng.integers(60_000_000, 600_000_000, size)
        late = rng.random(size) < 0.02
        delay[late] = rng.integers(3_600_000_000, 2 * 86_400_000_000, int(late.sum()))
        return event, event + delay

    def arrow_times(us: np.ndarray) -> pa.Array:
        return pa.array(us.astype("datetime64[us]"))

    def arrow_dates(us: np.ndarray) -> pa.Array:
        return pa.array(us.astype("datetime64[us]").astype("datetime64[D]"))

    n_plays = int(events * 0.64)
    n_impressions = int(events * 0.34)
    n_clicks = events - n_plays - n_impressions
    ts, arrived = times(n_plays)
    plays = pa.table(
        {
            "event_id": pa.array(np.char.add("p", np.arange(n_plays).astype(str))),
            "member_id": zipf(members, n_plays),
            "title_id": zipf(titles, n_plays),
            "device": pa.array(rng.choice(["tv", "mobile", "web", "tablet", "console"], n_plays)),
            "event_timestamp": arrow_times(ts),
            "watch_seconds": rng.gamma(2.0, 900.0, n_plays).round(1),
            "ingestion_timestamp": arrow_times(arrived),
            "event_date": arrow_dates(ts),
        }
    )
    ts, arrived = times(n_impressions)
    impression_members, impression_ads = zipf(members, n_impressions), zipf(ads, n_impressions)
    placements = ["preroll", "midroll", "pause_screen", "banner"]
    impressions = pa.table(
        {
            "impression_id": pa.array(np.char.add("i", np.arange(n_impressions).astype(str))),
            "member_id": impression_members,
            "ad_id": impression_ads,
            "placement": pa.array(rng.choice(placements, n_impressions)),
            "event_timestamp": arrow_times(ts),
            "ingestion_timestamp": arrow_times(arrived),
            "event_date": arrow_dates(ts),
        }
    )
    clicked = np.sort(rng.choice(n_impressions, n_clicks, replace=False))
    click_ts = ts[clicked] + rng.integers(1_000_000, 60_000_000, n_clicks)
    clicks = pa.table(
        {
            "impression_id": pa.array(np.char.add("i", clicked.astype(str))),
            "member_id": impression_members[clicked],
            "ad_id": impression_ads[clicked],
            "event_timestamp": arrow_times(click_ts),
            "ingestion_timestamp": arrow_times(click_ts + 120_000_000),
            "event_date": arrow_dates(click_ts),
        }
    )
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database(CLEAN)}")
    for name, table in {"playback_events": plays, "ad_impressions": impressions,
                        "ad_clicks": clicks}.items():  # fmt: skip
        schema = CLEAN_EVENTS[name]
        frame = spark.createDataFrame(table.select(schema.fieldNames()).to_pandas(), schema)
        frame.repartition("event_date").write.format("delta").mode("overwrite").partitionBy(
            "event_date"
        ).saveAsTable(clean_table(name))
    return clean_events(spark, START, START + timedelta(days=days))


def clean_events(spark, start: datetime, end: datetime) -> int:
    from pyspark.sql import functions as F

    from pipelines.tables import CLEAN_EVENTS, clean_table

    total = 0
    for name in CLEAN_EVENTS:
        ts = F.col("event_timestamp")
        total += spark.table(clean_table(name)).where((ts >= start) & (ts < end)).count()
    return total


def naive_view_rows(spark, view, start: datetime, end: datetime):
    """The view's rows by brute force in Spark: change hours x events, one range join per window."""
    from pyspark.sql import functions as F

    from features import Op

    key = view.entity.join_key
    hour = timedelta(hours=1)
    read_from = start - view.max_window.duration - hour
    events = {}
    for source in view.sources:
        ts = F.col(source.timestamp_column)
        known = F.col(source.ingestion_column) < end
        events[source.name] = (
            spark.table(source.table)
            .where(F.col(key).isNotNull() & (ts >= read_from) & (ts < end) & known)
            .withColumn("__ts", ts)
        )
    changes = None
    for frame in events.values():
        entered = F.date_trunc("hour", F.col("__ts")) + F.expr("INTERVAL 1 HOUR")
        moments = [entered] + [entered + F.expr(f"INTERVAL {w.hours} HOURS") for w in view.windows]
        part = frame.select(key, F.explode(F.array(*moments)).alias("T"))
        changes = part if changes is None else changes.unionByName(part)
    changes = changes.where((F.col("T") > start) & (F.col("T") <= end)).distinct()

    def joined(source_name: str, hours: int):
        e = events[source_name].withColumnRenamed(key, "__key")
        condition = (
            (F.col(key) == F.col("__key"))
            & (F.col("__ts") >= F.col("T") - F.expr(f"INTERVAL {hours} HOURS"))
            & (F.col("__ts") < F.col("T"))
        )
        return changes.join(e, condition, "left")

    result = changes
    for source in view.sources:
        for w in view.windows:
            aggs = []
            for a in view.aggregations:
                if a.source.name != source.name or w not in a.windows:
                    continue
                name, col = a.feature_name(w), F.col(a.column) if a.column else None
                if a.op is Op.COUNT:
                    aggs.append(F.count("__key" if col is None else col).alias(name))
                elif a.op is Op.SUM:
                    aggs.append(F.coalesce(F.sum(col), F.lit(0.0)).alias(name))
                elif a.op is Op.AVG:
                    aggs.append(F.avg(col).alias(name))
                elif a.op is Op.MIN:
                    aggs.append(F.min(col).alias(name))
                elif a.op is Op.MAX:
                    aggs.append(F.max(col).alias(name))
                elif a.op is Op.APPROX_DISTINCT:
                    sketch = F.hll_sketch_estimate(F.hll_sketch_agg(col))
                    aggs.append(F.coalesce(sketch, F.lit(0)).alias(name))
                else:
                    latest = F.max(F.when(col.isNotNull(), F.struct("__ts", col.alias("v"))))
                    aggs.append(latest["v"].alias(name))
            if aggs:
                per_window = joined(source.name, w.hours).groupBy(key, "T").agg(*aggs)
                result = result.join(per_window, [key, "T"], "left")
    for ratio in view.ratios:
        value = (F.col(ratio.numerator) + ratio.prior * ratio.weight) / (
            F.col(ratio.denominator) + ratio.weight
        )
        result = result.withColumn(ratio.name, F.least(F.lit(1.0), value))
    return result.select(
        key,
        F.col("T").alias("event_timestamp"),
        *[f.name for f in view.features],
        F.to_date("T").alias("event_date"),
    )


def windowed_views() -> list:
    from features import REGISTRY, FeatureView

    return [v for v in REGISTRY.views if isinstance(v, FeatureView)]


def run_naive(spark, start: datetime, end: datetime) -> None:
    """The baseline writes its views as concurrently as `compute` does (PARALLELISM)."""
    from concurrent.futures import ThreadPoolExecutor

    spark.sql("CREATE DATABASE IF NOT EXISTS bench")

    def write(view) -> None:
        rows = naive_view_rows(spark, view, start, end)
        rows.write.format("delta").mode("overwrite").saveAsTable(f"bench.naive_{view.name}")

    with ThreadPoolExecutor(max_workers=PARALLELISM) as pool:
        for done in [pool.submit(write, view) for view in windowed_views()]:
            done.result()


def run_engine(spark, start: datetime, end: datetime) -> None:
    from pipelines.compute import compute

    compute(spark, start=start, end=end, views=windowed_views(), parallelism=PARALLELISM)


def mismatches(spark, start: datetime, end: datetime) -> int:
    """Rows where the engine's latest version and the baseline disagree (floats to 1e-9
    relative)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    bad = 0
    for view in windowed_views():
        key = view.entity.join_key
        ts, created = F.col("event_timestamp"), F.col("created_timestamp")
        newest = Window.partitionBy(key, "event_timestamp").orderBy(created.desc())
        mine = (
            spark.table(view.table)
            .where((ts > start) & (ts <= end) & (created <= end))
            .withColumn("__rank", F.row_number().over(newest))
            .where("__rank = 1")
            .alias("a")
        )
        naive = spark.table(f"bench.naive_{view.name}").alias("b")
        on = [key, "event_timestamp"]
        joined = mine.join(naive, on, "full_outer")
        differs = F.lit(False)
        for name in [f.name for f in view.features]:
            a, b = F.col(f"a.{name}"), F.col(f"b.{name}")
            if "_approx_distinct_" in name:
                # A union of tile sketches and one sketch of the raw values estimate
                # differently (no HIP estimator after a union): allow 3 standard
                # errors of a lgK=12 sketch (1.6% each).
                close = F.abs(a - b) <= F.greatest(F.abs(b) * 0.05, F.lit(1))
                differs |= ~F.coalesce(close, a.isNull() & b.isNull())
            elif name.endswith(("_sum_1d", "_sum_7d", "_sum_28d", "_avg_7d", "_avg_28d")) or (
                "smoothed" in name
            ):
                close = F.abs(a - b) <= F.greatest(F.abs(b) * 1e-9, F.lit(1e-9))
                differs |= ~F.coalesce(close, a.isNull() & b.isNull())
            else:
                differs |= ~a.eqNullSafe(b)
        bad += joined.where(differs).count()
    return bad


def timed(label: str, repeats: int, spark, body: Callable[[], None]) -> dict:
    seconds, drivers, jvms, heaps = [], [], [], []
    for _ in range(repeats):
        heap_pool_peaks(spark, reset=True)
        with PeakMemory() as memory:
            began = time.perf_counter()
            body()
            seconds.append(time.perf_counter() - began)
        drivers.append(memory.driver)
        jvms.append(memory.jvm)
        heaps.append(heap_pool_peaks(spark))
        print(f"  {label}: {seconds[-1]:.1f} s", flush=True)
    return {
        "seconds": statistics.median(seconds),
        "driver": max(drivers),
        "jvm": max(jvms),
        "heap": max(heaps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=28, help="days of events")
    parser.add_argument(
        "--baseline-days", type=int, default=None, help="days the baseline covers (default: all)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=None, help="default: a temporary directory")
    parser.add_argument(
        "--data",
        choices=("generated", "synthetic"),
        default="generated",
        help="generated: pipelines.generate + ingest; synthetic: numpy straight into clean.*",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep the clean tables already in --data-dir"
    )
    args = parser.parse_args()

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="feature-bench-")
    os.environ["FEATURE_PLATFORM_DATA_DIR"] = data_dir
    from pipelines.spark import get_spark

    spark = get_spark("bench-feature-compute", extra_conf=SPARK_CONF)
    began = time.perf_counter()
    if args.reuse:
        total = clean_events(spark, START, START + timedelta(days=args.days))
    elif args.data == "synthetic":
        total = synthesize_clean_tables(spark, args.events, args.days)
    else:
        total = prepare_data(spark, args.events, args.days)
    print(f"data ({args.data}): {total:,} clean events over {args.days} days in {data_dir} "
          f"({time.perf_counter() - began:.0f} s to prepare)", flush=True)  # fmt: skip

    full_end = START + timedelta(days=args.days)
    subset_end = START + timedelta(days=args.baseline_days or args.days)
    subset = clean_events(spark, START, subset_end)
    # Warm-up: JIT and catalog caches, so that the first timed run is not penalized.
    run_engine(spark, START, START + timedelta(hours=6))

    results = {
        "engine, same span": (subset, timed("engine, same span", args.repeats, spark,
                                        lambda: run_engine(spark, START, subset_end))),
        "naive, same span": (subset, timed("naive, same span", args.repeats, spark,
                                        lambda: run_naive(spark, START, subset_end))),
    }  # fmt: skip
    bad = mismatches(spark, START, subset_end)
    if subset_end < full_end:  # a shorter baseline: time the engine on all data too
        results["engine, full"] = (
            total,
            timed("engine full", args.repeats, spark, lambda: run_engine(spark, START, full_end)),
        )

    gib = 1024**3
    print()
    print(f"cores: {os.cpu_count()}, Spark local[2], medians of {args.repeats} runs")
    print(f"engine vs baseline on the same span: {bad} mismatching rows")
    header = f"{'run':<19}{'events':>12}{'seconds':>10}{'events/s':>12}{'driver RSS':>12}"
    print(header + f"{'JVM RSS':>10}{'JVM heap':>10}")
    for label, (events, r) in results.items():
        print(
            f"{label:<19}{events:>12,}{r['seconds']:>10.1f}{events / r['seconds']:>12,.0f}"
            f"{r['driver'] / gib:>10.2f}GB{r['jvm'] / gib:>8.2f}GB{r['heap'] / gib:>8.2f}GB"
        )
    engine_subset = results["engine, same span"][1]["seconds"]
    naive_subset = results["naive, same span"][1]["seconds"]
    print(f"speedup on the same span: {naive_subset / engine_subset:.1f}x")
    if "engine, full" in results:
        engine_full = total / results["engine, full"][1]["seconds"]
        print(f"events/s, engine on all data vs baseline on its span: "
              f"{engine_full / (subset / naive_subset):.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
