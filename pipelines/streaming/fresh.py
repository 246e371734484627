"""Fresh values of real-time views: the stream writes them into Feast's Redis layout.

After a micro-batch has landed its messages and ingested their hours into the clean tables
(`pipelines.streaming.land`), the stream knows every event that arrived before the
batch's *instant* t: just after its watermark, the arrival time before which every event
has been landed (`land.arrival_span`: a topic partition carries its events in arrival
order, and a partition read only part of the way bounds what may still come). For every
real-time view it then writes to Redis the sawtooth value at t (`features.core`) of each
entity with an event that arrived since the last instant written, and, when t has crossed
hour boundaries, the value at the latest boundary T of each entity whose window state
changed by T. The value is computed by the
training set's own `sawtooth_join`, from the same state rows and clean tables, so a value
served at t is the `realtime` training value at t, by construction; it is stored with
event and created time t, so newer-wins (`serving.redis_writer`) keeps it against the
hourly materialization's older rows, and keeps the hourly rows when the stream stops.

The state row at T as known at T is usually not written yet when t passes T: the hourly
compute runs minutes later. The stream then computes the versions after the state table's
last one exactly as compute would (`compute.job.windowed_state` over the missing hours;
nothing is written), so it never waits for the batch and never disagrees with it. The
latest such row per entity is kept for the hour, so each micro-batch joins its entities
with one row each, and reads the head (events of the current hour) from the clean tables.

Redis being down stalls the stream: a failed write is retried until Redis answers again
(or `redis_wait` runs out, and the micro-batch fails). The landing part of the batch is
already written idempotently, and values are idempotent too, so a retried or replayed
batch writes the same bytes.

Once every value of a micro-batch is written, its instant is published in Redis
(`serving.encoding.fresh_instant_key`): a reader that reads it before the values knows
the instant each served value is as of (`serving.direct`), and the request log keeps it
for the replay check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import REGISTRY, FeatureView
from features.errors import PlatformError
from pipelines.compute.job import windowed_state
from pipelines.compute.state import typed_state
from pipelines.feature_tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP, newest_per_entity
from pipelines.interval import Interval, floor_hour, parse_time, to_unix_micros, utc_literal
from pipelines.redis_server import RedisUnavailableError, check_redis, redacted, redis_client
from pipelines.serving.encoding import fresh_instant_key
from pipelines.serving.materialize import layout_for
from pipelines.serving.redis_writer import RESULT_SCHEMA, PartitionWriter
from pipelines.training.sawtooth import sawtooth_join

LOG = logging.getLogger(__name__)
# How long a micro-batch waits for Redis to come back before it fails.
DEFAULT_REDIS_WAIT = timedelta(minutes=10)
_RETRY_EVERY_S = 2.0
_LABEL_TIME = "__fresh_time"
# Arrival times are microseconds: the instant just after an arrival counts it.
_TICK = timedelta(microseconds=1)
# Beside the stream's checkpoint: the instant the values were last written as of.
MARKER = "fresh-instant"
_Result = TypeVar("_Result")


class FreshValuesError(PlatformError):
    pass


def realtime_views() -> tuple[FeatureView, ...]:
    return tuple(v for v in REGISTRY.views if isinstance(v, FeatureView) and v.realtime)


def known_state(spark: SparkSession, view: FeatureView, hour: datetime) -> DataFrame:
    """`view`'s state rows as known at `hour`: the table's versions up to its newest one
    at or before `hour`, and the versions after it that compute would write up to `hour`
    (computed here, not written)."""
    table = spark.table(view.state_table)
    known_by = utc_literal(hour)
    last = table.where(F.col(CREATED_TIMESTAMP) <= known_by).agg(F.max(CREATED_TIMESTAMP))
    newest = last.collect()[0][0]
    if newest is None:
        raise FreshValuesError(
            f"table {view.state_table} holds nothing known by {hour:%Y-%m-%d %H:%M} "
            f"(compute feature view {view.name} up to then first)"
        )
    newest = parse_time(newest)
    known = table.where(F.col(CREATED_TIMESTAMP) <= utc_literal(newest))
    if newest < hour:
        pending = typed_state(view, windowed_state(spark, view, Interval(newest, hour)))
        known = known.select(*pending.columns).unionByName(pending)
    return known


def latest_state(known: DataFrame, view: FeatureView, hour: datetime) -> DataFrame:
    """Per entity, the newest of the state rows `known` at `hour`."""
    at_or_before = known.where(F.col(EVENT_TIMESTAMP) <= utc_literal(hour))
    return newest_per_entity(at_or_before, view.entity.join_key)


def instant_in(marker: Path) -> datetime | None:
    """The instant the stream's values were last written as of (None: never)."""
    return parse_time(marker.read_text().strip()) if marker.exists() else None


