"""Materialization: what the pipeline learned in `[start, end)` into Redis, in Feast's layout.

A run over `[start, end)` (the same interval as the `compute` run before it) takes the
versions that became knowable in `(start, end]` and, per entity, the newest of them
(greatest `event_timestamp`, then greatest `created_timestamp`); the executors write
those rows straight to Redis (`mapInArrow` + `redis_writer.PartitionWriter`); nothing
but one count row per Arrow batch comes back to the driver. Feast's
`get_online_features` and `feast serve` read the result as if Feast had written it.

So each entity's current value as of `end` goes online when it changed: a new hourly
row, or a late correction of the current row. A correction of an older row reaches
Redis too, where the newer row already stored wins (newer-wins by event time, then by
version). Redis up to date as of `start` is therefore up to date as of `end`; a first
materialization starts where the data starts.

TTL: a run writes only rows with `event_timestamp >= end - ttl` (views with a TTL),
so Redis never receives a value that had already expired as of `end` -- the same
rows Feast's point-in-time join would treat as expired at `end`. Values are not
given a Redis expiry (all views of an entity share one hash, attribute views have
no TTL, and Redis 6 cannot expire single fields); reads can enforce the TTL as of
a given time (`online.get_online_features(..., as_of=...)`).

Reruns are idempotent and never move a value back in time: a row is written only
if its (event time, version) is not older than the stored one. If Redis fails midway
the command fails (non-zero exit); rows already written are valid values and the
same interval can simply be rerun.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import REGISTRY, AnyView
from pipelines.delta_io import require_table
from pipelines.errors import PlatformError
from pipelines.feature_tables import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    newest_per_entity,
    versions_learned_in,
)
from pipelines.interval import Interval, utc_literal
from pipelines.progress import progress
from pipelines.redis_server import redacted
from pipelines.serving.encoding import ViewLayout, view_layout
from pipelines.serving.redis_writer import DEFAULT_CHUNK_ROWS, RESULT_SCHEMA, PartitionWriter
from pipelines.serving.store import repo_settings, resolve_redis_url

PARALLEL_VIEWS = 4


class MaterializeError(PlatformError):
    pass


@dataclass(frozen=True)
class ViewReport:
    view: str
    oldest_event: datetime | None  # rows older than this had expired at the end (TTL)
    rows: int  # entities with a version learned in the interval
    written: int
    skipped_older: int  # Redis already held a newer value
    seconds: float

    @property
    def entities_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class MaterializeReport:
    interval: Interval
    redis: str
    views: tuple[ViewReport, ...]
    seconds: float
    feast_registry_updated: bool = field(default=False)

    @property
    def written(self) -> int:
        return sum(v.written for v in self.views)

    def summary(self) -> str:
        lines = [f"materialized {self.interval} into {self.redis} in {self.seconds:.1f} s"]
        for v in self.views:
            lines.append(
                f"  {v.view:<20} entities {v.rows:>9}  written {v.written:>9}"
                f"  kept newer {v.skipped_older:>7}  {v.seconds:6.1f} s"
            )
        if not self.feast_registry_updated:
            lines.append("  (Feast registry not updated: run `feature-platform feast apply` first)")
        return "\n".join(lines)


def layout_for(view: AnyView, project: str) -> ViewLayout:
    return view_layout(
        project,
        view.name,
        view.entity.join_key,
        view.entity.value_type,
        [(f.name, f.value_type) for f in view.features],
    )


def oldest_servable_event(view: AnyView, interval: Interval) -> datetime | None:
    """Rows with an older event time had expired at the interval's end (None: no TTL)."""
    ttl = view.effective_ttl
    return None if ttl.total_seconds() <= 0 else interval.end - ttl


def learned_rows(features: DataFrame, view: AnyView, interval: Interval) -> DataFrame:
    """Per entity, the newest version that became knowable in `(start, end]`, unless it
    had expired at `end`: the rows a run over the interval sends to Redis."""
    key = view.entity.join_key
    learned = versions_learned_in(features, interval)
    oldest = oldest_servable_event(view, interval)
    if oldest is not None:
        learned = learned.where(F.col(EVENT_TIMESTAMP) >= utc_literal(oldest))
    return newest_per_entity(learned, key).select(
        key, EVENT_TIMESTAMP, CREATED_TIMESTAMP, *[f.name for f in view.features]
    )


