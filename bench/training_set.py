"""Benchmark: training-set generation against Feast and DuckDB on the same data.

    python -m bench.training_set --labels 1000000 --feature-rows 10000000

Synthesizes, in a throwaway data directory, Delta feature tables for four declared
views on two entities (ad_performance and ad_profile on ad_id, member_ad_history
and member_profile on member_id) with Zipf-skewed entities: popular entities have a
row every hour (late corrections included), the long tail a few rows. Labels are
Zipf-skewed too (one ad gets about a tenth of them), so a range join explodes on the
popular entities.

Timed, in one Spark session with the same settings, each writing its result:
- platform: `build_training_set(..., output=<delta path>)`, with the default skew
  policy (no key here has the million label rows that make it hot) and with the hot
  ad split into time buckets anyway, to show what splitting costs at this size;
- Feast 0.67: `FeatureStore.get_historical_features(...).to_spark_df()` written to
  Delta. Its range join is quadratic in the rows of popular entities, so it runs on
  the first `--feast-labels` labels and is compared by labels per second (the
  platform is also timed on that same subset);
- DuckDB: `ASOF LEFT JOIN` per view over the same tables exported to Parquet, written
  to Parquet (feature rows deduplicated to the latest created per event time first,
  as an as-of join cannot break ties itself).

Reports medians over `--repeats` (after one warm-up run each; the two platform variants
take turns, as a Spark process keeps getting faster for a while), rates, ratios, peak
resident memory (driver process and JVM) per method, and checks that the three
agree row for row.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

START = datetime(2026, 1, 1)
HOURS = 30 * 24  # feature rows span 30 days of hourly rows
LABEL_DAYS = (8, 30)  # labels fall in days 8..30
VIEWS = ("ad_performance", "member_ad_history", "member_profile", "ad_profile")
FEATURES = [
    "ad_performance:ad_impressions_count_1d",
    "ad_performance:ad_clicks_count_7d",
    "ad_performance:ad_ctr_smoothed_7d",
    "member_ad_history:member_clicks_count_28d",
    "member_ad_history:placement_last_28d",
    "member_profile:country",
    "member_profile:plan",
    "ad_profile:bid_cpm",
    "ad_profile:category",
]
N_ADS = 20_000
N_MEMBERS = 200_000
SPARK_CONF = {
    "spark.master": "local[2]",
    "spark.driver.memory": "8g",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
}


# --------------------------------------------------------------------------- memory


class PeakMemory:
    """Samples the resident memory of this process (pandas, DuckDB) and of the Spark JVM."""

    def __init__(self, jvm_pid: int, interval: float = 0.1) -> None:
        self.jvm_pid, self.interval = jvm_pid, interval
        self.driver = self.jvm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me, jvm = psutil.Process(), psutil.Process(self.jvm_pid)
        while not self._stop.is_set():
            self.driver = max(self.driver, me.memory_info().rss)
            self.jvm = max(self.jvm, jvm.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- data


def rows_per_entity(entities: int, total: int, cap: int = HOURS, exponent: float = 1.0):
    """Zipf row counts (rank^-exponent), capped at one row per hour, summing to ~total."""
    ranks = np.arange(1, entities + 1, dtype=np.float64)
    lo, hi = 1.0, float(total)
    for _ in range(60):
        scale = (lo + hi) / 2
        counts = np.clip(np.floor(scale / ranks**exponent), 1, cap)
        lo, hi = (scale, hi) if counts.sum() < total else (lo, scale)
    return counts.astype(np.int64)


def write_feature_tables(spark, feature_rows: int) -> dict[str, int]:
    """Synthesize the four feature tables in Spark (no driver data); returns row counts."""
    from pyspark.sql import functions as F

    from features import REGISTRY
    from pipelines.delta_io import replace_where
    from pipelines.feature_tables import feature_table_schema

    shares = {"ad_performance": 0.40, "member_ad_history": 0.48, "member_profile": 0.11}
    counts: dict[str, int] = {}
    for name in VIEWS:
        view = REGISTRY.view(name)
        key = view.entity.join_key
        entities = N_ADS if key == "ad_id" else N_MEMBERS
        if name in shares:
            per_entity = rows_per_entity(entities, int(feature_rows * shares[name]))
        else:  # ad_profile: three versions per ad
            per_entity = np.full(entities, 3, dtype=np.int64)
        plan = spark.createDataFrame(
            pd.DataFrame({key: np.arange(1, entities + 1), "n": per_entity})
        )
        attribute = name.endswith("_profile")
        span = (HOURS + 400 * 24) if attribute else HOURS  # attributes: versions over a year
        rows = plan.select(key, "n", F.explode(F.sequence(F.lit(0), F.col("n") - 1)).alias("i"))
        offset = F.pmod(F.hash(F.col(key)), F.lit(1000)) / 1000.0
        hour = F.floor((F.col("i") + offset) * F.lit(span) / F.col("n")).cast("long")
        first = F.lit(START - timedelta(hours=span - HOURS))
        event = first + F.make_dt_interval(hours=hour.cast("int"))
        lag = F.make_dt_interval(secs=F.pmod(F.hash(key, "i"), F.lit(3000)))
        rows = rows.withColumn("event_timestamp", event).withColumn(
            "created_timestamp", event + lag
        )
        # About 2% of the rows get a late correction: same event time, created a day later.
        corrections = (
            rows.where(F.pmod(F.hash("i", key), F.lit(50)) == 0)
            .withColumn("created_timestamp", F.col("created_timestamp") + F.expr("INTERVAL 1 DAY"))
            .withColumn("i", F.col("i") + 1_000_000)
        )
        rows = rows.unionByName(corrections)
        schema = feature_table_schema(view)
        values = []
        for n, field in enumerate(schema.fields[3:-1]):
            seed = F.pmod(F.hash(key, "i", F.lit(n)), F.lit(1_000_000))
            kind = field.dataType.simpleString()
            if kind == "bigint":
                values.append((seed % 1000).cast("long").alias(field.name))
            elif kind == "double":
                values.append(((seed % 100000) / 100000.0).alias(field.name))
            elif kind == "string":
                values.append(F.concat(F.lit("v"), (seed % 20).cast("string")).alias(field.name))
            else:
                values.append(F.to_date(F.col("event_timestamp")).alias(field.name))
        table = rows.select(
            F.col(key).cast("long").alias(key),
            "event_timestamp",
            "created_timestamp",
            *values,
            F.to_date("event_timestamp").alias("event_date"),
        )
        # One file per date: the attribute tables span 430 days.
        table = table.repartition("event_date")
        replace_where(table, view.table, predicate="true", partition_by=("event_date",))
        counts[name] = spark.table(view.table).count()
    return counts


def zipf_sample(rng: np.random.Generator, entities: int, size: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, entities + 1) ** exponent
    return rng.choice(np.arange(1, entities + 1), size=size, p=weights / weights.sum())


def write_labels(spark, labels: int, table: str) -> None:
    from pipelines.delta_io import ensure_database

    rng = np.random.default_rng(20260101)
    span = (LABEL_DAYS[1] - LABEL_DAYS[0]) * 86400
    frame = pd.DataFrame(
        {
            "member_id": zipf_sample(rng, N_MEMBERS, labels, 0.8),
            "ad_id": zipf_sample(rng, N_ADS, labels, 1.1),
            "event_timestamp": pd.Timestamp(START + timedelta(days=LABEL_DAYS[0]))
            + pd.to_timedelta(rng.integers(0, span, labels), unit="s"),
            "clicked": (rng.random(labels) < 0.05).astype(np.int32),
        }
    )
    frame["label_id"] = np.arange(labels)
    df = spark.createDataFrame(frame)
    ensure_database(spark, table.split(".")[0])
    df.write.format("delta").mode("overwrite").saveAsTable(table)


# --------------------------------------------------------------------------- methods


def feast_store(spark, workdir: Path):
    """A Feast FeatureStore on the platform's Feast objects, registry in `workdir`."""
    from feast import FeatureStore, RepoConfig
    from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
        SparkOfflineStoreConfig,
    )

    from pipelines.feast_repo import feast_objects

    config = RepoConfig(
        project="bench_training_set",
        provider="local",
        registry=str(workdir / "registry.db"),
        offline_store=SparkOfflineStoreConfig(),
        online_store={"type": "sqlite", "path": str(workdir / "online.db")},
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    objects = feast_objects()
    wanted = {f"{v}_view" for v in VIEWS} | {"member_entity", "ad_entity"}
    store.apply([obj for name, obj in objects.items() if name in wanted])
    return store


def run_platform(spark, labels: str, output: str, split_hot_keys: bool = False) -> None:
    from pipelines.training import SkewPolicy, build_training_set

    # The default policy splits only keys with a million label rows or more; this one
    # also splits the hot ad (about 145 k labels), to show what splitting costs here.
    skew = SkewPolicy(min_hot_labels=100_000) if split_hot_keys else None
    build_training_set(spark, labels, FEATURES, output=output, skew=skew)


def run_feast(spark, store, labels: str, output: str) -> None:
    entity_df = spark.read.table(labels)
    job = store.get_historical_features(entity_df=entity_df, features=FEATURES)
    job.to_spark_df().write.format("delta").mode("overwrite").save(output)


def duckdb_query(parquet: Path, ttls: dict[str, int], label_limit: int | None) -> str:
    from features import REGISTRY

    by_view: dict[str, list[str]] = {}
    for ref in FEATURES:
        view, feature = ref.split(":")
        by_view.setdefault(view, []).append(feature)
    ctes, joins, selects = [], [], []
    for n, (view, features) in enumerate(by_view.items()):
        key = REGISTRY.view(view).entity.join_key
        cols = ", ".join(features)
        ctes.append(
            f"v{n} AS (SELECT {key}, event_timestamp AS ts{n}, {cols} "
            f"FROM read_parquet('{parquet}/{view}/*.parquet') "
            f"QUALIFY row_number() OVER (PARTITION BY {key}, event_timestamp "
            f"ORDER BY created_timestamp DESC) = 1)"
        )
        joins.append(
            f"ASOF LEFT JOIN v{n} ON l.{key} = v{n}.{key} AND l.event_timestamp >= v{n}.ts{n}"
        )
        fresh = (
            "TRUE"
            if ttls[view] == 0
            else (f"v{n}.ts{n} >= l.event_timestamp - INTERVAL {ttls[view]} SECOND")
        )
        selects += [f"CASE WHEN {fresh} THEN v{n}.{f} END AS {f}" for f in features]
    limit = f"WHERE label_id < {label_limit}" if label_limit else ""
    return (
        f"WITH labels AS (SELECT * FROM read_parquet('{parquet}/labels/*.parquet') {limit}), "
        + ", ".join(ctes)
        + " SELECT l.*, "
        + ", ".join(selects)
        + " FROM labels l "
        + " ".join(joins)
    )


def run_duckdb(query: str, output: Path) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET threads = {os.cpu_count() or 2}")
    con.execute(f"COPY ({query}) TO '{output}' (FORMAT parquet)")
    con.close()


# --------------------------------------------------------------------------- harness


@dataclass
class Measured:
    name: str
    labels: int
    seconds: list[float]
    driver_peak: int
    jvm_peak: int

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        return self.labels / self.median


def measure(name: str, labels: int, repeats: int, jvm_pid: int, run: Callable[[], Any]) -> Measured:
    return measure_alternating([(name, run)], labels, repeats, jvm_pid)[0]


def measure_alternating(
    methods: list[tuple[str, Callable[[], Any]]], labels: int, repeats: int, jvm_pid: int
) -> list[Measured]:
    """Medians after one warm-up run each (JIT, Delta log caches, Feast registry). Methods
    compared with each other take turns, so a process still warming up favours none of
    them; their memory peaks are shared."""
    for _, run in methods:
        run()
    seconds: list[list[float]] = [[] for _ in methods]
    with PeakMemory(jvm_pid) as peak:
        for _ in range(repeats):
            for n, (_, run) in enumerate(methods):
                started = time.perf_counter()
                run()
                seconds[n].append(time.perf_counter() - started)
    results = []
    for (name, _), times in zip(methods, seconds, strict=True):
        result = Measured(name, labels, times, peak.driver, peak.jvm)
        print(
            f"  {name:<28} {result.median:8.2f} s  ({', '.join(f'{t:.1f}' for t in times)})",
            flush=True,
        )
        results.append(result)
    return results


def mismatches(spark, a, b) -> int:
    columns = [c for c in a.columns if c in b.columns]
    a, b = a.select(*columns), b.select(*columns)
    return a.exceptAll(b).count() + b.exceptAll(a).count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--feature-rows", type=int, default=10_000_000)
    parser.add_argument("--feast-labels", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-training-set-"))
    os.environ["FEATURE_PLATFORM_DATA_DIR"] = str(workdir / "data")
    from pyspark.sql import functions as F

    from features import REGISTRY
    from pipelines.spark import get_spark

    spark = get_spark("bench-training-set", extra_conf=SPARK_CONF)
    jvm_pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
    try:
        started = time.perf_counter()
        counts = write_feature_tables(spark, args.feature_rows)
        write_labels(spark, args.labels, "bench.labels")
        subset = "bench.labels_subset"
        spark.table("bench.labels").where(F.col("label_id") < args.feast_labels).write.format(
            "delta"
        ).mode("overwrite").saveAsTable(subset)
        parquet = workdir / "parquet"
        for view in VIEWS:
            spark.table(f"features.{view}").write.parquet(str(parquet / view))
        spark.table("bench.labels").write.parquet(str(parquet / "labels"))
        print(
            f"generated in {time.perf_counter() - started:.0f} s: labels {args.labels:,}; "
            + ", ".join(f"{k} {v:,}" for k, v in counts.items())
            + f" (total {sum(counts.values()):,} feature rows)",
            flush=True,
        )
        hot = spark.table("bench.labels").groupBy("ad_id").count().orderBy(F.desc("count")).first()
        print(f"hottest ad: {hot['ad_id']} with {hot['count']:,} labels", flush=True)

        store = feast_store(spark, workdir)
        ttls = {v: int(REGISTRY.view(v).effective_ttl.total_seconds()) for v in VIEWS}
        out = workdir / "out"
        n_sub = min(args.feast_labels, args.labels)
        print("timing (median of repeats, after a warm-up run):", flush=True)
        rows = [
            *measure_alternating([
                ("platform, all labels",
                 lambda: run_platform(spark, "bench.labels", str(out / "platform"))),
                ("platform, hot ad split",
                 lambda: run_platform(spark, "bench.labels", str(out / "platform_split"), True)),
            ], args.labels, args.repeats, jvm_pid),
            measure("duckdb, all labels", args.labels, args.repeats, jvm_pid,
                    lambda: run_duckdb(duckdb_query(parquet, ttls, None), out / "duckdb.parquet")),
            measure(f"platform, {n_sub:,} labels", n_sub, args.repeats, jvm_pid,
                    lambda: run_platform(spark, subset, str(out / "platform_subset"))),
            measure(f"feast, {n_sub:,} labels", n_sub, args.repeats, jvm_pid,
                    lambda: run_feast(spark, store, subset, str(out / "feast_subset"))),
            measure(f"duckdb, {n_sub:,} labels", n_sub, args.repeats, jvm_pid,
                    lambda: run_duckdb(duckdb_query(parquet, ttls, n_sub), out / "duckdb_subset.parquet")),
        ]  # fmt: skip
        platform, split, duck, platform_sub, feast, duck_sub = rows

        print("\nagreement (rows differing, counted both ways):", flush=True)
        read_delta = spark.read.format("delta").load
        print(
            f"  platform vs duckdb, all labels : "
            f"{mismatches(spark, read_delta(str(out / 'platform')), spark.read.parquet(str(out / 'duckdb.parquet')))}"
        )
        print(f"  platform, hot ad split vs not  : "
              f"{mismatches(spark, read_delta(str(out / 'platform')), read_delta(str(out / 'platform_split')))}")  # fmt: skip
        print(f"  platform vs feast, subset      : "
              f"{mismatches(spark, read_delta(str(out / 'platform_subset')), read_delta(str(out / 'feast_subset')))}")  # fmt: skip

        print(
            f"\n{'method':<28} {'labels':>10} {'median s':>9} {'labels/s':>10} "
            f"{'driver peak':>12} {'JVM peak':>10}"
        )
        for r in rows:
            print(
                f"{r.name:<28} {r.labels:>10,} {r.median:>9.2f} {r.rate:>10,.0f} "
                f"{r.driver_peak / 2**30:>10.2f} G {r.jvm_peak / 2**30:>8.2f} G"
            )
        print("\nratios:")
        print(
            f"  platform vs feast (same {n_sub:,} labels, time)  : "
            f"{feast.median / platform_sub.median:.1f}x faster"
        )
        print(
            f"  platform vs feast (labels/s, platform on all)  : "
            f"{platform.rate / feast.rate:.1f}x faster"
        )
        print(
            f"  hot ad split / not split (all labels, time)    : "
            f"{split.median / platform.median:.2f}x"
        )
        print(
            f"  platform / duckdb (all labels, time)           : "
            f"{platform.median / duck.median:.2f}x"
        )
        print(
            f"  platform / duckdb ({n_sub:,} labels, time)       : "
            f"{platform_sub.median / duck_sub.median:.2f}x"
        )
    finally:
        spark.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"data kept in {workdir}")


if __name__ == "__main__":
    main()
