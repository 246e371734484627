"""Streaming ingest: every event topic into its raw Delta table, then into clean.

One Spark Structured Streaming query reads all event topics. Each micro-batch is split by
topic, parsed with the raw table's schema (`pipelines.tables.raw_schema`, the schema the
messages were written with: `pipelines.streaming.topics`) and appended to the raw table.
Exactly once: the query's checkpoint records the Kafka offsets of every micro-batch, and
each append carries Delta's idempotent-write options (`txnAppId`, `txnVersion` = the
micro-batch id), so a micro-batch replayed after a crash is skipped, not written twice.

The rows land unchanged (a wrong `event_date`, a NaN, a null id as the producer wrote
them). Then the micro-batch runs the hourly `ingest` job over each arrival hour its rows
fall in, oldest first, for the event sources only (the dimensions' daily dumps do not come
through the bus, and no event rule reads them): the same rules from the same
declarations, quarantine and duplicates by identity included. An hour that is still
arriving is ingested again by every micro-batch that brings more of it, and each run
replaces exactly that hour's share of clean and quarantine, so the clean event tables
converge to what the hourly pipeline's ingest of the complete hour gives (which, run after
the stream, rewrites the same rows): one source of truth, and raw = clean + quarantined
holds.

A message that is not a row of its source (not JSON, a value of the wrong type, empty)
never becomes a raw row: it goes to the quarantine under its topic's name with reason
`unparseable:value` and its text as the record, and the stream goes on.

With fresh values on (`feature-platform stream`), the micro-batch then writes the
real-time views' values it changed to Redis (`pipelines.streaming.fresh`) before Spark
commits it, so the landing's lag bounds the fresh values' lag too.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import partial, reduce
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import EventSource
from features.sources import EVENT_SOURCES
from pipelines.config import settings
from pipelines.delta_io import ensure_database
from pipelines.errors import PlatformError
from pipelines.ingest import ingest
from pipelines.interval import HOUR, parse_time, utc_literal
from pipelines.streaming.fresh import FreshValues
from pipelines.streaming.topics import end_offsets
from pipelines.tables import QUARANTINE, quarantine_table, raw_schema, raw_table

LOG = logging.getLogger(__name__)
# Where the parser puts the text of a message that is not a row of its source.
UNPARSED = "__message"
UNPARSEABLE = "unparseable:value"
# Parse the ISO-8601 times `topics.encode` writes (UTC, `Z`, up to microseconds).
JSON_OPTIONS = {
    "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS][.SSS]XXX",
    "allowNonNumericNumbers": "true",  # a broken producer's NaN and Infinity
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": UNPARSED,
}
QUERY_NAME = "land_events"


def checkpoint_dir() -> Path:
    return settings().data_dir / "checkpoints" / QUERY_NAME


def _parsed(messages: DataFrame, source: EventSource) -> DataFrame:
    """One source's messages parsed with the raw schema, plus `UNPARSED`: the message's
    text when it is not a row of the source (else null), and when and where (partition,
    offset) the bus appended it."""
    schema = raw_schema(source).add(UNPARSED, "string")
    text = F.col("value").cast("string")
    parsed = messages.where(F.col("topic") == source.topic).select(
        F.from_json(text, schema, JSON_OPTIONS).alias("row"),
        text.alias("text"),
        "timestamp",
        "partition",
        "offset",
    )
    blank = F.col("text").isNull() | (F.trim("text") == "")
    return parsed.select(
        *[F.col(f"row.{name}").alias(name) for name in raw_schema(source).fieldNames()],
        F.when(blank, F.coalesce("text", F.lit("")))
        .otherwise(F.col(f"row.{UNPARSED}"))
        .alias(UNPARSED),
        F.col("timestamp").alias("__appended"),
        F.col("partition").alias("__partition"),
        F.col("offset").alias("__offset"),
    )


def parse_messages(messages: DataFrame, source: EventSource) -> DataFrame:
    """The raw rows of one source's messages, in the raw table's column order."""
    rows = _parsed(messages, source).where(F.col(UNPARSED).isNull())
    return rows.select(*raw_schema(source).fieldNames())


def unparseable_messages(messages: DataFrame, source: EventSource) -> DataFrame:
    """Quarantine rows for one source's messages that are not rows of it: filed under the
    topic (no raw row stands for them, so ingest's share of the quarantine never holds
    them), arrived when Kafka appended them."""
    rows = _parsed(messages, source).where(F.col(UNPARSED).isNotNull())
    return rows.select(
        F.lit(source.topic).alias("source_table"),
        F.lit(UNPARSEABLE).alias("reason"),
        F.col(UNPARSED).alias("record"),
        F.lit(None).cast("timestamp").alias("event_timestamp"),
        F.col("__appended").alias("ingestion_timestamp"),
        F.to_date("__appended").alias("ingestion_date"),
    ).select(*QUARANTINE.fieldNames())


def arrival_hours(raw: list[tuple[EventSource, DataFrame]]) -> list[datetime]:
    """The hours in which the usable arrival times of these raw rows fall, oldest first."""
    hours: set[datetime] = set()
    for source, rows in raw:
        arrived = F.col(source.ingestion_column)
        usable = rows.where(arrived >= utc_literal(source.validity.earliest))
        found = usable.select(F.date_trunc("hour", arrived).alias("hour")).distinct().collect()
        hours.update(row["hour"] for row in found)
    return sorted(hours)


def arrival_span(
    messages: DataFrame, ends_of: Callable[[list[tuple[str, int]]], dict[tuple[str, int], int]]
) -> tuple[datetime, datetime] | None:
    """The first arrival time of the events in these messages and their *watermark*, the
    arrival time before which every event has now been landed (None if there is none).

    A topic partition carries its events in arrival order. One that these messages read to
    its end (by `ends_of`, its end offset now) holds nothing that arrived before its
    newest event, nor does one they did not read (it had nothing new); but one read only
    part of the way (a micro-batch capped in size, or messages appended since) may hold
    events older than another partition's newest. So the watermark is the oldest newest
    arrival of the partitions read part of the way, else the newest arrival. Only usable
    arrival times count, and none later than when the bus received the message (by more
    than the source's clock skew): a broken producer's far-future arrival time never moves
    the stream's instant (`pipelines.streaming.fresh`)."""
    spans = []
    for source in EVENT_SOURCES:
        arrived = F.col(source.ingestion_column)
        skew = int(source.validity.clock_skew.total_seconds() * 1_000_000)
        plausible = (arrived >= utc_literal(source.validity.earliest)) & (
            F.unix_micros(arrived) <= F.unix_micros("__appended") + F.lit(skew)
        )
        usable = F.when(F.col(UNPARSED).isNull() & plausible, arrived)
        spans.append(
            _parsed(messages, source)
            .groupBy("__partition")
            .agg(
                F.min(usable).alias("first"),
                F.max(usable).alias("newest"),
                F.max("__offset").alias("last_offset"),
            )
            .select(F.lit(source.topic).alias("topic"), "*")
        )
    partitions = reduce(DataFrame.unionByName, spans).collect()
    firsts = [p["first"] for p in partitions if p["first"] is not None]
    if not firsts:
        return None
    ends = ends_of([(p["topic"], p["__partition"]) for p in partitions])
    newest = [p["newest"] for p in partitions if p["newest"] is not None]
    cut = [
        p["newest"]
        for p in partitions
        if p["newest"] is not None and p["last_offset"] + 1 < ends[(p["topic"], p["__partition"])]
    ]
    return parse_time(min(firsts)), parse_time(min(cut) if cut else max(newest))


def checkpoint_identity(checkpoint: Path) -> str:
    """An id that lives and dies with the checkpoint. Delta skips an idempotent write whose
    version is not above the last one of its app id; a new checkpoint restarts micro-batch
    ids at 0, so it must write under a new app id or every batch would be skipped."""
    checkpoint.mkdir(parents=True, exist_ok=True)
    marker = checkpoint / "landing-id"
    if not marker.exists():
        marker.write_text(f"{uuid.uuid4()}\n")
    return marker.read_text().strip()


def _append_once(
    df: DataFrame, table: str, identity: str, batch_id: int, partition_column: str
) -> None:
    ensure_database(df.sparkSession, table.split(".")[0])
    (
        df.write.format("delta")
        .mode("append")
        .partitionBy(partition_column)
        .option("txnAppId", f"{QUERY_NAME}:{identity}:{table}")
        .option("txnVersion", batch_id)
        .saveAsTable(table)
    )


def _batch_writer(
    identity: str,
    clean: bool = True,
    fresh: FreshValues | None = None,
    bootstrap_servers: str | None = None,  # where `fresh` reads the topics' end offsets
) -> Callable[[DataFrame, int], None]:
    def write(messages: DataFrame, batch_id: int) -> None:
        spark = messages.sparkSession
        messages.persist()
        try:
            landed = []
            for source in EVENT_SOURCES:
                rows = parse_messages(messages, source)
                _append_once(rows, raw_table(source), identity, batch_id, source.partition_column)
                landed.append((source, rows))
            unparsed = reduce(
                DataFrame.unionByName, [unparseable_messages(messages, s) for s in EVENT_SOURCES]
            )
            if not unparsed.isEmpty():
                _append_once(unparsed, quarantine_table(), identity, batch_id, "ingestion_date")
            if clean:
                # Hour by hour, as the hourly pipeline does: an hour's duplicates and orphans
                # are judged against what the hours before it accepted.
                for hour in arrival_hours(landed):
                    report = ingest(spark, start=hour, end=hour + HOUR, events_only=True)
                    LOG.info("micro-batch %d: %s", batch_id, " | ".join(report.lines()))
                if fresh is not None:
                    assert bootstrap_servers is not None
                    ends = partial(end_offsets, bootstrap_servers)
                    written = fresh.update(spark, arrival_span(messages, ends))
                    if written is not None:
                        LOG.info("micro-batch %d: %s", batch_id, written.line())
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
    clean: bool = True,
    max_messages_per_batch: int | None = None,
    fresh: FreshValues | None = None,
) -> Any:
    """Start the landing query and return it (a `StreamingQuery`). With `until_caught_up`
    it lands what the topics hold now and stops (`availableNow`); otherwise it runs a
    micro-batch every `trigger_seconds` until stopped. With `clean`, each micro-batch
    also ingests the event sources' rows of the hours it brought rows of. With `fresh`
    (which needs `clean`), each micro-batch then writes the real-time views' values it
    changed to Redis (`streaming.fresh`)."""
    if fresh is not None and not clean:
        raise PlatformError("fresh values are computed from the clean tables: land with clean")
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap_servers)
        .option("subscribe", ",".join(source.topic for source in EVENT_SOURCES))
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "true")
    )
    if max_messages_per_batch is not None:
        reader = reader.option("maxOffsetsPerTrigger", max_messages_per_batch)
    checkpoint = checkpoint or checkpoint_dir()
    writer = (
        reader.load()
        .writeStream.queryName(QUERY_NAME)
        .foreachBatch(
            _batch_writer(checkpoint_identity(checkpoint), clean, fresh, bootstrap_servers)
        )
        .option("checkpointLocation", str(checkpoint))
    )
    if until_caught_up:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{trigger_seconds:g} seconds")
    return writer.start()
