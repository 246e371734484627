"""Benchmark: materialization throughput into Redis, the platform's path against Feast's engines.

    python -m bench.materialize --entities 1000000 --features 40

Writes a synthetic wide feature table (`--entities` rows, one per entity, with
`--features` columns: float64, int64 and string) to Delta in a throwaway data
directory, starts a throwaway redis-server, and measures, in one process:

- platform: `pipelines.serving.materialize` (Spark executors encode column-wise and
  pipeline HGET/HSET straight to Redis), on all entities; and again into a local
  Redis Cluster of `--cluster-nodes` primaries (0 skips it) on the same machine,
  where the nodes share the cores with Spark, so it shows the cost of routing by
  slot, not the gain of more machines;
- Feast `local` engine and Feast `spark.engine`: `FeatureStore.materialize` on the
  first `--feast-entities` entities (they are too slow for all of them; the local
  engine, which pulls the table into this process, was killed by the kernel's OOM
  killer at 19.5 GB resident on 1 M x 40), with the
  platform also timed on that subset;
- raw HSET: the ceiling, a redis-py pipeline (1 000 entities per round trip) of
  HSETs whose keys and values were encoded beforehand, on `--raw-entities`.

Redis is emptied before every run, so each run inserts. Its RDB snapshots are off
(`--keep-snapshots` leaves the server's `save` points on): a background save forks
and writes the whole dataset, and it would land in the long runs (the platform on
all entities) and not in the short ones. Medians of `--repeats` runs after one
warm-up run of each method; ratios are entities per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2031, 1, 1, tzinfo=UTC)
END = START + timedelta(days=1)
PROJECT = "bench"
SPARK_CONF = {
    "spark.master": "local[2]",
    "spark.driver.memory": "6g",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
}


def wide_views(features: int):  # type: ignore[no-untyped-def]
    """Two declared attribute views with the same columns: all entities, and the Feast subset."""
    from features import AttributeView, DimensionSource
    from features.entities import member

    kinds = ("float64", "int64", "float64", "int64", "string")
    columns = {f"f{i:02d}_{kinds[i % 5]}": kinds[i % 5] for i in range(features)}
    source = DimensionSource(
        "bench_wide",
        key_column="member_id",
        columns={"member_id": "int64", **columns},
    )
    return tuple(
        AttributeView(name, entity=member, source=source, attributes=tuple(columns))
        for name in ("bench_wide", "bench_wide_subset")
    )


def write_table(spark, view, entities: int) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    from pipelines.delta_io import replace_where

    seconds = int((END - START).total_seconds())
    event = F.expr(f"TIMESTAMP '{START:%Y-%m-%d %H:%M:%S}'") + F.make_interval(
        secs=(F.col("id") * 7919 % seconds).cast("int")
    )
    cols = [F.col("id").alias("member_id"), event.alias("event_timestamp")]
    # An attribute version's shape: known at the end of the hour it arrived in.
    cols.append(
        (F.date_trunc("HOUR", event) + F.expr("INTERVAL 1 HOUR")).alias("created_timestamp")
    )
    for i, feature in enumerate(view.features):
        if feature.value_type == "float64":
            value = F.rand(seed=i) * 1000.0
        elif feature.value_type == "int64":
            value = (F.col("id") * (i + 13) % 1_000_003).cast("long")
        else:
            value = F.element_at(
                F.array(*[F.lit(s) for s in ("tv", "mobile", "web", "tablet")]),
                (F.col("id") % 4 + 1).cast("int"),
            )
        cols.append(value.alias(feature.name))
    df = spark.range(entities).select(*cols).withColumn("event_date", F.to_date("event_timestamp"))
    replace_where(df, view.table, predicate="true")


def feast_store(view, redis_url: str, engine: str, registry: Path):  # type: ignore[no-untyped-def]
    from feast import FeatureStore, RepoConfig
    from feast.repo_config import RegistryConfig

    from pipelines.feast_repo import feast_entity, feast_view
    from pipelines.redis_server import feast_connection_string

    config = RepoConfig(
        project=PROJECT,
        provider="local",
        registry=RegistryConfig(registry_type="file", path=str(registry)),
        offline_store={"type": "spark"},
        online_store={"type": "redis", "connection_string": feast_connection_string(redis_url)},
        batch_engine={"type": engine},
        entity_key_serialization_version=3,
        repo_path=str(registry.parent),
    )
    store = FeatureStore(config=config)
    store.apply([feast_entity(view.entity), feast_view(view)])
    return store


def raw_hset_commands(spark, view, entities: int) -> list[tuple[bytes, dict[bytes, bytes]]]:  # type: ignore[no-untyped-def]
    """Keys and field values already encoded (collected to the driver for the ceiling only)."""
    from pipelines.serving.encoding import (
        encode_entity_keys,
        encode_event_timestamps,
        encode_values,
    )
    from pipelines.serving.materialize import layout_for

    layout = layout_for(view, PROJECT)
    table = spark.table(view.table).limit(entities).toArrow()
    keys = encode_entity_keys(layout, table.column("member_id")).to_pylist()
    stamps = encode_event_timestamps(table.column("event_timestamp")).to_pylist()
    values = [
        encode_values(table.column(name), value_type).to_pylist()
        for name, value_type in layout.features
    ]
    commands = []
    for i, key in enumerate(keys):
        mapping = {layout.ts_field: stamps[i]}
        for field, column in zip(layout.field_hashes, values, strict=True):
            mapping[field] = column[i]
        commands.append((key, mapping))
    return commands


def run_raw_hset(redis_url: str, commands: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
    from pipelines.redis_server import redis_client

    client = redis_client(redis_url)
    for start in range(0, len(commands), 1000):
        with client.pipeline(transaction=False) as pipe:
            for key, mapping in commands[start : start + 1000]:
                pipe.hset(key, mapping=mapping)
            pipe.execute()
    client.close()


def timed(label: str, repeats: int, flush: Callable[[], None], body: Callable[[], None]) -> float:
    """Median wall seconds of `repeats` runs, each on an empty Redis, after one warm-up run."""
    flush()
    body()
    seconds = []
    for _ in range(repeats):
        flush()
        began = time.perf_counter()
        body()
        seconds.append(time.perf_counter() - began)
        print(f"  {label}: {seconds[-1]:.1f} s", flush=True)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--feast-entities", type=int, default=20_000)
    parser.add_argument("--raw-entities", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cluster-nodes", type=int, default=3)
    parser.add_argument("--keep-snapshots", action="store_true", help="leave RDB saves on")
    args = parser.parse_args()

    warnings.filterwarnings("ignore", message="The spark", category=RuntimeWarning)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-materialize-"))
    os.environ["FEATURE_PLATFORM_DATA_DIR"] = str(data_dir)
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Feast's spark.engine workers

    from pipelines.interval import Interval
    from pipelines.redis_server import RedisServer, redis_client, running_redis_cluster
    from pipelines.serving.materialize import materialize_view
    from pipelines.spark import get_spark

    interval = Interval(START, END)
    full, subset = wide_views(args.features)
    subset_n = min(args.feast_entities, args.entities)
    raw_n = min(args.raw_entities, args.entities)
    results: list[tuple[str, int, float]] = []

    with RedisServer(data_dir / "redis") as server:
        url = server.url
        client = redis_client(url)
        if not args.keep_snapshots:
            client.config_set("save", "")

        def flush() -> None:
            client.flushall()

        spark = get_spark("bench-materialize", extra_conf=SPARK_CONF)
        began = time.perf_counter()
        write_table(spark, full, args.entities)
        write_table(spark, subset, subset_n)
        print(
            f"data: {args.entities:,} entities x {args.features} features in {data_dir} "
            f"({time.perf_counter() - began:.0f} s)",
            flush=True,
        )

        def platform(view):  # type: ignore[no-untyped-def]
            return lambda: materialize_view(spark, view, interval, redis_url=url, project=PROJECT)

        wall = timed("platform, all entities", args.repeats, flush, platform(full))
        results.append(("platform (Spark executors, column-wise)", args.entities, wall))
        wall = timed("platform, subset", args.repeats, flush, platform(subset))
        results.append(("platform on the Feast subset", subset_n, wall))

        if args.cluster_nodes:
            nodes = args.cluster_nodes
            with running_redis_cluster(data_dir / "cluster", nodes) as cluster_url:
                cluster = redis_client(cluster_url)
                if not args.keep_snapshots:
                    for node in cluster.get_primaries():
                        cluster.get_redis_connection(node).config_set("save", "")

                def flush_cluster() -> None:
                    cluster.flushall()

                def into_cluster() -> None:
                    materialize_view(spark, full, interval, redis_url=cluster_url, project=PROJECT)

                wall = timed(
                    f"platform, {nodes}-node cluster", args.repeats, flush_cluster, into_cluster
                )
                results.append((f"platform into a {nodes}-node Redis Cluster", args.entities, wall))
                sizes = [
                    cluster.get_redis_connection(node).dbsize() for node in cluster.get_primaries()
                ]
                assert sum(sizes) == args.entities and min(sizes) > 0, sizes  # every node got some
                cluster.close()

        for engine in ("local", "spark.engine"):
            store = feast_store(subset, url, engine, data_dir / f"feast-{engine}" / "registry.db")

            def feast_run(store=store) -> None:  # type: ignore[no-untyped-def]
                store.materialize(START, END - timedelta(microseconds=1), [subset.name])

            wall = timed(f"Feast {engine}, subset", args.repeats, flush, feast_run)
            results.append((f"Feast {engine} engine", subset_n, wall))

        commands = raw_hset_commands(spark, full, raw_n)
        wall = timed("raw HSET", args.repeats, flush, lambda: run_raw_hset(url, commands))
        results.append(("raw pipelined HSET (pre-encoded)", raw_n, wall))
        spark.stop()

    rate = {label: n / wall for label, n, wall in results}
    feast_local, raw = "Feast local engine", "raw pipelined HSET (pre-encoded)"
    print()
    print(
        f"cores: {os.cpu_count()}, Spark local[2], {args.features} features, "
        f"medians of {args.repeats} runs after a warm-up, Redis emptied before each run"
    )
    print(
        f"{'method':<42}{'entities':>10}{'seconds':>9}{'entities/s':>12}"
        f"{'vs Feast local':>16}{'vs raw HSET':>13}"
    )
    for label, n, wall in results:
        print(
            f"{label:<42}{n:>10,}{wall:>9.1f}{rate[label]:>12,.0f}"
            f"{rate[label] / rate[feast_local]:>15.1f}x{rate[label] / rate[raw]:>12.2f}x"
        )


if __name__ == "__main__":
    main()
