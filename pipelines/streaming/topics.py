"""The event topics, derived from the source declarations: one topic per event source.

A message is one raw event row as its producer (or log shipper) writes it: the record's
value is a JSON object with exactly the raw table's columns (`pipelines.tables.raw_schema`:
the raw columns, the event time, the ingestion time and `event_date`, right or wrong), and
its key is the event's id, so a redelivered event lands in the partition of the first
delivery. The stream lands messages into the raw tables unchanged, so the hourly pipeline
reads what it reads when the rows come from files: one source of truth, one set of rules.
The record's own timestamp is the broker's (`LogAppendTime`): when the bus received it,
which measures how fresh the stream is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from features import EventSource
from features.sources import EVENT_SOURCES
from pipelines.errors import PlatformError
from pipelines.tables import raw_schema

PARTITIONS = 3
# Events are kept a week on the bus; the Delta tables are the history.
RETENTION_MS = 7 * 24 * 3600 * 1000
TOPIC_CONFIG = {
    "message.timestamp.type": "LogAppendTime",
    "retention.ms": str(RETENTION_MS),
}


class TopicError(PlatformError):
    pass


def topics() -> dict[str, EventSource]:
    """Topic name -> the event source whose rows it carries."""
    return {source.topic: source for source in EVENT_SOURCES}


def message_columns(source: EventSource) -> list[str]:
    """The fields of a message: the raw table's columns, in order."""
    return raw_schema(source).fieldNames()


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def encode(source: EventSource, row: Mapping[str, Any]) -> tuple[bytes | None, bytes]:
    """(key, value) of the message for one raw row."""
    fields = {column: _json_value(row.get(column)) for column in message_columns(source)}
    key = row.get(source.id_column) if source.id_column else None
    # A broken producer's NaN and Infinity travel as JSON's non-standard tokens, which
    # Spark's JSON reader accepts: ingest sees them and quarantines them by name.
    value = json.dumps(fields, separators=(",", ":"), allow_nan=True).encode()
    return (None if key is None else str(key).encode()), value


def create_topics(bootstrap_servers: str, *, partitions: int = PARTITIONS) -> list[str]:
    """Create every event topic that does not exist yet (three replicas where the cluster
    has three brokers); returns the ones created."""
    from confluent_kafka.admin import AdminClient, NewTopic

    # Only errors: librdkafka logs its housekeeping at notice level on stderr.
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 3})
    metadata = admin.list_topics(timeout=10)
    existing = set(metadata.topics)
    replicas = min(3, len(metadata.brokers))
    wanted = [name for name in topics() if name not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                name, num_partitions=partitions, replication_factor=replicas, config=TOPIC_CONFIG
            )
            for name in wanted
        ]
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=30)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise TopicError(f"could not create topic {name}: {exc}") from None
        created.append(name)
    return created


def offsets_consumer(bootstrap_servers: str, group_id: str) -> Any:
    """A Kafka consumer that reads offsets (and at most a message here and there) and
    never commits; librdkafka's notices stay off stderr."""
    from confluent_kafka import Consumer

    return Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )


def end_offsets(
    bootstrap_servers: str, partitions: Sequence[tuple[str, int]], *, timeout: float = 10.0
) -> dict[tuple[str, int], int]:
    """The offset the next message of each (topic, partition) will get."""
    from confluent_kafka import KafkaException, TopicPartition

    consumer = offsets_consumer(bootstrap_servers, "feature-platform-ends")
    try:
        return {
            (topic, partition): consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )[1]
            for topic, partition in partitions
        }
    except KafkaException as exc:
        raise TopicError(
            f"cannot read end offsets from Kafka at {bootstrap_servers}: {exc}"
        ) from None
    finally:
        consumer.close()
