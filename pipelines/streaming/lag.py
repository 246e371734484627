"""How far the streaming ingest is behind its topics, from its checkpoint and the broker.

The landing query's checkpoint holds, per committed micro-batch, the Kafka offsets it
read up to (`offsets/<batch>`, committed once `commits/<batch>` exists). Against each
partition's end offset that gives the messages not landed yet, and the oldest of them
(read from the broker) gives the lag in time: what the hourly pipeline, which runs on
what the stream landed, would miss if it ran now.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from features.monitoring import STREAM_LAG_ALERT
from pipelines.errors import NothingToCheckError, PlatformError
from pipelines.streaming.land import checkpoint_dir
from pipelines.streaming.topics import offsets_consumer, topics


class StreamLagError(PlatformError):
    pass


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    landed: int  # the next offset the stream will read
    end: int  # the offset the next message will get
    oldest_waiting: datetime | None  # when the first message not landed was produced

    @property
    def behind(self) -> int:
        return max(self.end - self.landed, 0)


@dataclass(frozen=True)
class StreamLag:
    checkpoint: Path
    last_batch: int
    committed_at: datetime
    checkpoint_bytes: int
    partitions: tuple[PartitionLag, ...]
    measured_at: datetime

    @property
    def messages_behind(self) -> int:
        return sum(p.behind for p in self.partitions)

    @property
    def lag(self) -> timedelta:
        """The age of the oldest message not landed yet (zero when caught up)."""
        waiting = [p.oldest_waiting for p in self.partitions if p.behind and p.oldest_waiting]
        return self.measured_at - min(waiting) if waiting else timedelta(0)

    def lines(self) -> list[str]:
        out = [
            f"stream ingest: {self.messages_behind:,} messages behind, lag {_seconds(self.lag)}; "
            f"last micro-batch {self.last_batch} committed {self.committed_at:%Y-%m-%d %H:%M:%S} "
            f"UTC; checkpoint {self.checkpoint} ({self.checkpoint_bytes / 2**20:.1f} MiB)",
            f"  {'topic':<28} {'partition':>9} {'landed':>12} {'end':>12} {'behind':>9}",
        ]
        for p in self.partitions:
            out.append(
                f"  {p.topic:<28} {p.partition:>9} {p.landed:>12,} {p.end:>12,} {p.behind:>9,}"
            )
        return out

    def check(self, bound: timedelta = STREAM_LAG_ALERT) -> None:
        """Raise StreamLagError naming the topics behind when the lag exceeds `bound`."""
        if self.lag <= bound:
            return
        late = sorted({p.topic for p in self.partitions if p.behind})
        raise StreamLagError(
            f"the streaming ingest is {_seconds(self.lag)} behind (bound {_seconds(bound)}): "
            f"{self.messages_behind:,} messages of {', '.join(late)} not landed"
        )


def _seconds(span: timedelta) -> str:
    return f"{span.total_seconds():,.0f} s"


def landed_offsets(checkpoint: Path) -> tuple[int, datetime, dict[tuple[str, int], int]]:
    """(last committed micro-batch, when it was committed, next offset per partition)."""
    commits = [int(p.name) for p in (checkpoint / "commits").glob("*") if p.name.isdigit()]
    if not commits:
        raise NothingToCheckError(f"no stream ingest has committed a micro-batch in {checkpoint}")
    last = max(commits)
    committed_at = datetime.fromtimestamp((checkpoint / "commits" / str(last)).stat().st_mtime, UTC)
    lines = (checkpoint / "offsets" / str(last)).read_text().splitlines()
    # "v1", the batch's metadata, then one line of offsets per source (one Kafka source).
    offsets = json.loads(lines[2])
    landed = {
        (topic, int(partition)): int(offset)
        for topic, partitions in offsets.items()
        for partition, offset in partitions.items()
    }
    return last, committed_at, landed


def stream_lag(
    bootstrap_servers: str | None = None, checkpoint: Path | None = None, *, timeout: float = 10.0
) -> StreamLag:
    """The stream's lag now; NothingToCheckError when it never committed a micro-batch
    (checked before any broker is looked for). `bootstrap_servers`: default, the
    platform's Kafka (`broker.bootstrap_servers`)."""
    from confluent_kafka import KafkaException, TopicPartition

    from pipelines.streaming.broker import bootstrap_servers as platform_kafka

    checkpoint = checkpoint or checkpoint_dir()
    last, committed_at, landed = landed_offsets(checkpoint)
    bootstrap_servers = bootstrap_servers or platform_kafka()
    # Reads one message per partition that is behind: the oldest one not landed.
    consumer = offsets_consumer(bootstrap_servers, "feature-platform-lag")
    partitions = []
    try:
        for topic in topics():
            metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
            for partition in sorted(metadata.partitions):
                position = landed.get((topic, partition), 0)
                _, end = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout
                )
                oldest = None
                if end > position:
                    consumer.assign([TopicPartition(topic, partition, position)])
                    message = consumer.poll(timeout)
                    if message is not None and message.error() is None:
                        oldest = datetime.fromtimestamp(message.timestamp()[1] / 1000, UTC)
                partitions.append(PartitionLag(topic, partition, position, end, oldest))
    except KafkaException as exc:
        raise StreamLagError(
            f"cannot read offsets from Kafka at {bootstrap_servers}: {exc}"
        ) from None
    finally:
        consumer.close()
    size = sum(p.stat().st_size for p in checkpoint.rglob("*") if p.is_file())
    return StreamLag(checkpoint, last, committed_at, size, tuple(partitions), datetime.now(UTC))


def check_stream_lag(echo: Callable[[str], None] = print) -> StreamLag:
    """The lag of the platform's stream ingest, printed through `echo`; StreamLagError past
    the declared bound (`features.monitoring.STREAM_LAG_ALERT`), NothingToCheckError where
    no stream ingest ever committed."""
    lag = stream_lag()
    for line in lag.lines():
        echo(line)
    lag.check()
    return lag