@dataclass
class _HourState:
    hour: datetime
    rows: DataFrame  # latest state row per entity known at `hour`, cached


@dataclass(frozen=True)
class FreshReport:
    instant: datetime
    rows: dict[str, int]  # view -> entities whose value was computed
    written: dict[str, int]  # view -> values written (others: Redis held a newer one)
    seconds: float
    redis_waits: int = 0

    def line(self) -> str:
        parts = ", ".join(f"{v} {self.written[v]}/{self.rows[v]}" for v in self.rows)
        waited = f", waited for Redis {self.redis_waits}x" if self.redis_waits else ""
        return f"fresh values at {self.instant.isoformat()}: {parts} ({self.seconds:.1f} s{waited})"


@dataclass
class FreshValues:
    """Writes the real-time views' values after each micro-batch; the instant it last wrote
    is kept in `marker` (beside the stream's checkpoint), so a restarted stream goes on
    from there."""

    redis_url: str
    project: str
    marker: Path
    views: tuple[FeatureView, ...] = field(default_factory=realtime_views)
    redis_wait: timedelta = DEFAULT_REDIS_WAIT
    _states: dict[str, _HourState] = field(default_factory=dict)

    def last_instant(self) -> datetime | None:
        return instant_in(self.marker)

    def _state_at(self, spark: SparkSession, view: FeatureView, hour: datetime) -> DataFrame:
        held = self._states.get(view.name)
        if held is not None and held.hour == hour:
            return held.rows
        rows = latest_state(known_state(spark, view, hour), view, hour).persist()
        rows.count()
        if held is not None:
            held.rows.unpersist()
        self._states[view.name] = _HourState(hour, rows)
        return rows

    def _labels(
        self,
        spark: SparkSession,
        view: FeatureView,
        state: DataFrame,
        since: datetime | None,
        arrived_from: datetime | None,
        instant: datetime,
    ) -> DataFrame:
        """(entity, time) to write: at the instant, the entities with events that arrived
        in `[arrived_from, instant)`; at the hour boundary, those whose state changed after
        `since`, the last instant written (None: every entity, every time)."""
        key = view.entity.join_key
        hour = floor_hour(instant)
        arrived = []
        for source in view.sources:
            arrival = F.col(source.ingestion_column)
            window = arrival < utc_literal(instant)
            if arrived_from is not None:
                window = window & (arrival >= utc_literal(arrived_from))
            arrived.append(
                spark.table(source.table).where(window & F.col(key).isNotNull()).select(key)
            )
        touched = arrived[0]
        for more in arrived[1:]:
            touched = touched.unionByName(more)
        touched = touched.distinct()
        changed = state
        if since is not None:
            changed = state.where(F.col(CREATED_TIMESTAMP) > utc_literal(since))
        at_hour = changed.select(key).join(touched, key, "left_anti")
        return touched.select(key, utc_literal(instant).alias(_LABEL_TIME)).unionByName(
            at_hour.select(key, utc_literal(hour).alias(_LABEL_TIME))
        )

    def _values(
        self, spark: SparkSession, view: FeatureView, labels: DataFrame, instant: datetime
    ) -> DataFrame:
        hour = floor_hour(instant)
        state = self._state_at(spark, view, hour)
        # The head: what arrived in the current hour, and earlier events whose clock ran
        # ahead into it (ingest quarantines any further ahead than the declared skew).
        events = {
            s.name: spark.table(s.table).where(
                F.col(s.ingestion_column) >= utc_literal(hour - s.validity.clock_skew)
            )
            for s in view.sources
        }
        values = sawtooth_join(
            labels, view, state=state, events=events, timestamp_column=_LABEL_TIME
        )
        return values.select(
            view.entity.join_key,
            F.col(_LABEL_TIME).alias(EVENT_TIMESTAMP),
            F.col(_LABEL_TIME).alias(CREATED_TIMESTAMP),
            *[f.name for f in view.features],
        )

    def _write(self, values: DataFrame, view: FeatureView) -> tuple[int, int]:
        writer = PartitionWriter(layout_for(view, self.project), self.redis_url)
        counts = values.mapInArrow(writer, RESULT_SCHEMA).collect()
        return sum(int(r["rows"]) for r in counts), sum(int(r["written"]) for r in counts)

    def _waiting(self, what: str, action: Callable[[], _Result]) -> tuple[_Result, int]:
        """`action()`, retried while Redis does not answer; returns its result and the retries."""
        gave_up_at = time.monotonic() + self.redis_wait.total_seconds()
        retries = 0
        while True:
            try:
                return action(), retries
            except Exception as exc:
                try:
                    check_redis(self.redis_url)
                except RedisUnavailableError as down:
                    if time.monotonic() >= gave_up_at:
                        raise FreshValuesError(f"{what}: {down} for {self.redis_wait}") from None
                    if retries == 0:
                        LOG.warning("%s: waiting for it to come back", down)
                    retries += 1
                    time.sleep(_RETRY_EVERY_S)
                    continue
                raise FreshValuesError(
                    f"{what} in {redacted(self.redis_url)}: {str(exc).strip().splitlines()[0]}"
                ) from exc

    def _publish_instant(self, instant: datetime) -> None:
        """Tell the readers that every value is now written as of `instant` (the request
        log records it with each served vector: `pipelines.serving.direct`)."""
        client = redis_client(self.redis_url)
        try:
            client.set(fresh_instant_key(self.project), str(to_unix_micros(instant)))
        finally:
            client.close()

    def update(
        self, spark: SparkSession, arrivals: tuple[datetime, datetime] | None
    ) -> FreshReport | None:
        """Write the values at the instant just after the watermark of `arrivals` (the
        first arrival time a micro-batch brought, and the arrival time before which every
        event has been landed: `land.arrival_span`; see the module docstring); None when
        it brought nothing."""
        since = self.last_instant()
        if arrivals is None:
            return None
        instant = arrivals[1] + _TICK
        # Events of the last micro-batch that arrived after its watermark, and a partition
        # that lagged: their entities are written again too.
        arrived_from = None
        if since is not None:
            instant, arrived_from = max(instant, since), min(arrivals[0], since)
        began = time.perf_counter()
        rows: dict[str, int] = {}
        written: dict[str, int] = {}
        waits = 0
        for view in self.views:
            state = self._state_at(spark, view, floor_hour(instant))
            labels = self._labels(spark, view, state, since, arrived_from, instant).persist()
            try:
                values = self._values(spark, view, labels, instant)
                (rows[view.name], written[view.name]), retries = self._waiting(
                    f"writing fresh values of {view.name}",
                    partial(self._write, values, view),
                )
            finally:
                labels.unpersist()
            waits += retries
        _, retries = self._waiting(
            "publishing the fresh values' instant", partial(self._publish_instant, instant)
        )
        waits += retries
        self.marker.parent.mkdir(parents=True, exist_ok=True)
        written_marker = self.marker.with_suffix(".tmp")
        written_marker.write_text(f"{instant.isoformat()}\n")
        written_marker.replace(self.marker)  # readers (`--status`) never see half of it
        return FreshReport(instant, rows, written, time.perf_counter() - began, waits)

    def close(self) -> None:
        for held in self._states.values():
            held.rows.unpersist()
        self._states.clear()


def fresh_values(checkpoint: Path, redis_url: str | None = None) -> FreshValues:
    """The fresh-values writer of the stream checkpointed in `checkpoint`: Redis at
    `redis_url`, else REDIS_URL, else the platform's local server (started if needed)."""
    from pipelines.serving.store import repo_settings, resolve_redis_url

    return FreshValues(
        redis_url=resolve_redis_url(redis_url),
        project=repo_settings().project,
        marker=checkpoint / MARKER,
    )


def _bytes_under(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def fresh_status(checkpoint: Path) -> list[str]:
    """What `stream --status` says of the fresh values: the instant they were last written
    as of, and the size on disk of the window state they are merged from."""
    from pipelines.config import settings

    instant = instant_in(checkpoint / MARKER)
    lines = [
        "fresh values: none written yet"
        if instant is None
        else f"fresh values: written as of {instant.isoformat()} (every event that arrived before it)"
    ]
    for view in realtime_views():
        database, table = view.state_table.split(".", 1)
        size = _bytes_under(settings().warehouse_dir / f"{database}.db" / table)
        lines.append(f"  window state {view.state_table:<32} {size / 1e6:10.1f} MB")
    return lines
