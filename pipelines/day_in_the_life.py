"""A day in the life: the hourly pipeline run hour by hour, with traffic served between runs.

For each hour `[S, E)`: the hourly pipeline's steps (`pipelines.tasks`: ingest, compute,
materialize) run for the interval, as the DAG runs them; then the ad requests of the
following hour are served through `OnlineReader` with request logging on, each at its
own time as the clock (`as_of`). The hour's values are published at `E + serving lag`
(the DAG waits for that), so the traffic after run `E` is the ad impressions with event
time in `[E + lag, E + lag + 1h)`: every impression is an ad request for (member, ad).

Replaying the logged requests (`pipelines.quality.replay`) then checks that the
training-set builder, in serving mode, gives every request exactly what was served.
The demo runs this, and so does a test that also injects skew and checks that the
replay names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from features import REGISTRY
from features.catalog import RAW, table_name
from features.sources import ad_impressions
from pipelines.delta_io import rows_in
from pipelines.interval import HOUR, Interval, floor_hour, from_unix_micros
from pipelines.serving.direct import OnlineReader
from pipelines.serving.request_log import RequestLog
from pipelines.steps import COMPUTE, INGEST, MATERIALIZE, Echo

SERVICE = "ctr_model"
Request = tuple[datetime, int, int]  # (time, member, ad)
HOURLY_STEPS = (INGEST, COMPUTE, MATERIALIZE)


@dataclass(frozen=True)
class ServedHour:
    interval: Interval  # the pipeline run
    traffic: Interval  # when its values were served
    requests: int


def traffic_after(interval: Interval) -> Interval:
    """The hour of requests served with the values of the run over `interval`."""
    lag = max(REGISTRY.view(v).serving_lag for v in REGISTRY.resolve(SERVICE))
    return Interval(interval.end + lag, interval.end + lag + HOUR)


def requests_in(
    spark: SparkSession, traffic: Interval, limit: int
) -> list[tuple[datetime, int, int]]:
    """Up to `limit` ad requests (time, member, ad) of the traffic hour, from the raw
    impressions (what the ad server saw, whenever it reached the pipeline)."""
    # Raw rows: a producer's `event_date` may be wrong, so no partition pruning by it.
    impressions = rows_in(
        spark.table(table_name(RAW, ad_impressions.name)), ad_impressions.timestamp_column, traffic
    ).where(F.col("member_id").isNotNull() & F.col("ad_id").isNotNull())
    rows = (
        impressions.select(
            F.unix_micros("event_timestamp").alias("t"), "member_id", "ad_id", "impression_id"
        )
        .orderBy(F.xxhash64("impression_id"))
        .limit(limit)
        .collect()
    )
    return sorted((from_unix_micros(r["t"]), int(r["member_id"]), int(r["ad_id"])) for r in rows)


def run_hours(
    spark: SparkSession,
    *,
    start: datetime,
    hours: int,
    redis_url: str,
    requests_per_hour: int,
    log: RequestLog,
    skip: Callable[[str, Interval], bool] = lambda step, interval: False,
    after_hour: Callable[[Interval], list[Request]] | None = None,
    echo: Echo = lambda line: None,
) -> list[ServedHour]:
    """Run the hourly pipeline for `hours` hours from `start`, serving the requests of
    each following hour through a logging `OnlineReader` (see the module docstring).

    `skip(step, interval)` leaves a step out (to inject a missed materialization);
    `after_hour(interval)` runs after an hour's steps, before its traffic, and returns
    requests to serve besides the traffic (to inject skew and watch it). The steps'
    lines go to `echo` (by default nowhere).
    """
    served = []
    views = list(REGISTRY.resolve(SERVICE))  # the views the served model reads
    with OnlineReader(SERVICE, redis_url=redis_url, log=log) as reader:
        for hour in Interval(start, start + hours * HOUR).chunks(HOUR):
            for step in HOURLY_STEPS:
                if not skip(step.name, hour):
                    options = {} if step is INGEST else {"views": views}
                    step.run(spark, hour, echo=echo, **options)
            extra = after_hour(hour) if after_hour is not None else []
            traffic = traffic_after(hour)
            requests = sorted([*requests_in(spark, traffic, requests_per_hour), *extra])
            for moment, member, ad in requests:
                reader.get([{"member_id": member, "ad_id": ad}], as_of=moment)
            served.append(ServedHour(hour, traffic, len(requests)))
    log.flush()
    return served


def replay_interval(served: list[ServedHour]) -> Interval:
    """The whole hours that hold every served request."""
    first = floor_hour(served[0].traffic.start)
    last = served[-1].traffic.end
    return Interval(first, last if last == floor_hour(last) else floor_hour(last) + HOUR)
