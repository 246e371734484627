"""A day in the life: hourly runs over generated data with late events, requests served
between runs with logging on, then replay. Serving mode must reproduce every served value;
injected skew must be caught and named.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from platform_helpers import feast_repo_applied
from pyspark.sql import Window
from pyspark.sql import functions as F

from features import REGISTRY
from pipelines.compute import compute
from pipelines.day_in_the_life import requests_in, run_hours, traffic_after
from pipelines.generate import generate
from pipelines.ingest import ingest
from pipelines.interval import HOUR, Interval, utc_literal
from pipelines.quality.replay import (
    NothingLoggedError,
    ReplayError,
    metrics_table,
    replay,
    served_table,
)
from pipelines.redis_server import redis_client
from pipelines.serving.encoding import encode_entity_keys, encode_values
from pipelines.serving.materialize import layout_for, materialize
from pipelines.serving.request_log import RequestLog
from pipelines.serving.store import repo_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.filterwarnings("ignore:The spark:RuntimeWarning"),
]

DAY = datetime(2036, 4, 7, 12, tzinfo=UTC)
LIVE = DAY + timedelta(hours=30)  # 18:00, as the evening peak begins: busy hours
REQUESTS_PER_HOUR = 40
MEMBER_VIEW = REGISTRY.view("member_ad_history")


@pytest.fixture(scope="module")
def live(spark, redis_server, tmp_path_factory):
    """History ingested, computed and materialized (a first deployment), in a data
    directory and a Redis database of this module's own; yields the Redis URL and a log."""
    url = redis_server.url.rsplit("/", 1)[0] + "/2"
    redis_client(url).flushdb()
    with feast_repo_applied(url, tmp_path_factory.mktemp("day-in-the-life")):
        generate(spark, start=DAY, end=LIVE + timedelta(hours=8), scale=0.1, seed=31)
        ingest(spark, start=DAY, end=LIVE)
        views = list(REGISTRY.resolve("ctr_model"))
        compute(spark, start=DAY, end=LIVE, views=views)
        materialize(spark, start=DAY, end=LIVE, views=views, redis_url=url)
        with RequestLog("ctr_model", sample=1.0, flush_seconds=0.5) as log:
            yield url, log


@pytest.fixture(scope="module")
def clean_hours(spark, live):
    url, log = live
    return run_hours(
        spark,
        start=LIVE,
        hours=2,
        redis_url=url,
        requests_per_hour=REQUESTS_PER_HOUR,
        log=log,
    )


def test_serving_mode_gives_every_request_what_was_served(spark, clean_hours) -> None:
    served = clean_hours
    total = sum(h.requests for h in served)
    assert total >= 60
    interval = Interval(served[0].traffic.start, served[-1].traffic.end)
    report = replay(spark, start=interval.start, end=interval.end, services=["ctr_model"])
    assert report.requests == {"ctr_model": total}
    assert report.success and report.differing_rows == 0, report.lines()
    assert len(report.features) == len(
        [f for names in REGISTRY.resolve("ctr_model").values() for f in names]
    )
    # Feast-identical mode reads the final values, not what serving had: it disagrees.
    feast = replay(spark, start=interval.start, end=interval.end, mode="feast")
    assert not feast.success and feast.rows_differing_ratio() > 0.01, feast.lines()
    assert sum(1 for f in feast.features if f.differing) >= 10
    recorded = spark.table(metrics_table()).where(
        F.col("interval_start") == utc_literal(interval.start)
    )
    assert {r["mode"] for r in recorded.select("mode").distinct().collect()} == {
        "serving",
        "feast",
    }


def test_replaying_an_interval_without_a_log_is_one_error(spark, live) -> None:
    empty = (DAY - timedelta(days=30), DAY - timedelta(days=29))
    before = (
        spark.table(metrics_table()).count() if spark.catalog.tableExists(metrics_table()) else 0
    )
    with pytest.raises(NothingLoggedError, match="no requests were logged for ctr_model"):
        replay(spark, start=empty[0], end=empty[1], services=["ctr_model"])
    after = (
        spark.table(metrics_table()).count() if spark.catalog.tableExists(metrics_table()) else 0
    )
    assert after == before


