"""Streaming ingest through a real Kafka: the generator's events published in arrival
order, landed by a Structured Streaming query in the raw tables exactly once, equal to
what a batch generation writes, and ingested by the hourly job with its own rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from features.catalog import database_prefix
from features.sources import DIMENSION_SOURCES, EVENT_SOURCES
from pipelines.delta_io import ensure_database
from pipelines.generate import GeneratorConfig, generate
from pipelines.ingest import ingest
from pipelines.interval import Interval
from pipelines.streaming.lag import StreamLagError, stream_lag
from pipelines.streaming.land import _batch_writer, land_events
from pipelines.streaming.publish import arrival_order, publish
from pipelines.streaming.topics import create_topics
from pipelines.tables import quarantine_table, raw_table

pytestmark = pytest.mark.kafka

START = datetime(2026, 6, 1, 18, tzinfo=UTC)
# Enough traffic in two evening hours for clicks and rows without a usable arrival time.
CONFIG = GeneratorConfig(scale=0.3, hostile_share=0.03, late_share=0.05)


@pytest.fixture(scope="module")
def broker(kafka_broker):
    create_topics(kafka_broker.bootstrap_servers)
    return kafka_broker


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("checkpoints") / "land"


@pytest.fixture(scope="module")
def raw_dimensions(spark):
    """Dimensions are not streamed: their daily dumps land in raw as files do, for the
    hourly ingest that runs after the stream (the stream ingests event sources only)."""
    batch = _generated(spark, 2)
    ensure_database(spark, raw_table(DIMENSION_SOURCES[0]).split(".")[0])
    for dimension in DIMENSION_SOURCES:
        spark.table(f"{batch}.{dimension.name}").write.format("delta").mode(
            "overwrite"
        ).saveAsTable(raw_table(dimension))


def _land(spark, broker, checkpoint, max_messages_per_batch: int | None = None) -> None:
    query = land_events(
        spark,
        bootstrap_servers=broker.bootstrap_servers,
        until_caught_up=True,
        checkpoint=checkpoint,
        max_messages_per_batch=max_messages_per_batch,
    )
    query.awaitTermination(600)
    assert query.exception() is None


def _generated(spark, hours: int) -> str:
    """The same rows written by a batch generation, in a database of their own."""
    database = f"{database_prefix()}batch"
    shares = {"late_share": CONFIG.late_share, "hostile_share": CONFIG.hostile_share}
    generate(
        spark,
        start=START,
        end=START + timedelta(hours=hours),
        scale=CONFIG.scale,
        database=database,
        **shares,
    )
    return database


def _assert_same_rows(spark, database: str) -> None:
    for source in EVENT_SOURCES:
        landed = spark.table(raw_table(source))
        written = spark.table(f"{database}.{source.name}")
        assert landed.count() == written.count() > 0, source.name
        assert landed.exceptAll(written).count() == 0, source.name
        assert written.exceptAll(landed).count() == 0, source.name


def test_publishing_follows_arrival_order_with_every_kind_of_row():
    ordered = arrival_order(_interval(2), CONFIG)
    arrivals = [arrived for arrived, _, _ in ordered]
    assert arrivals == sorted(arrivals)
    ingested = [row.get("ingestion_timestamp") for _, _, row in ordered]
    # A broken producer's rows go too: those without a usable arrival time go first.
    unusable = [i for i, value in enumerate(ingested) if value is None or value.year < 2000]
    assert unusable and unusable == list(range(len(unusable)))
    assert {source.name for _, source, _ in ordered} == {s.name for s in EVENT_SOURCES}


def _interval(hours: int, first: int = 0) -> Interval:
    return Interval(START + timedelta(hours=first), START + timedelta(hours=hours))


def _publish_and_land_hour(
    spark, broker, checkpoint, hour: int, *, restart_broker: bool = False
) -> None:
    """Publish hour `hour` after START, land it, and check raw against a batch generation
    of every hour so far."""
    publish(
        broker.bootstrap_servers,
        start=START + timedelta(hours=hour),
        end=START + timedelta(hours=hour + 1),
        config=CONFIG,
    )
    if restart_broker:
        broker.stop()
        broker.start()
    _land(spark, broker, checkpoint)
    _assert_same_rows(spark, _generated(spark, hour + 1))


def _clean_event_tables(spark) -> dict[str, list]:
    """The clean event tables, and the quarantine without the dimensions' rows."""
    dimensions = ", ".join(f"'{s.name}'" for s in DIMENSION_SOURCES)
    tables = {s.table: spark.table(s.table) for s in EVENT_SOURCES}
    tables[quarantine_table()] = spark.table(quarantine_table()).where(
        f"source_table NOT IN ({dimensions})"
    )
    return {name: sorted(map(tuple, rows.collect())) for name, rows in tables.items()}


