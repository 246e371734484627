"""The landing stream killed with SIGKILL mid-day: restarted from its checkpoint, it has
lost no event and written none twice.

The stream runs as it does in production, in a process of its own (its own JVM and its
own data directory, since the embedded metastore admits one JVM), and is killed with its
JVM while micro-batches are being written. What it landed is then read from its Delta
tables by path and compared, row for row, with a batch generation of the same hours.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from features.catalog import database_prefix
from features.sources import EVENT_SOURCES
from pipelines.config import settings
from pipelines.generate import GeneratorConfig, generate
from pipelines.streaming.broker import KafkaBroker
from pipelines.streaming.publish import publish
from pipelines.streaming.topics import create_topics
from pipelines.tables import raw_table

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

START = datetime(2026, 6, 2, 19, tzinfo=UTC)
CONFIG = GeneratorConfig(scale=0.2, hostile_share=0.02, late_share=0.05)
# Small micro-batches, so that the kill lands while some are still to come.
MESSAGES_PER_BATCH = 200

STREAM_PROGRAM = """
import sys
from pathlib import Path
from pipelines.spark import get_spark
from pipelines.streaming.land import land_events

servers, checkpoint, mode, per_batch = sys.argv[1:5]
query = land_events(
    get_spark("landing-stream"),
    bootstrap_servers=servers,
    until_caught_up=mode == "until-caught-up",
    trigger_seconds=0.5,
    checkpoint=Path(checkpoint),
    clean=False,
    max_messages_per_batch=int(per_batch),
)
query.awaitTermination()
sys.exit(0 if query.exception() is None else 1)
"""


@pytest.fixture(scope="module")
def broker(kafka_broker):
    create_topics(kafka_broker.bootstrap_servers)
    return kafka_broker


def _start_stream(
    broker: KafkaBroker, data_dir: Path, checkpoint: Path, mode: str
) -> subprocess.Popen:
    env = {**os.environ, "FEATURE_PLATFORM_DATA_DIR": str(data_dir)}
    args = [broker.bootstrap_servers, str(checkpoint), mode, str(MESSAGES_PER_BATCH)]
    return subprocess.Popen(
        [sys.executable, "-c", STREAM_PROGRAM, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # one process group: the driver and its JVM die together
    )


def _committed_batches(checkpoint: Path) -> int:
    commits = checkpoint / "commits"
    return len([p for p in commits.iterdir() if p.name.isdigit()]) if commits.is_dir() else 0


def _spark_log_tail(data_dir: Path) -> str:
    logs = sorted((data_dir / "logs" / "runs").glob("spark-*.log"))
    return logs[-1].read_text(errors="replace")[-3000:] if logs else "no Spark log"


def _landed(spark, data_dir: Path, source):
    database, table = raw_table(source).split(".")
    warehouse = replace(settings(), data_dir=data_dir).warehouse_dir
    return spark.read.format("delta").load(str(warehouse / f"{database}.db" / table))


def test_a_killed_stream_restarts_from_its_checkpoint_without_loss_or_duplicates(
    spark, broker, tmp_path
):
    stream_data, checkpoint = tmp_path / "stream-data", tmp_path / "checkpoint"
    publish(broker.bootstrap_servers, start=START, end=START + timedelta(hours=1), config=CONFIG)

    running = _start_stream(broker, stream_data, checkpoint, "continuous")
    try:
        deadline = time.monotonic() + 300
        while _committed_batches(checkpoint) < 2:
            assert running.poll() is None, _spark_log_tail(stream_data)
            assert time.monotonic() < deadline, "the stream committed no micro-batch in 300 s"
            time.sleep(0.2)
    finally:
        os.killpg(running.pid, signal.SIGKILL)
        running.wait(60)
    killed_after = _committed_batches(checkpoint)
    first_hour = sum(_landed(spark, stream_data, source).count() for source in EVENT_SOURCES)
    assert first_hour > 0, "the kill came before anything landed"

    # The day goes on while the stream is down; then it restarts from its checkpoint.
    publish(
        broker.bootstrap_servers,
        start=START + timedelta(hours=1),
        end=START + timedelta(hours=2),
        config=CONFIG,
    )
    restarted = _start_stream(broker, stream_data, checkpoint, "until-caught-up")
    assert restarted.wait(600) == 0, _spark_log_tail(stream_data)
    assert _committed_batches(checkpoint) > killed_after

    batch = f"{database_prefix()}batch"
    generate(
        spark,
        start=START,
        end=START + timedelta(hours=2),
        scale=CONFIG.scale,
        database=batch,
        late_share=CONFIG.late_share,
        hostile_share=CONFIG.hostile_share,
    )
    for source in EVENT_SOURCES:
        landed = _landed(spark, stream_data, source)
        written = spark.table(f"{batch}.{source.name}")
        assert landed.count() == written.count() > 0, source.name
        assert landed.exceptAll(written).count() == 0, f"{source.name}: landed twice"
        assert written.exceptAll(landed).count() == 0, f"{source.name}: lost"
