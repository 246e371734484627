"""Benchmark: online read latency of a feature service, through Feast against raw Redis reads.

    python -m bench.online_latency --requests 2000
    python -m bench.online_latency --service all    # every feature of every view (52)

Registers the platform's Feast repo in a throwaway data directory, writes values
for every view of `--service` (default ctr_model: 5 views, 29 features, keyed by
member and ad) for `--members` x `--ads` entities with the platform's writer, and
times single requests of 1 and of 100 entity rows:

- platform OnlineReader: `pipelines.serving.direct.OnlineReader.get`, the serving
  path (reads Feast's layout directly: one HMGET per entity hash, protobuf decode);
- platform get_online_features: `pipelines.serving.online.get_online_features`
  (Feast underneath, plus checks and column order);
- Feast: `FeatureStore.get_online_features(service).to_dict()`;
- raw pipelined HMGET: the same HMGET commands Feast sends (one per view and entity
  row, in one pipeline), bytes only, no decoding;
- raw HMGET per hash: one HMGET per entity hash (all the fields a row needs from it);
- OnlineReader with request logging on (`--log-sample`, default every row) against the
  same reader without, requests alternating between the two so both see the same
  machine: the logged reader buffers the sampled rows and a background thread writes
  them to Parquet while requests go on.

Reports p50 and p99 over `--requests` requests after a warm-up, in one process,
against one local redis-server. After start-up the process freezes its objects
out of the garbage collector (`online.freeze_startup_objects`, as a serving process
should); `--no-gc-freeze` measures without, where full collections dominate p99.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

WHEN = datetime(2031, 1, 1, tzinfo=UTC)


def synthetic_table(view, keys: list[int], rng: random.Random):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    columns: dict[str, Any] = {
        view.entity.join_key: pa.array(keys, pa.int64()),
        "event_timestamp": pa.array([WHEN] * len(keys), pa.timestamp("us", "UTC")),
        "created_timestamp": pa.array([WHEN] * len(keys), pa.timestamp("us", "UTC")),
    }
    for feature in view.features:
        if feature.value_type == "int64":
            columns[feature.name] = pa.array([rng.randint(0, 10**6) for _ in keys], pa.int64())
        elif feature.value_type == "float64":
            columns[feature.name] = pa.array([rng.random() for _ in keys], pa.float64())
        elif feature.value_type == "date":
            columns[feature.name] = pa.array([WHEN.date()] * len(keys), pa.date32())
        else:
            columns[feature.name] = pa.array([rng.choice("abcdef") * 5 for _ in keys])
    return pa.table(columns)


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) / 1e6, p99 / 1e6


def measure(
    call: Callable[[list[dict]], object], batches: list[list[dict]], warmup: int
) -> tuple[float, float]:
    for rows in batches[:warmup]:
        call(rows)
    samples = []
    for rows in batches[warmup:]:
        began = time.perf_counter_ns()
        call(rows)
        samples.append(time.perf_counter_ns() - began)
    return percentiles(samples)


def measure_alternating(
    calls: list[Callable[[list[dict]], object]], batches: list[list[dict]], warmup: int
) -> list[tuple[float, float]]:
    """Each request through every call in turn (same rows, same moment), percentiles per call."""
    samples: list[list[int]] = [[] for _ in calls]
    for n, rows in enumerate(batches):
        for call, own in zip(calls, samples, strict=True):
            began = time.perf_counter_ns()
            call(rows)
            if n >= warmup:
                own.append(time.perf_counter_ns() - began)
    return [percentiles(own) for own in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--service", default="ctr_model", help="a feature service, or 'all' for every feature"
    )
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--ads", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--no-gc-freeze", action="store_true", help="skip gc.freeze() after start-up"
    )
    parser.add_argument(
        "--log-sample", type=float, default=1.0, help="share of entity rows the logged reader logs"
    )
    args = parser.parse_args()

    warnings.filterwarnings("ignore", message="The spark", category=RuntimeWarning)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-online-"))
    os.environ["FEATURE_PLATFORM_DATA_DIR"] = str(data_dir)

    from features import REGISTRY
    from pipelines.feast_repo import feast_objects
    from pipelines.redis_server import RedisServer, redis_client
    from pipelines.serving.direct import OnlineReader
    from pipelines.serving.encoding import encode_entity_keys
    from pipelines.serving.materialize import layout_for
    from pipelines.serving.online import freeze_startup_objects, get_online_features
    from pipelines.serving.redis_writer import write_table
    from pipelines.serving.store import feature_store, repo_settings

    rng = random.Random(7)
    project = repo_settings().project
    wanted: str | list[str] = args.service
    if args.service == "all":
        wanted = [f"{v.name}:{f.name}" for v in REGISTRY.views for f in v.features]
    resolved = REGISTRY.resolve(wanted)
    key_counts = {"member_id": args.members, "ad_id": args.ads, "title_id": args.ads}
    results: list[tuple[str, int, float, float]] = []
    logging: dict[int, float] = {}

    with RedisServer(data_dir / "redis") as server:
        os.environ["REDIS_URL"] = server.url
        store = feature_store(server.url)
        store.apply(list(feast_objects().values()))
        layouts = {}
        for view_name in resolved:
            view = REGISTRY.view(view_name)
            layouts[view_name] = layout_for(view, project)
            keys = list(range(1, key_counts[view.entity.join_key] + 1))
            write_table(server.url, layouts[view_name], synthetic_table(view, keys, rng))
        join_keys = sorted({REGISTRY.view(v).entity.join_key for v in resolved})
        service: Any = (
            store.get_feature_service(args.service) if isinstance(wanted, str) else wanted
        )
        reader = OnlineReader(wanted, redis_url=server.url)
        log = None
        logged_reader = None
        if isinstance(wanted, str):
            from pipelines.serving.request_log import RequestLog

            log = RequestLog(wanted, sample=args.log_sample, flush_seconds=1.0)
            logged_reader = OnlineReader(wanted, redis_url=server.url, log=log)
        client = redis_client(server.url)

        def feast_call(rows: list[dict]) -> object:
            columns = {k: [r[k] for r in rows] for k in join_keys}
            return store.get_online_features(features=service, entity_rows=columns).to_dict()

        def hmget_commands(rows: list[dict]) -> list[tuple[bytes, list[bytes]]]:
            import pyarrow as pa

            commands = []
            for view_name, names in resolved.items():
                layout = layouts[view_name]
                wanted = [
                    h
                    for (n, _), h in zip(layout.features, layout.field_hashes, strict=True)
                    if n in names
                ]
                wanted.append(layout.ts_field)
                keys = encode_entity_keys(
                    layout, pa.array([r[layout.join_key] for r in rows], pa.int64())
                )
                commands += [(key, wanted) for key in keys.to_pylist()]
            return commands

        def raw_pipelined(rows: list[dict]) -> object:
            with client.pipeline(transaction=False) as pipe:
                for key, fields in hmget_commands(rows):
                    pipe.hmget(key, fields)
                return pipe.execute()

        def per_hash(rows: list[dict]) -> object:
            merged: dict[bytes, list[bytes]] = {}
            for key, fields in hmget_commands(rows):
                merged.setdefault(key, []).extend(fields)
            with client.pipeline(transaction=False) as pipe:
                for key, fields in merged.items():
                    pipe.hmget(key, fields)
                return pipe.execute()

        methods: dict[str, Callable[[list[dict]], object]] = {
            "platform OnlineReader (direct)": reader.get,
            "platform get_online_features": lambda rows: get_online_features(
                wanted, rows, store=store
            ),
            "Feast FeatureStore.get_online_features": feast_call,
            "raw pipelined HMGET (Feast's commands)": raw_pipelined,
            "raw HMGET per hash": per_hash,
        }
        if not args.no_gc_freeze:
            freeze_startup_objects()  # what a serving process does once warm
        for batch in (1, 100):
            batches = [
                [{k: rng.randint(1, key_counts[k]) for k in join_keys} for _ in range(batch)]
                for _ in range(args.warmup + args.requests)
            ]
            for label, call in methods.items():
                p50, p99 = measure(call, batches, args.warmup)
                results.append((label, batch, p50, p99))
                print(f"  {label}, {batch} rows: p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)
            if logged_reader is not None:
                off, on = measure_alternating([reader.get, logged_reader.get], batches, args.warmup)
                for label, (p50, p99) in (
                    ("OnlineReader, logging off (alternating)", off),
                    (f"OnlineReader, logging {args.log_sample:.0%} (alternating)", on),
                ):
                    results.append((label, batch, p50, p99))
                    print(f"  {label}, {batch} rows: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
                logging[batch] = on[1] / off[1]
        client.close()
        if log is not None:
            log.close()
            print(f"  request log: {log.logged:,} rows written, {log.dropped:,} dropped")

    features = sum(len(n) for n in resolved.values())
    print()
    print(
        f"service {args.service}: {len(resolved)} views, {features} features; "
        f"{args.requests} requests per row after {args.warmup} warm-up; "
        f"gc.freeze {'off' if args.no_gc_freeze else 'on'}; cores: {os.cpu_count()}"
    )
    print(f"{'method':<42}{'rows':>5}{'p50 ms':>9}{'p99 ms':>9}{'p99 vs raw pipelined':>22}")
    raw = {b: p99 for label, b, _, p99 in results if label.startswith("raw pipelined")}
    for label, batch, p50, p99 in results:
        print(f"{label:<42}{batch:>5}{p50:>9.2f}{p99:>9.2f}{p99 / raw[batch]:>21.2f}x")
    for batch, ratio in logging.items():
        print(f"request logging on / off, {batch} rows: p99 {ratio:.2f}x")


if __name__ == "__main__":
    main()