def test_the_stream_lands_exactly_what_a_batch_generation_writes(
    spark, broker, checkpoint, raw_dimensions
):
    report = publish(
        broker.bootstrap_servers, start=START, end=START + timedelta(hours=2), config=CONFIG
    )
    published = sum(report.messages.values())
    assert published == len(arrival_order(_interval(2), CONFIG))
    # Several micro-batches, so that an hour is ingested while it is still arriving.
    _land(spark, broker, checkpoint, max_messages_per_batch=published // 2 + 1)
    assert len(spark.streams.active) == 0
    _assert_same_rows(spark, _generated(spark, 2))


def test_the_streamed_clean_tables_are_what_the_hourly_ingest_makes(spark, broker, checkpoint):
    streamed = _clean_event_tables(spark)
    assert all(streamed.values())
    # The dimensions are the hourly run's: the stream wrote none of their rows.
    assert not any(spark.catalog.tableExists(s.table) for s in DIMENSION_SOURCES)
    for hour in range(2):  # the hourly pipeline, run after the stream, over the same hours
        report = ingest(
            spark, start=_interval(hour + 1, first=hour).start, end=_interval(hour + 1).end
        )
        for name, counts in report.tables.items():
            assert counts.raw == counts.clean + counts.quarantined_total, name
        assert set(report.tables) == {s.name for s in (*DIMENSION_SOURCES, *EVENT_SOURCES)}
    assert _clean_event_tables(spark) == streamed


def test_a_restarted_stream_lands_only_what_is_new_and_a_restarted_broker_loses_nothing(
    spark, broker, checkpoint
):
    counts = {s.name: spark.table(raw_table(s)).count() for s in EVENT_SOURCES}
    _land(spark, broker, checkpoint)  # nothing new: the checkpoint has every offset
    assert {s.name: spark.table(raw_table(s)).count() for s in EVENT_SOURCES} == counts
    # Kafka stopped and started between the producer's acknowledgements and the landing.
    _publish_and_land_hour(spark, broker, checkpoint, 2, restart_broker=True)


def test_a_replayed_micro_batch_is_written_once(spark, broker, tmp_path):
    """What a crash between the write and the checkpoint's commit makes the query do."""
    from pipelines.streaming.land import checkpoint_identity
    from pipelines.streaming.topics import encode

    source = EVENT_SOURCES[0]
    # An event of an hour the stream never carried, with a usable arrival time.
    row = next(
        r
        for _, s, r in arrival_order(_interval(6, first=5), CONFIG)
        if s is source and r.get(source.ingestion_column) is not None and r.get(source.id_column)
    )
    _, value = encode(source, row)
    messages = spark.createDataFrame(
        [(source.topic, 0, 0, bytearray(value), START)],
        "topic string, partition int, offset long, value binary, timestamp timestamp",
    )
    write = _batch_writer(checkpoint_identity(tmp_path / "fresh"), clean=False)
    before = spark.table(raw_table(source)).count()
    write(messages, 0)
    write(messages, 0)  # the same micro-batch again
    assert spark.table(raw_table(source)).count() == before + 1
    write(messages, 1)
    assert spark.table(raw_table(source)).count() == before + 2
    spark.sql(
        f"DELETE FROM {raw_table(source)} WHERE {source.id_column} = '{row[source.id_column]}'"
    )


def test_a_malformed_message_is_quarantined_the_lag_shows_it_and_the_stream_goes_on(
    spark, broker, checkpoint
):
    from confluent_kafka import Producer

    source = EVENT_SOURCES[0]
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for value in (b"not json", b'{"watch_seconds": "a lot"}', b""):
        producer.produce(source.topic, key=b"broken", value=value)
    producer.flush(30)
    # Not landed yet: the lag names them; past a bound of zero the check fails.
    waiting = stream_lag(broker.bootstrap_servers, checkpoint)
    assert waiting.messages_behind == 3
    assert {p.topic for p in waiting.partitions if p.behind} == {source.topic}
    assert waiting.lag > timedelta(0)
    waiting.check()  # the declared bound: minutes
    with pytest.raises(StreamLagError, match=rf"3 messages of {source.topic} not landed"):
        waiting.check(timedelta(0))
    assert "3 messages behind" in waiting.lines()[0]

    raw_before = spark.table(raw_table(source)).count()
    _land(spark, broker, checkpoint)
    assert spark.table(raw_table(source)).count() == raw_before
    caught_up = stream_lag(broker.bootstrap_servers, checkpoint)
    assert (caught_up.messages_behind, caught_up.lag) == (0, timedelta(0))
    assert caught_up.last_batch > waiting.last_batch
    caught_up.check(timedelta(0))
    quarantined = (
        spark.table(quarantine_table())
        .where(f"source_table = '{source.topic}'")
        .select("reason", "record")
        .collect()
    )
    assert sorted(quarantined) == sorted(
        [
            ("unparseable:value", "not json"),
            ("unparseable:value", '{"watch_seconds": "a lot"}'),
            ("unparseable:value", ""),
        ]
    )
    _publish_and_land_hour(spark, broker, checkpoint, 3)  # the stream goes on


def test_the_fresh_instant_is_the_watermark_of_the_partitions_read_part_of_the_way(spark):
    from pipelines.streaming.land import arrival_span
    from pipelines.streaming.topics import encode

    source = EVENT_SOURCES[0]
    appended = START + timedelta(seconds=10)

    def message(partition: int, offset: int, arrived: datetime):
        _, value = encode(
            source, {source.id_column: f"e{partition}-{offset}", source.ingestion_column: arrived}
        )
        return (source.topic, partition, offset, bytearray(value), appended)

    at = [START + timedelta(seconds=s) for s in range(6)]
    messages = spark.createDataFrame(
        [
            message(0, 0, at[1]),
            message(0, 1, at[5]),
            message(0, 2, datetime(2100, 1, 1, tzinfo=UTC)),  # a broken producer's clock
            message(1, 7, at[2]),
            message(1, 8, at[3]),
        ],
        "topic string, partition int, offset long, value binary, timestamp timestamp",
    )

    def span(ends: dict[int, int]):
        return arrival_span(messages, lambda pairs: {(t, p): ends[p] for t, p in pairs})

    assert span({0: 3, 1: 9}) == (at[1], at[5])  # both read to their end
    assert span({0: 3, 1: 12}) == (at[1], at[3])  # partition 1 holds more: events from at[3]
    assert span({0: 5, 1: 9}) == (at[1], at[5])  # the year-2100 message is not an arrival
    assert span({0: 5, 1: 12}) == (at[1], at[3])
    assert arrival_span(messages.limit(0), lambda pairs: {}) is None
