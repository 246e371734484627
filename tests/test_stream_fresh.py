"""Fresh values through real Kafka, Spark Structured Streaming and Redis: what the stream
serves at its instant is the sawtooth value at that instant (the brute-force oracle), and
the `realtime` training value once the hourly batch has run.

The generator's events are published in arrival order (late, malformed and hostile rows
included). The first two hours are landed and computed as the hourly pipeline does; the
stream then lands the following traffic in several micro-batches and writes the real-time
views' values, across an hour boundary the batch has not computed yet.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from platform_helpers import (
    assert_served_sawtooth_values,
    land_dimension_dumps,
    same_value,
    served_values,
)

from features import REGISTRY, FeatureView
from features.sources import ad_impressions
from pipelines.compute import compute
from pipelines.generate import GeneratorConfig
from pipelines.ingest import ingest
from pipelines.interval import parse_time
from pipelines.quality.replay import replay
from pipelines.redis_server import RedisServer, free_port
from pipelines.serving.direct import OnlineReader
from pipelines.serving.materialize import materialize
from pipelines.serving.request_log import RequestLog, log_directory
from pipelines.serving.store import repo_settings
from pipelines.streaming.fresh import (
    MARKER,
    FreshValues,
    FreshValuesError,
    fresh_status,
    realtime_views,
)
from pipelines.streaming.land import land_events
from pipelines.streaming.publish import publish
from pipelines.streaming.topics import create_topics
from pipelines.training import build_training_set

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

START = datetime(2026, 6, 2, 18, tzinfo=UTC)
CONFIG = GeneratorConfig(scale=0.3, hostile_share=0.03, late_share=0.05)
REALTIME = list(realtime_views())
REALTIME_NAMES = {v.name for v in REALTIME}


def at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """A Redis server of this module alone: a test stops and restarts it."""
    with RedisServer(tmp_path_factory.mktemp("fresh-redis"), port=free_port()) as server:
        yield server


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("checkpoints") / "land"


@pytest.fixture(scope="module")
def fresh(redis_server, checkpoint) -> FreshValues:
    return FreshValues(
        redis_url=redis_server.url,
        project=repo_settings().project,
        marker=checkpoint / MARKER,
        redis_wait=timedelta(minutes=3),
    )


@pytest.fixture(scope="module")
def batch_hours(spark, kafka_broker, checkpoint) -> None:
    """Two hours landed by the stream without fresh values, then computed by the hourly
    compute: the state the stream starts from, after the dimensions' daily dumps."""
    land_dimension_dumps(spark, at(0), CONFIG.scale)
    create_topics(kafka_broker.bootstrap_servers)
    _publish(kafka_broker, at(0), at(120))
    _land(spark, kafka_broker, checkpoint, None)
    compute(spark, start=at(0), end=at(120), views=REALTIME)


def _publish(broker, start: datetime, end: datetime) -> int:
    report = publish(broker.bootstrap_servers, start=start, end=end, config=CONFIG)
    return sum(report.messages.values())


def _land(spark, broker, checkpoint, fresh, batches: int = 1, published: int = 0, wait=True):
    query = land_events(
        spark,
        bootstrap_servers=broker.bootstrap_servers,
        until_caught_up=True,
        checkpoint=checkpoint,
        max_messages_per_batch=published // batches + 1 if batches > 1 else None,
        fresh=fresh,
    )
    if wait:
        query.awaitTermination(900)
        assert query.exception() is None, query.exception()
    return query


def _events(spark) -> dict[str, list[dict[str, Any]]]:
    sources = {s.name: s for v in REALTIME for s in v.sources}
    return {
        name: [row.asDict() for row in spark.table(source.table).collect()]
        for name, source in sources.items()
    }


def _check_served_at(spark, url: str, instant: datetime) -> dict[str, list[dict[str, Any]]]:
    return assert_served_sawtooth_values(url, REALTIME, _events(spark), instant)


def test_served_values_are_the_sawtooth_values_at_the_streams_instant(
    spark, kafka_broker, checkpoint, batch_hours, fresh, redis_server
) -> None:
    published = _publish(kafka_broker, at(120), at(150))
    _land(spark, kafka_broker, checkpoint, fresh, batches=2, published=published)
    first = fresh.last_instant()
    assert first is not None and at(140) < first < at(150)
    served = _check_served_at(spark, redis_server.url, first)
    # The first micro-batch writes every known entity, the second those it touched.
    times = {r["written_at"] for rows in served.values() for r in rows if r["written_at"]}
    assert len(times) == 2

    # Across 19:00 UTC + 2h, which compute has not reached: the stream rolls the hour.
    published = _publish(kafka_broker, at(150), at(200))
    _land(spark, kafka_broker, checkpoint, fresh, batches=2, published=published)
    second = fresh.last_instant()
    assert second is not None and at(190) < second < at(200)
    served = _check_served_at(spark, redis_server.url, second)
    rolled = at(180).replace(tzinfo=None)
    assert any(r["written_at"] == rolled for rows in served.values() for r in rows)

    status = fresh_status(checkpoint)  # what `stream --status` adds to the lag
    assert (
        status[0]
        == f"fresh values: written as of {second.isoformat()} (every event that arrived before it)"
    )
    assert len(status) == 1 + len(REALTIME)
    assert all(float(line.split()[-2]) > 0 for line in status[1:]), status


