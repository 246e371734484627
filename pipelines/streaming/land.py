"""Streaming ingest, first stage: land every event topic in its raw Delta table.

One Spark Structured Streaming query reads all event topics. Each micro-batch is split by
topic, parsed with the raw table's schema (`pipelines.tables.raw_schema`, the schema the
messages were written with: `pipelines.streaming.topics`) and appended to the raw table.
Exactly once: the query's checkpoint records the Kafka offsets of every micro-batch, and
each append carries Delta's idempotent-write options (`txnAppId`, `txnVersion` = the
micro-batch id), so a micro-batch replayed after a crash is skipped, not written twice.

The rows land unchanged (a wrong `event_date`, a NaN, a null id as the producer wrote
them), so the hourly pipeline runs on what the stream landed with the same rules as on
rows from files: ingest quarantines what is invalid, and raw = clean + quarantined holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import EventSource
from features.sources import EVENT_SOURCES
from pipelines.config import settings
from pipelines.delta_io import ensure_database
from pipelines.tables import raw_schema, raw_table

# Parse the ISO-8601 times `topics.encode` writes (UTC, `Z`, up to microseconds).
JSON_OPTIONS = {
    "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS][.SSS]XXX",
    "allowNonNumericNumbers": "true",  # a broken producer's NaN and Infinity
    "mode": "PERMISSIVE",
}
QUERY_NAME = "land_events"


def checkpoint_dir() -> Path:
    return settings().data_dir / "checkpoints" / QUERY_NAME


def parse_messages(messages: DataFrame, source: EventSource) -> DataFrame:
    """The raw rows of one source's messages, in the raw table's column order."""
    schema = raw_schema(source)
    parsed = messages.where(F.col("topic") == source.topic).select(
        F.from_json(F.col("value").cast("string"), schema, JSON_OPTIONS).alias("row")
    )
    return parsed.select(*[F.col(f"row.{name}").alias(name) for name in schema.fieldNames()])


def checkpoint_identity(checkpoint: Path) -> str:
    """An id that lives and dies with the checkpoint. Delta skips an idempotent write whose
    version is not above the last one of its app id; a new checkpoint restarts micro-batch
    ids at 0, so it must write under a new app id or every batch would be skipped."""
    checkpoint.mkdir(parents=True, exist_ok=True)
    marker = checkpoint / "landing-id"
    if not marker.exists():
        marker.write_text(f"{uuid.uuid4()}\n")
    return marker.read_text().strip()


def _batch_writer(identity: str) -> Callable[[DataFrame, int], None]:
    def write(messages: DataFrame, batch_id: int) -> None:
        messages.persist()
        try:
            for source in EVENT_SOURCES:
                table = raw_table(source)
                ensure_database(messages.sparkSession, table.split(".")[0])
                (
                    parse_messages(messages, source)
                    .write.format("delta")
                    .mode("append")
                    .partitionBy(source.partition_column)
                    .option("txnAppId", f"{QUERY_NAME}:{identity}:{table}")
                    .option("txnVersion", batch_id)
                    .saveAsTable(table)
                )
        finally:
            messages.unpersist()

    return write


def land_events(
    spark: SparkSession,
    *,
    bootstrap_servers: str,
    until_caught_up: bool = False,
    trigger_seconds: float = 5.0,
    checkpoint: Path | None = None,
) -> Any:
    """Start the landing query and return it (a `StreamingQuery`). With `until_caught_up`
    it lands what the topics hold now and stops (`availableNow`); otherwise it runs a
    micro-batch every `trigger_seconds` until stopped."""
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap_servers)
        .option("subscribe", ",".join(source.topic for source in EVENT_SOURCES))
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "true")
    )
    checkpoint = checkpoint or checkpoint_dir()
    writer = (
        reader.load()
        .writeStream.queryName(QUERY_NAME)
        .foreachBatch(_batch_writer(checkpoint_identity(checkpoint)))
        .option("checkpointLocation", str(checkpoint))
    )
    if until_caught_up:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{trigger_seconds:g} seconds")
    return writer.start()
