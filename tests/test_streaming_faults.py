"""The stream killed with SIGKILL mid-day, fresh values on: restarted from its checkpoint,
it has lost no event and counted none twice, in its tables and in the values it serves.

The stream runs as it does in production, in a process of its own (its own JVM and its
own data directory, since the embedded metastore admits one JVM), and is killed with its
JVM while micro-batches are being written. What it landed is then read from its Delta
tables by path and compared, row for row, with a batch generation of the same hours, and
what Redis serves is compared with the brute-force sawtooth oracle over its clean tables.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from platform_helpers import assert_served_sawtooth_values
from pyspark.sql import functions as F

from features.catalog import database_prefix
from features.sources import EVENT_SOURCES
from pipelines.config import settings
from pipelines.generate import GeneratorConfig, generate
from pipelines.redis_server import RedisServer, free_port
from pipelines.streaming.broker import KafkaBroker
from pipelines.streaming.fresh import MARKER, instant_in, realtime_views
from pipelines.streaming.publish import publish
from pipelines.streaming.topics import create_topics
from pipelines.tables import quarantine_table, raw_table

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

START = datetime(2026, 6, 2, 19, tzinfo=UTC)
CONFIG = GeneratorConfig(scale=0.2, hostile_share=0.02, late_share=0.05)
REALTIME = list(realtime_views())
# Small micro-batches (the running half hour is about 220 messages), so that the kill
# lands in one while others are still to come.
MESSAGES_PER_BATCH = 80

# The stream's process. `setup` prepares what `feature-platform stream` needs (the
# dimensions' raw tables, the first hour landed and computed); `running` and
# `until-caught-up` are the stream with fresh values on.
STREAM_PROGRAM = """
import json, sys
from datetime import datetime, timedelta
from pathlib import Path
from platform_helpers import land_dimension_dumps
from pipelines.compute import compute
from pipelines.serving.store import repo_settings
from pipelines.spark import get_spark
from pipelines.streaming.fresh import MARKER, FreshValues, realtime_views
from pipelines.streaming.land import land_events

args = json.loads(sys.argv[1])
spark = get_spark("stream")
checkpoint = Path(args["checkpoint"])
start = datetime.fromisoformat(args["start"])
fresh = None
if args["mode"] == "setup":
    land_dimension_dumps(spark, start, args["scale"])
else:
    fresh = FreshValues(args["redis_url"], repo_settings().project, checkpoint / MARKER)
query = land_events(
    spark,
    bootstrap_servers=args["servers"],
    until_caught_up=args["mode"] != "running",
    trigger_seconds=0.5,
    checkpoint=checkpoint,
    max_messages_per_batch=args["per_batch"],
    fresh=fresh,
)
query.awaitTermination()
if query.exception() is not None:
    sys.exit(1)
if args["mode"] == "setup":
    compute(spark, start=start, end=start + timedelta(hours=1), views=list(realtime_views()))
"""


@pytest.fixture(scope="module")
def broker(kafka_broker):
    create_topics(kafka_broker.bootstrap_servers)
    return kafka_broker


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """A Redis server of this module alone: it holds exactly what its stream wrote."""
    with RedisServer(tmp_path_factory.mktemp("faults-redis"), port=free_port()) as server:
        yield server


def _start_stream(
    broker: KafkaBroker,
    redis_url: str,
    data_dir: Path,
    checkpoint: Path,
    mode: str,
    per_batch: int | None = MESSAGES_PER_BATCH,
) -> subprocess.Popen:
    # The program imports the tests' helpers, as the tests do.
    helpers = str(Path(__file__).parent)
    path = os.pathsep.join(p for p in (helpers, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "FEATURE_PLATFORM_DATA_DIR": str(data_dir), "PYTHONPATH": path}
    args = {
        "servers": broker.bootstrap_servers,
        "redis_url": redis_url,
        "checkpoint": str(checkpoint),
        "mode": mode,
        "per_batch": per_batch,
        "start": START.isoformat(),
        "scale": CONFIG.scale,
    }
    return subprocess.Popen(
        [sys.executable, "-c", STREAM_PROGRAM, json.dumps(args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # one process group: the driver and its JVM die together
    )


def _batches(checkpoint: Path, log: str) -> int:
    entries = checkpoint / log
    return len([p for p in entries.iterdir() if p.name.isdigit()]) if entries.is_dir() else 0


def _committed_batches(checkpoint: Path) -> int:
    return _batches(checkpoint, "commits")


def _planned_batches(checkpoint: Path) -> int:
    """Micro-batches whose offsets Spark has logged: it does so as a micro-batch starts."""
    return _batches(checkpoint, "offsets")


def _spark_log_tail(data_dir: Path) -> str:
    logs = sorted((data_dir / "logs" / "runs").glob("spark-*.log"))
    return logs[-1].read_text(errors="replace")[-3000:] if logs else "no Spark log"


def _table(spark, data_dir: Path, table: str):
    """A table of the stream's data directory, read by path (its metastore is its own)."""
    database, name = table.split(".")
    warehouse = replace(settings(), data_dir=data_dir).warehouse_dir
    return spark.read.format("delta").load(str(warehouse / f"{database}.db" / name))


