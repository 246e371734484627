"""The event bus: a real single-node KRaft Kafka the platform starts, one topic per event
source named and typed from the declarations, and readers that never start a broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from features.sources import EVENT_SOURCES, playback_events
from pipelines.config import KAFKA_BOOTSTRAP_ENV
from pipelines.streaming.broker import (
    KafkaBroker,
    KafkaNotConfiguredError,
    bootstrap_servers,
    check_kafka,
)
from pipelines.streaming.topics import create_topics, encode, message_columns, topics

pytestmark = pytest.mark.kafka


def test_every_event_source_gets_its_topic_stamped_on_arrival(kafka_broker):
    from confluent_kafka.admin import AdminClient, ConfigResource

    created = create_topics(kafka_broker.bootstrap_servers)
    assert sorted(created) == sorted(source.topic for source in EVENT_SOURCES)
    assert create_topics(kafka_broker.bootstrap_servers) == []  # idempotent
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    resource = ConfigResource(ConfigResource.Type.TOPIC, playback_events.topic)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    assert config["message.timestamp.type"].value == "LogAppendTime"
    assert set(topics()) == set(admin.list_topics(timeout=10).topics) - {"__consumer_offsets"}


def test_a_message_carries_the_raw_row_and_the_broker_stamps_its_arrival(kafka_broker):
    from confluent_kafka import Consumer, Producer

    create_topics(kafka_broker.bootstrap_servers)
    when = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    row = {
        "event_id": "p-kafka-1",
        "member_id": 7,
        "title_id": 11,
        "device": "tv",
        "watch_seconds": float("nan"),  # a broken producer's value travels as it is
        "event_timestamp": when,
        "ingestion_timestamp": when,
        "event_date": when.date(),
    }
    key, value = encode(playback_events, row)
    before = datetime.now(UTC)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
    producer.produce(playback_events.topic, key=key, value=value)
    assert producer.flush(10) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_broker.bootstrap_servers,
            "group.id": "test-kafka",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([playback_events.topic])
    message = None
    for _ in range(60):
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            break
    consumer.close()
    assert message is not None and message.error() is None
    assert message.key() == b"p-kafka-1"
    fields = json.loads(message.value())
    assert list(fields) == message_columns(playback_events)
    assert fields["event_timestamp"] == "2026-11-01T05:30:00Z"
    assert fields["event_date"] == "2026-11-01"
    assert fields["watch_seconds"] != fields["watch_seconds"]  # NaN
    kind, stamp_ms = message.timestamp()
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

    assert kind == TIMESTAMP_LOG_APPEND_TIME
    assert stamp_ms >= before.timestamp() * 1000 - 1000


def test_a_restarted_broker_keeps_its_port_and_its_topics(tmp_path):
    server = KafkaBroker(tmp_path / "kafka")
    server.start()
    try:
        port = server.port
        create_topics(server.bootstrap_servers)
        server.stop()
        assert not server.is_running()
        server.start()
        assert server.port == port
        assert create_topics(server.bootstrap_servers) == []
    finally:
        server.stop()


def test_readers_never_start_a_broker(tmp_path, monkeypatch):
    monkeypatch.delenv(KAFKA_BOOTSTRAP_ENV, raising=False)
    monkeypatch.setenv("FEATURE_PLATFORM_DATA_DIR", str(tmp_path))
    with pytest.raises(KafkaNotConfiguredError, match="feature-platform kafka start"):
        bootstrap_servers()
    assert not (tmp_path / "kafka").exists()


def test_an_unreachable_cluster_is_one_error_within_the_timeout():
    from pipelines.streaming.broker import KafkaUnavailableError

    with pytest.raises(KafkaUnavailableError, match=r"127\.0\.0\.1:1 did not answer"):
        check_kafka("127.0.0.1:1", timeout=2.0)


def test_kafka_status_without_a_broker_exits_1(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != KAFKA_BOOTSTRAP_ENV}
    env["FEATURE_PLATFORM_DATA_DIR"] = str(tmp_path)
    cli = os.path.join(os.path.dirname(sys.executable), "feature-platform")
    result = subprocess.run(
        [cli, "kafka", "status"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stderr
    assert "not running" in result.stdout


def test_a_cluster_id_never_reads_as_an_option_of_the_storage_tool(monkeypatch):
    import uuid

    from pipelines.streaming import broker

    # 0xF8 encodes to "-" first in URL-safe base64: such an id is drawn again.
    drawn = iter([uuid.UUID(bytes=b"\xf8" * 16), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: next(drawn))
    assert broker._cluster_id() == "AQEBAQEBAQEBAQEBAQEBAQ"