def test_a_log_written_under_other_definitions_is_refused(spark, live, clean_hours) -> None:
    """Requests logged by a server running other feature definitions cannot be replayed
    against these: one error, and nothing written."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipelines.serving.request_log import DEFINITIONS_HASH, REQUEST_TIME, log_directory

    landed = next(log_directory("ctr_model").rglob("*.parquet"))
    old = pq.read_table(landed)
    moment = DAY - timedelta(days=3)
    shifted = old.set_column(
        old.schema.get_field_index(REQUEST_TIME),
        REQUEST_TIME,
        pa.array([moment] * len(old), pa.timestamp("us", tz="UTC")),
    ).set_column(
        old.schema.get_field_index(DEFINITIONS_HASH),
        DEFINITIONS_HASH,
        pc.binary_join_element_wise(old.column(DEFINITIONS_HASH), pa.scalar("-old"), ""),
    )
    folder = log_directory("ctr_model") / f"request_hour={moment:%Y-%m-%dT%H}"
    folder.mkdir(parents=True)
    pq.write_table(shifted, folder / "part-elsewhere.parquet")
    tables = (metrics_table(), served_table("ctr_model"))
    before = [spark.table(t).count() for t in tables]
    with pytest.raises(ReplayError, match="logged under other feature definitions"):
        replay(spark, start=moment, end=moment + HOUR, services=["ctr_model"])
    assert [spark.table(t).count() for t in tables] == before


def _member_hash(url: str, member: int) -> tuple:
    import pyarrow as pa

    layout = layout_for(MEMBER_VIEW, repo_settings().project)
    key = encode_entity_keys(layout, pa.array([member], pa.int64())).to_pylist()[0]
    return redis_client(url), key, layout


def _corrected_members(spark, hour: Interval) -> list[int]:
    """Members whose current member_ad_history row as of the hour's end is a version learned
    in this hour for an earlier row: a late correction, or a late row."""
    newest = Window.partitionBy("member_id").orderBy(
        F.desc("event_timestamp"), F.desc("created_timestamp")
    )
    current = (
        spark.table(MEMBER_VIEW.table)
        .where(F.col("created_timestamp") <= utc_literal(hour.end))
        .withColumn("_rank", F.row_number().over(newest))
        .where("_rank = 1")
    )
    rows = current.where(
        (F.col("created_timestamp") == utc_literal(hour.end))
        & (F.col("event_timestamp") < utc_literal(hour.end))
    ).select("member_id")
    return sorted(int(r["member_id"]) for r in rows.collect())


def test_injected_skew_is_caught_and_named(spark, live, clean_hours) -> None:
    url, log = live
    start = clean_hours[-1].interval.end
    changed_hour, skipped_hour, correction_hour = (start + i * HOUR for i in range(3))
    injected: dict[str, int] = {}
    import pyarrow as pa

    def after_hour(hour: Interval) -> list:
        traffic = traffic_after(hour)
        requests = requests_in(spark, traffic, REQUESTS_PER_HOUR)
        if hour.start == changed_hour:
            # Someone edits one value in Redis.
            member = requests[0][1]
            client, key, layout = _member_hash(url, member)
            field = layout.field_hashes[layout.feature_names.index("member_clicks_count_7d")]
            client.hset(
                key, field, encode_values(pa.array([987_654], pa.int64()), "int64")[0].as_py()
            )
            injected["changed"] = member
        if hour.start == correction_hour:
            # The hour's late correction of a member's current row never reaches Redis.
            candidates = _corrected_members(spark, hour)
            assert candidates, "the generated data has no late correction in this hour"
            member = candidates[0]
            client, key, _ = _member_hash(url, member)
            before = client.hgetall(key)
            materialize(
                spark,
                start=hour.start,
                end=hour.end,
                views=list(REGISTRY.resolve("ctr_model")),
                redis_url=url,
            )
            client.delete(key)
            if before:
                client.hset(key, mapping=before)
            injected["corrected"] = member
            return [(traffic.start + timedelta(minutes=7), member, requests[0][2])]
        return []

    skip = {"materialize": (skipped_hour, correction_hour)}
    served = run_hours(
        spark,
        start=start,
        hours=3,
        redis_url=url,
        requests_per_hour=REQUESTS_PER_HOUR,
        log=log,
        skip=lambda step, hour: hour.start in skip.get(step, ()),
        after_hour=after_hour,
    )

    def replayed(hour: datetime):
        (traffic,) = [s.traffic for s in served if s.interval.start == hour]
        return replay(spark, start=traffic.start, end=traffic.end, services=["ctr_model"])

    changed = replayed(changed_hour)
    assert not changed.success
    differing = {f.feature: f for f in changed.features if f.differing}
    assert set(differing) == {"member_clicks_count_7d"}
    assert differing["member_clicks_count_7d"].mismatches >= 1
    assert any("member_clicks_count_7d" in line for line in changed.lines())

    skipped = replayed(skipped_hour)
    assert not skipped.success
    assert sum(1 for f in skipped.features if f.differing) >= 3

    corrected = replayed(correction_hour)
    assert not corrected.success
    member_features = {f for f in REGISTRY.resolve("ctr_model")["member_ad_history"]}
    named = {f.feature for f in corrected.features if f.differing}
    assert named & member_features, corrected.lines()
    example = next(f for f in corrected.features if f.feature in named & member_features)
    assert example.example_request is not None