def _publish(broker: KafkaBroker, start: datetime, end: datetime) -> None:
    publish(broker.bootstrap_servers, start=start, end=end, config=CONFIG)


def test_a_killed_stream_restarts_from_its_checkpoint_without_loss_or_duplicates(
    spark, broker, redis_server, tmp_path
):
    stream_data, checkpoint = tmp_path / "stream-data", tmp_path / "checkpoint"
    _publish(broker, START, START + timedelta(hours=1))
    setup = _start_stream(broker, redis_server.url, stream_data, checkpoint, "setup", None)
    assert setup.wait(900) == 0, _spark_log_tail(stream_data)
    set_up = _committed_batches(checkpoint)

    _publish(broker, START + timedelta(hours=1), START + timedelta(minutes=90))
    running = _start_stream(broker, redis_server.url, stream_data, checkpoint, "running")
    try:
        deadline = time.monotonic() + 600
        while _committed_batches(checkpoint) < set_up + 1:
            assert running.poll() is None, _spark_log_tail(stream_data)
            assert time.monotonic() < deadline, "the stream committed no micro-batch in 600 s"
            time.sleep(0.2)
        time.sleep(10)  # into the next micro-batch: landing, ingesting or writing values
    finally:
        os.killpg(running.pid, signal.SIGKILL)
        running.wait(60)
    killed_after = _committed_batches(checkpoint)
    assert (checkpoint / MARKER).exists(), "the kill came before any fresh value was written"
    assert _planned_batches(checkpoint) > killed_after, "the kill came between micro-batches"

    # The day goes on while the stream is down, across an hour compute has not reached;
    # then it restarts from its checkpoint.
    _publish(broker, START + timedelta(minutes=90), START + timedelta(minutes=130))
    restarted = _start_stream(
        broker, redis_server.url, stream_data, checkpoint, "until-caught-up", None
    )
    assert restarted.wait(900) == 0, _spark_log_tail(stream_data)
    assert _committed_batches(checkpoint) > killed_after

    # Landed: exactly the batch generation of the same hours, no row lost or twice.
    end = START + timedelta(minutes=130)
    batch = f"{database_prefix()}batch"
    generate(
        spark,
        start=START,
        end=end,
        scale=CONFIG.scale,
        database=batch,
        late_share=CONFIG.late_share,
        hostile_share=CONFIG.hostile_share,
    )
    quarantined = _table(spark, stream_data, quarantine_table())
    events: dict[str, list[dict]] = {}
    for source in EVENT_SOURCES:
        landed = _table(spark, stream_data, raw_table(source))
        written = spark.table(f"{batch}.{source.name}")
        assert landed.count() == written.count() > 0, source.name
        assert landed.exceptAll(written).count() == 0, f"{source.name}: landed twice"
        assert written.exceptAll(landed).count() == 0, f"{source.name}: lost"
        # Ingested: every raw row clean or quarantined, an event id clean at most once.
        clean = _table(spark, stream_data, source.table)
        held = quarantined.where(F.col("source_table") == source.name).count()
        assert clean.count() + held == landed.count(), source.name
        if source.id_column is not None:
            ids = clean.select(source.id_column)
            assert ids.distinct().count() == ids.count(), f"{source.name}: an event counted twice"
        events[source.name] = [row.asDict() for row in clean.collect()]

    # Served: every entity's value at the stream's last instant is its sawtooth value.
    instant = instant_in(checkpoint / MARKER)
    assert instant is not None and START + timedelta(minutes=125) < instant <= end
    served = assert_served_sawtooth_values(redis_server.url, REALTIME, events, instant)
    assert any(row["written_at"] is not None for rows in served.values() for row in rows)
