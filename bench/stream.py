"""Benchmark: freshness of the real-time path, from an event produced to its value readable in Redis.

    python -m bench.stream --scale 128 --seconds 60 --rates 1000 5000 20000

A data directory of its own, with its own Redis and Kafka. Two evening hours of the
generator's world at `--scale` are generated, ingested and computed as the hourly
pipeline does (the state the stream starts from). Then, per rate, the following traffic
is published through Kafka in arrival order (`replay`, paced to that many events per
second) for `--seconds` of wall time, while the stream (`feature-platform stream`'s
query, a micro-batch every second) lands it and writes fresh values to Redis.

Freshness of an event published at wall time p: the stream writes, at each micro-batch's
instant, the value of every entity touched since the last one, so the event's value is
readable at the first wall time W at which the stream's instant has passed the event's
arrival; freshness = W - p. Reported per rate: p50 and p99 over all events, the
micro-batches, and the time the stream took to catch up once the traffic stopped (a
growing lag shows there, and in a p99 near the run's length). A rate is sustained when
the stream ran at least three micro-batches while the traffic lasted and caught up within
two more once it stopped.

The anchor, in the same run on the same events: Feast's own stream path. A Kafka consumer
polls the same traffic (re-published, same pacing, to topics of its own) and pushes what
it got every 200 ms with `store.push(..., to=PushMode.ONLINE)` into push-source feature
views of the events' raw values (Feast pushes precomputed values: it aggregates nothing,
keeps no window and drops nothing late). Its freshness is push return - publish time.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

HISTORY_START = datetime(2026, 11, 5, 16, tzinfo=UTC)
TRAFFIC_START = HISTORY_START + timedelta(hours=2)
TRIGGER_SECONDS = 1.0
PUSH_EVERY_S = 0.2
ANCHOR_TOPIC_PREFIX = "bench.feast_push."


@dataclass
class Run:
    rate: float  # events per second asked for
    events: int = 0
    published_seconds: float = 0.0
    freshness: list[float] = field(default_factory=list)
    batches: int = 0
    catch_up: float | None = None  # seconds after the traffic stopped; None: never
    cycle: float = 0.0  # median seconds between updates

    @property
    def achieved(self) -> float:
        return self.events / self.published_seconds if self.published_seconds else 0.0


@dataclass(frozen=True)
class Traffic:
    """One rate's paced replay: the same events for the stream and for the anchor."""

    servers: str
    rate: float
    speed: float
    start: datetime
    end: datetime
    config: Any
    ordered: list  # the interval's arrival order, generated once

    def publish(self, on_start: Any, topics: dict[str, str] | None = None) -> Any:
        from pipelines.streaming.publish import publish

        return publish(
            self.servers,
            start=self.start,
            end=self.end,
            speed=self.speed,
            config=self.config,
            topics=topics,
            on_start=on_start,
            ordered=self.ordered,
        )

    def published_at(self, began: float, arrived: datetime) -> float:
        return began + (arrived - self.start).total_seconds() / self.speed


def _quantile(values: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(values), q)) if values else float("nan")


def _usable_arrivals(ordered: list[tuple[datetime, Any, dict]]) -> list[datetime]:
    """Arrival times of the events the pacing places (the others go out first)."""
    return [a for a, source, row in ordered if row.get(source.ingestion_column) is not None]


def measure_stream(traffic: Traffic, fresh: Any) -> Run:
    arrivals = sorted(_usable_arrivals(traffic.ordered))
    run = Run(traffic.rate)
    began: list[float] = []
    updates: list[tuple[float, datetime]] = []
    done = threading.Event()

    def watch() -> None:
        last = fresh.last_instant()
        while not done.is_set():
            instant = fresh.last_instant()
            if instant != last and instant is not None:
                updates.append((time.monotonic(), instant))
                last = instant
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    report = traffic.publish(began.append)
    stopped = time.monotonic()
    run.events = sum(report.messages.values())
    run.published_seconds = report.seconds
    deadline = stopped + 600
    while time.monotonic() < deadline and not (updates and updates[-1][1] > arrivals[-1]):
        time.sleep(0.1)
    done.set()
    watcher.join()
    if updates and updates[-1][1] > arrivals[-1]:
        caught = next(wall for wall, instant in updates if instant > arrivals[-1])
        run.catch_up = max(0.0, caught - stopped)
    run.batches = len(updates)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(updates)]
    run.cycle = statistics.median(gaps) if gaps else float("nan")
    instants = [instant for _, instant in updates]
    for arrived in arrivals:
        i = bisect.bisect_right(instants, arrived)
        if i < len(updates):
            run.freshness.append(updates[i][0] - traffic.published_at(began[0], arrived))
    return run