def test_once_the_batch_has_run_the_realtime_training_set_equals_what_was_served(
    spark, batch_hours, fresh, redis_server
) -> None:
    instant = fresh.last_instant()
    assert instant is not None
    compute(spark, start=at(120), end=at(180), views=REALTIME)
    for view in REALTIME:
        key = view.entity.join_key
        served = [
            r for r in served_values(redis_server.url, view, _known_entities(spark, view)) if r[key]
        ]
        labels = spark.createDataFrame(
            [(r[key], instant) for r in served], f"{key} long, served_at timestamp"
        )
        refs = [f"{view.name}:{f.name}" for f in view.features]
        training = {
            row[key]: row.asDict()
            for row in build_training_set(
                spark, labels, refs, timestamp_column="served_at", mode="realtime"
            ).collect()
        }
        for row in served:
            for feature in view.features:
                want = training[row[key]][feature.name]
                assert same_value(row[feature.name], want), (view.name, row[key], feature.name)


def _known_entities(spark, view: FeatureView) -> list[Any]:
    key = view.entity.join_key
    keys = set()
    for source in view.sources:
        keys |= {r[key] for r in spark.table(source.table).select(key).distinct().collect()}
    return sorted(k for k in keys if k is not None)


def test_redis_down_stalls_the_stream_which_then_catches_up(
    spark, kafka_broker, checkpoint, batch_hours, fresh, redis_server
) -> None:
    before = fresh.last_instant()
    published = _publish(kafka_broker, at(200), at(215))
    assert published > 0
    url = redis_server.url
    redis_server.stop()
    query = _land(spark, kafka_broker, checkpoint, fresh, wait=False)
    try:
        time.sleep(20)
        assert query.isActive and query.exception() is None
        assert fresh.last_instant() == before  # nothing written, nothing skipped
    finally:
        redis_server.start()
    assert redis_server.url == url
    query.awaitTermination(900)
    assert query.exception() is None, query.exception()
    after = fresh.last_instant()
    assert after is not None and after > at(205)
    _check_served_at(spark, url, after)


def test_requests_served_while_the_stream_writes_replay_to_their_realtime_training_rows(
    spark, kafka_broker, checkpoint, batch_hours, fresh, redis_server, tmp_path
) -> None:
    """The replay check over stream-served values: ctr_model requests at random instants,
    many while micro-batches write their values, logged and replayed in `realtime` mode,
    late events included: no value differs."""
    service = "ctr_model"
    attributes = [name for name in REGISTRY.resolve(service) if name not in REALTIME_NAMES]
    # The hourly ingest of the streamed hours cleans the dimensions' dumps, which the
    # attribute views read (the stream ingests event sources only).
    ingest(spark, start=at(0), end=at(120))
    compute(spark, start=at(0), end=at(120), views=attributes)
    materialize(
        spark,
        start=at(0),
        end=at(120),
        views=attributes,
        redis_url=redis_server.url,
        record_in_feast=False,
    )
    published = _publish(kafka_broker, at(215), at(225))
    pairs = [
        (r["member_id"], r["ad_id"])
        for r in spark.table(ad_impressions.table)
        .where("member_id IS NOT NULL AND ad_id IS NOT NULL")
        .select("member_id", "ad_id")
        .distinct()
        .orderBy("member_id", "ad_id")
        .collect()
    ]
    pick = random.Random(20)
    log_root = tmp_path / "served"

    def serve(reader: OnlineReader) -> None:
        rows = [{"member_id": m, "ad_id": a} for m, a in pick.sample(pairs, 3)]
        # The ad server's clock: after every arrival the stream is landing.
        reader.get(rows, as_of=at(225) + timedelta(seconds=pick.uniform(0, 900)))

    during = 0
    before = fresh.last_instant()
    assert before is not None
    log = RequestLog(service, sample=1.0, directory=log_directory(service, log_root))
    with log, OnlineReader(service, redis_url=redis_server.url, log=log) as reader:
        query = _land(spark, kafka_broker, checkpoint, fresh, 2, published, wait=False)
        while query.isActive:
            serve(reader)
            during += 1
            time.sleep(0.05)
        assert query.exception() is None, query.exception()
        for _ in range(100):
            serve(reader)
    assert during > 100

    logged = spark.read.parquet(str(log_directory(service, log_root)))
    instants = {r[0] for r in logged.select("member_engagement__values_as_of").distinct().collect()}
    # Served before the first micro-batch was written, and after the last.
    assert {before.replace(tzinfo=None), fresh.last_instant().replace(tzinfo=None)} <= instants

    realtime = replay(
        spark, start=at(225), end=at(240), services=[service], mode="realtime", log_root=log_root
    )
    assert realtime.requests[service] == 3 * (during + 100)
    assert realtime.success and realtime.differing_rows == 0, "\n".join(realtime.lines())
    age = realtime.values_age[service]
    assert age is not None and 0 < age[0] <= age[1] < 30 * 60
    # The same log against the hourly values: the stream's values are fresher.
    hourly = replay(
        spark, start=at(225), end=at(240), services=[service], mode="serving", log_root=log_root
    )
    assert not hourly.success and hourly.differing_rows > 0


def test_a_stream_without_computed_state_says_what_to_run(spark, tmp_path) -> None:
    writer = FreshValues(
        redis_url="redis://127.0.0.1:1/0", project="p", marker=tmp_path / "instant"
    )
    with pytest.raises(FreshValuesError, match=r"holds nothing known by .*compute feature view"):
        arrived = parse_time("2026-06-02T16:30:00Z")
        writer.update(spark, (arrived, arrived))