def _check_columns(features: DataFrame, view: AnyView) -> None:
    needed = [view.entity.join_key, EVENT_TIMESTAMP, CREATED_TIMESTAMP]
    needed += [f.name for f in view.features]
    missing = [c for c in needed if c not in features.columns]
    if missing:
        raise MaterializeError(f"table {view.table} lacks column(s) {', '.join(missing)}")


def _failure_reason(exc: Exception) -> str:
    """The useful line of an executor failure (the Python exception, not the JVM trace)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("redis.exceptions.") or "Error:" in line.split(" ", 1)[0]:
            return line
    return lines[0] if lines else repr(exc)


def materialize_view(
    spark: SparkSession,
    view: AnyView,
    interval: Interval,
    *,
    redis_url: str,
    project: str,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> ViewReport:
    """Write one view's latest rows of `interval` to Redis (the caller checked Redis and the table)."""
    began = time.perf_counter()
    features = spark.table(view.table)
    _check_columns(features, view)
    writer = PartitionWriter(layout_for(view, project), redis_url, chunk_rows)
    counts = learned_rows(features, view, interval).mapInArrow(writer, RESULT_SCHEMA)
    try:
        per_batch = counts.collect()  # one small row per Arrow batch of written rows
    except Exception as exc:
        raise MaterializeError(
            f"materializing {view.name} into Redis at {redacted(redis_url)} failed: "
            f"{_failure_reason(exc)} (values already written are valid; rerun the same interval)"
        ) from None
    return ViewReport(
        view=view.name,
        oldest_event=oldest_servable_event(view, interval),
        rows=sum(int(r["rows"]) for r in per_batch),
        written=sum(int(r["written"]) for r in per_batch),
        skipped_older=sum(int(r["skipped"]) for r in per_batch),
        seconds=time.perf_counter() - began,
    )


def _materialize_views(
    spark: SparkSession,
    views: Sequence[AnyView],
    interval: Interval,
    *,
    redis_url: str,
    project: str,
    chunk_rows: int,
) -> tuple[ViewReport, ...]:
    """One Spark job per view, a few at a time: small views are bound by per-job latency
    (planning, catalog, scheduling), which overlaps; big ones share the executors."""

    def one(view: AnyView) -> ViewReport:
        return materialize_view(
            spark, view, interval, redis_url=redis_url, project=project, chunk_rows=chunk_rows
        )

    with (
        progress(f"materialize {len(views)} views", len(views)) as advance,
        ThreadPoolExecutor(max_workers=min(PARALLEL_VIEWS, len(views))) as pool,
    ):
        futures = [pool.submit(one, view) for view in views]
        for future in futures:
            future.add_done_callback(lambda _: advance())
        wait(futures)
    for future in futures:  # every job has ended; report the first failure
        error = future.exception()
        if error is not None:
            raise error
    return tuple(future.result() for future in futures)


def _record_in_feast_registry(views: Sequence[AnyView], interval: Interval, redis_url: str) -> bool:
    """Tell Feast's registry the interval is materialized (for `materialize-incremental`)."""
    from feast.errors import FeatureViewNotFoundException

    from pipelines.serving.store import feature_store

    store = feature_store(redis_url)
    try:
        for view in views:
            feature_view = store.registry.get_feature_view(view.name, store.project)
            store.registry.apply_materialization(
                feature_view, store.project, interval.start, interval.end
            )
    except FeatureViewNotFoundException:
        return False
    return True


def materialize(
    spark: SparkSession,
    *,
    start: str | datetime | date,
    end: str | datetime | date,
    views: Sequence[str] | None = None,
    redis_url: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    record_in_feast: bool = True,
) -> MaterializeReport:
    """Materialize `[start, end)` of the given views (default: all) into Redis.

    `redis_url` defaults to REDIS_URL, else the platform's local redis-server.
    Raises a PlatformError (nothing reported as done) if Redis is unreachable, a
    table is missing, or a write fails.
    """
    began = time.perf_counter()
    interval = Interval.parse(start, end)
    selected = REGISTRY.select_views(views)
    url = resolve_redis_url(redis_url)
    project = repo_settings().project
    for view in selected:
        require_table(spark, view.table, hint="compute the features first")
    reports = _materialize_views(
        spark, selected, interval, redis_url=url, project=project, chunk_rows=chunk_rows
    )
    recorded = record_in_feast and _record_in_feast_registry(selected, interval, url)
    return MaterializeReport(
        interval=interval,
        redis=redacted(url),
        views=reports,
        seconds=time.perf_counter() - began,
        feast_registry_updated=recorded,
    )