def _anchor_store(workdir: Path, redis_url: str) -> tuple[Any, dict[str, list[str]]]:
    """A Feast store with one push source and feature view per event source (member key)."""
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64, String

    from features.sources import EVENT_SOURCES
    from pipelines.redis_server import feast_connection_string

    types = {"int64": Int64, "float64": Float64, "string": String}
    member = Entity(name="member", join_keys=["member_id"], value_type=ValueType.INT64)
    objects: list[Any] = [member]
    columns: dict[str, list[str]] = {}
    for source in EVENT_SOURCES:
        values = [
            c
            for c, t in source.columns.items()
            if t in types and c != "member_id" and c != source.id_column
        ]
        columns[source.name] = values
        empty = workdir / f"{source.name}.parquet"
        frame = pd.DataFrame({"member_id": pd.Series(dtype="int64")})
        for c in values:
            frame[c] = pd.Series(
                dtype={"int64": "int64", "float64": "float64"}.get(source.columns[c], "object")
            )
        frame["event_timestamp"] = pd.Series(dtype="datetime64[us, UTC]")
        frame.to_parquet(empty)
        push = PushSource(
            name=f"{source.name}_push",
            batch_source=FileSource(path=str(empty), timestamp_field="event_timestamp"),
        )
        view = FeatureView(
            name=f"{source.name}_latest",
            entities=[member],
            schema=[Field(name=c, dtype=types[source.columns[c]]) for c in values],
            source=push,
            ttl=timedelta(days=1),
            online=True,
        )
        objects += [push, view]
    config = RepoConfig(
        project="bench_push",
        registry=str(workdir / "registry.db"),
        provider="local",
        online_store={"type": "redis", "connection_string": feast_connection_string(redis_url)},
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    store.apply(objects)
    return store, columns


def measure_feast_push(traffic: Traffic, store: Any, columns: dict[str, list[str]]) -> Run:
    import pandas as pd
    from confluent_kafka import Consumer
    from feast.data_source import PushMode

    from features.sources import EVENT_SOURCES

    topics = {s.name: f"{ANCHOR_TOPIC_PREFIX}{s.name}" for s in EVENT_SOURCES}
    by_topic = {topics[s.name]: s for s in EVENT_SOURCES}
    run = Run(traffic.rate)
    began: list[float] = []
    consumer = Consumer(
        {
            "bootstrap.servers": traffic.servers,
            "group.id": f"bench-feast-{time.time_ns()}",
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
        }
    )
    assigned = threading.Event()
    consumer.subscribe(list(topics.values()), on_assign=lambda c, parts: assigned.set())
    while not assigned.is_set():
        consumer.poll(0.1)
    finished = threading.Event()
    report_box: list[Any] = []

    def produce() -> None:
        report_box.append(traffic.publish(began.append, topics))
        finished.set()

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    quiet_since = None
    while True:
        polled = consumer.consume(num_messages=100_000, timeout=PUSH_EVERY_S)
        rows: dict[str, list[dict]] = {}
        for message in polled:
            if message.error() or not message.value():
                continue
            try:
                row = json.loads(message.value())
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.setdefault(message.topic(), []).append(row)
        for topic, batch in rows.items():
            source = by_topic[topic]
            needed = ["member_id", source.timestamp_column, source.ingestion_column]
            # A broken producer's rows may lack any column: absent means null.
            frame = pd.DataFrame(batch).reindex(columns=[*needed, *columns[source.name]])
            frame["event_timestamp"] = pd.to_datetime(
                frame[source.timestamp_column], utc=True, errors="coerce", format="ISO8601"
            )
            arrived = pd.to_datetime(
                frame[source.ingestion_column], utc=True, errors="coerce", format="ISO8601"
            )
            keep = frame["member_id"].notna() & frame["event_timestamp"].notna() & arrived.notna()
            frame, arrived = frame[keep], arrived[keep]
            if frame.empty:
                continue
            pushed = frame[["member_id", "event_timestamp", *columns[source.name]]].copy()
            pushed["member_id"] = pushed["member_id"].astype("int64")
            store.push(f"{source.name}_push", pushed, to=PushMode.ONLINE)
            now = time.monotonic()
            run.batches += 1
            for a in arrived:
                run.freshness.append(now - traffic.published_at(began[0], a.to_pydatetime()))
        if finished.is_set():
            if polled:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 3:
                break
    consumer.close()
    run.events = sum(report_box[0].messages.values())
    run.published_seconds = report_box[0].seconds
    run.catch_up = 0.0
    return run


def _create_anchor_topics(servers: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    from features.sources import EVENT_SOURCES

    admin = AdminClient({"bootstrap.servers": servers, "log_level": 3})
    futures = admin.create_topics(
        [NewTopic(f"{ANCHOR_TOPIC_PREFIX}{s.name}", num_partitions=3) for s in EVENT_SOURCES]
    )
    for future in futures.values():
        future.result(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=128.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 5000.0, 20000.0])
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="feature-bench-stream-"))
    os.environ["FEATURE_PLATFORM_DATA_DIR"] = str(data_dir)
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    from bench.feature_compute import SPARK_CONF
    from features import REGISTRY, FeatureView
    from pipelines.compute import compute
    from pipelines.generate import generate
    from pipelines.generate.world import GeneratorConfig
    from pipelines.ingest import ingest
    from pipelines.interval import Interval
    from pipelines.redis_server import RedisServer, free_port
    from pipelines.serving.store import repo_settings
    from pipelines.spark import get_spark
    from pipelines.streaming.broker import KafkaBroker
    from pipelines.streaming.fresh import MARKER, FreshValues
    from pipelines.streaming.land import land_events
    from pipelines.streaming.publish import arrival_order, publish
    from pipelines.streaming.topics import create_topics
    from pipelines.tables import raw_table

    config = GeneratorConfig(scale=args.scale)
    redis = RedisServer(data_dir / "redis", port=free_port()).start()
    broker = KafkaBroker(data_dir / "kafka").start()
    servers = broker.bootstrap_servers
    try:
        create_topics(servers)
        _create_anchor_topics(servers)
        spark = get_spark("bench-stream", extra_conf=SPARK_CONF)
        realtime = [v for v in REGISTRY.views if isinstance(v, FeatureView) and v.realtime]
        began = time.perf_counter()
        generate(spark, start=HISTORY_START, end=TRAFFIC_START, scale=args.scale)
        ingest(spark, start=HISTORY_START, end=TRAFFIC_START)
        compute(spark, start=HISTORY_START, end=TRAFFIC_START, views=realtime)
        from features.sources import EVENT_SOURCES

        history_events = sum(spark.table(raw_table(s)).count() for s in EVENT_SOURCES)
        per_data_second = history_events / (TRAFFIC_START - HISTORY_START).total_seconds()
        print(
            f"history: {history_events:,} events in 2 h at scale {args.scale:g} "
            f"({per_data_second:.1f}/s at 1x), ready in {time.perf_counter() - began:.0f} s",
            flush=True,
        )
        checkpoint = data_dir / "checkpoints" / "land"
        fresh = FreshValues(redis.url, repo_settings().project, checkpoint / MARKER)
        query = land_events(
            spark,
            bootstrap_servers=servers,
            trigger_seconds=TRIGGER_SECONDS,
            checkpoint=checkpoint,
            fresh=fresh,
        )
        store, columns = _anchor_store(data_dir, redis.url)
        # Warm-up: the stream's first micro-batch writes every entity (no instant written
        # yet) and starts its JVM-side caches; two minutes of traffic, not measured.
        cursor = TRAFFIC_START + timedelta(minutes=2)
        warm_up = arrival_order(Interval(TRAFFIC_START, cursor), config)
        last_arrival = max(_usable_arrivals(warm_up))
        publish(servers, start=TRAFFIC_START, end=cursor, config=config, ordered=warm_up)
        while (fresh.last_instant() or TRAFFIC_START) <= last_arrival:
            if query.exception() is not None:
                raise SystemExit(f"the stream failed: {query.exception()}")
            time.sleep(0.5)
        results: list[tuple[Run, Run, float]] = []
        for rate in args.rates:
            speed = rate / per_data_second
            print(f"rate {rate:,.0f}/s: {speed:.1f}x real time from {cursor:%H:%M:%S}", flush=True)
            end = cursor + timedelta(seconds=args.seconds * speed)
            ordered = arrival_order(Interval(cursor, end), config)
            traffic = Traffic(servers, rate, speed, cursor, end, config, ordered)
            ours = measure_stream(traffic, fresh)
            if query.exception() is not None:
                raise SystemExit(f"the stream failed: {query.exception()}")
            feast = measure_feast_push(traffic, store, columns)
            results.append((ours, feast, speed))
            cursor = end
        query.stop()
    finally:
        broker.stop()
        redis.stop()

    print()
    print(
        "| rate asked | achieved | path | p50 freshness | p99 freshness | updates | caught up after |"
    )
    print("|---|---|---|---|---|---|---|")
    sustained = 0.0
    for ours, feast, speed in results:
        for name, run in (("stream (exact sawtooth)", ours), ("Feast push (raw values)", feast)):
            catch = "never" if run.catch_up is None else f"{run.catch_up:.1f} s"
            print(
                f"| {run.rate:,.0f}/s | {run.achieved:,.0f}/s ({speed:.0f}x) | {name} "
                f"| {_quantile(run.freshness, 0.5):.2f} s | {_quantile(run.freshness, 0.99):.2f} s "
                f"| {run.batches} | {catch} |"
            )
        # Sustained: a steady cycle (at least three micro-batches while the traffic ran)
        # and caught up within two of them once it stopped.
        steady = ours.batches >= 3 and ours.cycle * 3 <= ours.published_seconds
        if steady and ours.catch_up is not None and ours.catch_up <= 2 * ours.cycle:
            sustained = max(sustained, ours.rate)
        print(f"|  | | (stream: a micro-batch every {ours.cycle:.1f} s, median) | | | | |")
    verdict = f"{sustained:,.0f}/s" if sustained else "none of the rates"
    print(
        f"\nhighest rate the stream sustained (steady micro-batches, caught up within two): {verdict}"
    )


if __name__ == "__main__":
    main()
