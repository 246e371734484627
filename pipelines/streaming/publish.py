"""Live traffic: the generator's events published to Kafka in arrival order, in real time
or N times faster.

The rows are exactly those `generate` writes for the same interval, seed and scale (late
ones, malformed ones and a broken producer's included), so what the stream lands can be
checked against what a batch generation writes. A row whose ingestion time is unusable
(null, or a zeroed clock) has no place in the arrival order; it goes out first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from features.sources import EVENT_SOURCES
from pipelines.errors import PlatformError
from pipelines.generate.events import arrived_events
from pipelines.generate.world import GeneratorConfig, build_world
from pipelines.interval import Interval
from pipelines.streaming.topics import encode

Echo = Callable[[str], None]
# How often a paced run says where it is.
PROGRESS_EVERY_S = 10.0


class PublishError(PlatformError):
    pass


@dataclass
class PublishReport:
    interval: Interval
    speed: float
    messages: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        pace = "as fast as possible" if self.speed <= 0 else f"{self.speed:g}x real time"
        total = sum(self.messages.values())
        out = [
            f"published {total:,} events arriving in {self.interval} ({pace}, {self.seconds:.1f} s)"
        ]
        out += [f"  {topic:<32} {n:>10,}" for topic, n in self.messages.items()]
        return out


def arrival_order(interval: Interval, config: GeneratorConfig) -> list[tuple[datetime, Any, dict]]:
    """(arrival, source, row) of every event arriving in the interval, in arrival order
    (ties in a stable order: by source, then as generated)."""
    tables = arrived_events(build_world(config), config, interval)
    rows: list[tuple[datetime, int, int, Any, dict]] = []
    for rank, source in enumerate(EVENT_SOURCES):
        for n, row in enumerate(tables[source.name].to_pylist()):
            arrived = row.get(source.ingestion_column)
            usable = (
                isinstance(arrived, datetime) and interval.start <= _utc(arrived) < interval.end
            )
            rows.append((_utc(arrived) if usable else interval.start, rank, n, source, row))
    rows.sort(key=lambda item: (item[0], item[1], item[2]))
    return [(arrived, source, row) for arrived, _, _, source, row in rows]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def publish(
    bootstrap_servers: str,
    *,
    start: str | datetime | date,
    end: str | datetime | date,
    speed: float = 0.0,
    config: GeneratorConfig | None = None,
    echo: Echo | None = None,
    topics: Mapping[str, str] | None = None,
    on_start: Callable[[float], None] | None = None,
    ordered: list[tuple[datetime, Any, dict]] | None = None,
) -> PublishReport:
    """Publish the events arriving in `[start, end)`; `speed` N paces them at N times real
    time (0: as fast as the broker takes them). Fails if any message is not acknowledged.

    `topics` maps a source's name to a topic other than its own; `on_start` is called
    with the `time.monotonic()` the pacing counts from (an event arriving at `a` is sent
    at that plus `(a - start) / speed` seconds); `ordered` is the interval's
    `arrival_order` when the caller has it already."""
    from confluent_kafka import Producer

    interval = Interval.parse(start, end)
    config = config or GeneratorConfig()
    if ordered is None:
        ordered = arrival_order(interval, config)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,  # no duplicates from the client's own retries
            "linger.ms": 5,
            "compression.type": "lz4",
            # Only errors: a broker that is still starting makes the client log retries.
            "log_level": 3,
        }
    )
    failures: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(f"{message.topic()}: {error}")

    topic_of = {source.name: source.topic for source in EVENT_SOURCES} | dict(topics or {})
    report = PublishReport(interval, speed, {topic: 0 for topic in topic_of.values()})
    began = time.monotonic()
    if on_start is not None:
        on_start(began)
    said = began
    for arrived, source, row in ordered:
        if speed > 0:
            due = began + (arrived - interval.start).total_seconds() / speed
            while (wait := due - time.monotonic()) > 0:
                producer.poll(min(wait, 0.5))  # serves delivery reports while waiting
        key, value = encode(source, row)
        while True:
            try:
                producer.produce(topic_of[source.name], key=key, value=value, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let the broker catch up
                producer.poll(0.1)
        producer.poll(0)
        report.messages[topic_of[source.name]] += 1
        if echo is not None and time.monotonic() - said >= PROGRESS_EVERY_S:
            said = time.monotonic()
            echo(f"  at {arrived:%Y-%m-%d %H:%M:%S}: {sum(report.messages.values()):,} published")
    unsent = producer.flush(60)
    report.seconds = time.monotonic() - began
    if unsent or failures:
        detail = failures[0] if failures else f"{unsent} messages still queued after 60 s"
        raise PublishError(
            f"publishing {interval} to Kafka at {bootstrap_servers} failed: {detail} "
            f"({len(failures)} failed)"
        )
    return report
