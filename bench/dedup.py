"""Benchmark: what finding duplicates by identity costs per hourly ingest, at 10 M events.

    python -m bench.dedup --data-dir /tmp/hb/data --hours 4

Uses the feature-compute benchmark's generated data (`bench.feature_compute --data-dir DIR`:
raw and clean tables of about 10 M events over 28 days): its Delta tables are copied to a
scratch directory and registered there, so the original stays as it is. Builds the
accepted-id index once (timed) if the data has none, then, for `--hours` busy hours of the
last day, reads the hour's arrived rows once (cached, as ingest does) and times four ways to
find which of its ids were accepted before the hour, each counting the ids it finds:

- index: what `ingest` does, a semi-join of the hour's ids with the days of
  `clean.accepted_ids` that they name (`features.IdDay`);
- whole index: the same against all of the index (the rule before id days);
- full scan: the same against the id column of every clean event table's whole history;
- event days (the first rule): only clean rows on the hour's own event days, which misses
  a redelivery whose event time moved to another day.

and the whole hourly `ingest` (which rewrites the hour it reruns: same rows). Prints
medians per hour.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, timedelta
from pathlib import Path

from bench.feature_compute import SPARK_CONF, START
from bench.hourly_run import copy_sources, register_sources


def _timed(body, *args) -> tuple[float, int]:
    began = time.perf_counter()
    found = body(*args)
    return time.perf_counter() - began, found


def _dir_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*.parquet")]
    return len(files), sum(p.stat().st_size for p in files)


def _index_lookup(spark, batches: dict, sizes: dict, id_days: dict | None, hour) -> int:
    from features.sources import EVENT_SOURCES
    from pipelines.ingest.job import already_accepted

    total = 0
    for source in EVENT_SOURCES:
        name = source.name
        days = None if id_days is None else id_days[name]
        seen = already_accepted(
            spark, "clean.accepted_ids", source, batches[name], sizes[name], hour, days
        )
        total += 0 if seen is None else seen.count()
    return total


def by_index(spark, batches: dict, sizes: dict, id_days: dict, hour) -> int:
    return _index_lookup(spark, batches, sizes, id_days, hour)


def by_whole_index(spark, batches: dict, sizes: dict, id_days: dict, hour) -> int:
    return _index_lookup(spark, batches, sizes, None, hour)


def _history_lookup(spark, batches: dict, hour, on_event_days: bool) -> int:
    from pyspark.sql import functions as F

    from features.sources import EVENT_SOURCES

    total = 0
    before = hour.start.replace(tzinfo=None)
    for source in EVENT_SOURCES:
        key = str(source.id_column)
        history = spark.table(f"clean.{source.name}").where(F.col("ingestion_timestamp") < before)
        if on_event_days:
            days = batches[source.name].agg(F.min("event_date"), F.max("event_date")).first()
            if days is None or days[0] is None:
                continue
            history = history.where(F.col("event_date").between(days[0], days[1]))
        ids = batches[source.name].select(key).where(F.col(key).isNotNull()).distinct()
        total += history.join(F.broadcast(ids), key, "left_semi").count()
    return total


def by_full_scan(spark, batches: dict, sizes: dict, id_days: dict, hour) -> int:
    return _history_lookup(spark, batches, hour, on_event_days=False)


def by_event_days(spark, batches: dict, sizes: dict, id_days: dict, hour) -> int:
    return _history_lookup(spark, batches, hour, on_event_days=True)


WAYS = {
    "index": by_index,
    "whole index": by_whole_index,
    "full scan": by_full_scan,
    "event days": by_event_days,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="a bench.feature_compute data dir")
    parser.add_argument("--days", type=int, default=28, help="days of events in the data")
    parser.add_argument("--hours", type=int, default=4)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-dedup-"))
    data = copy_sources(args.data_dir, scratch / "data")
    os.environ["FEATURE_PLATFORM_DATA_DIR"] = str(data)
    from pyspark.sql import functions as F

    from features.sources import EVENT_SOURCES
    from pipelines.ingest import ingest
    from pipelines.ingest.job import batch_facts, ensure_accepted_ids
    from pipelines.interval import Interval
    from pipelines.spark import get_spark

    spark = get_spark("bench-dedup", extra_conf=SPARK_CONF)
    try:
        register_sources(spark, data)
        history = sum(spark.table(f"clean.{s.name}").count() for s in EVENT_SOURCES)
        began = time.perf_counter()
        ensure_accepted_ids(spark)
        built = time.perf_counter() - began
        files, size = _dir_size(data / "warehouse" / "clean.db" / "accepted_ids")
        print(
            f"history: {history:,} clean events; accepted-id index built once in {built:.1f} s "
            f"({files} files, {size / 2**20:.0f} MiB)",
            flush=True,
        )
        last_day = START.replace(tzinfo=UTC) + timedelta(days=args.days - 1)
        # The evening peak of the last day, plus one warm-up hour before it.
        first = last_day + timedelta(hours=19 - 1)
        rows: dict[str, list[float]] = {name: [] for name in [*WAYS, "ingest"]}
        found: dict[str, list[int]] = {name: [] for name in WAYS}
        arrived_per_hour = []
        for n in range(args.hours + 1):
            hour = Interval(first + timedelta(hours=n), first + timedelta(hours=n + 1))
            lower = hour.start.replace(tzinfo=None)
            batches = {
                s.name: spark.table(f"raw.{s.name}").where(
                    (F.col("ingestion_timestamp") >= lower)
                    & (F.col("ingestion_timestamp") < hour.end.replace(tzinfo=None))
                )
                for s in EVENT_SOURCES
            }
            # Ingest reads the hour's raw rows once: each way below starts from them.
            batches = {name: df.cache() for name, df in batches.items()}
            # What ingest learns of the batch in its one pass: size and the days its ids name.
            facts = batch_facts(batches)
            sizes = {name: fact.rows for name, fact in facts.items()}
            id_days = {name: fact.id_days for name, fact in facts.items()}

            timings = {
                name: _timed(way, spark, batches, sizes, id_days, hour)
                for name, way in WAYS.items()
            }
            for df in batches.values():
                df.unpersist()
            began = time.perf_counter()
            ingest(spark, start=hour.start, end=hour.end)
            whole = time.perf_counter() - began
            if n == 0:
                continue  # warm-up
            arrived_per_hour.append(sum(sizes.values()))
            for name, (seconds, ids) in timings.items():
                rows[name].append(seconds)
                found[name].append(ids)
            rows["ingest"].append(whole)
            print(
                f"{hour}: {sum(sizes.values()):,} arrived; "
                + ", ".join(f"{k} {v[0]:.2f} s ({v[1]} ids)" for k, v in timings.items())
                + f"; ingest {whole:.1f} s",
                flush=True,
            )
        files, size = _dir_size(data / "warehouse" / "clean.db" / "accepted_ids")
        print()
        print(
            f"cores: {os.cpu_count()}, Spark local[2], {history:,} events of history, "
            f"median {statistics.median(arrived_per_hour):,.0f} arrivals per hour; "
            f"medians of {args.hours} hours; index now {files} files, {size / 2**20:.0f} MiB"
        )
        print(f"{'duplicate lookup':<22}{'seconds':>9}{'vs index':>10}{'ids found':>11}")
        base = statistics.median(rows["index"])
        for name in WAYS:
            median = statistics.median(rows[name])
            ids = statistics.median(found[name])
            print(f"{name:<22}{median:>9.2f}{median / base:>9.1f}x{ids:>11,.0f}")
        print(f"{'whole hourly ingest':<22}{statistics.median(rows['ingest']):>9.2f}")
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
