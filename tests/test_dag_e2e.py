"""The hourly DAG end to end through Airflow (`dag.test()`): real Spark, Delta, GE, Feast, Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql import functions as F

from features import REGISTRY
from features.sources import playback_events
from pipelines.airflow_local import run_dag_once
from pipelines.generate import generate
from pipelines.ingest import ingest
from pipelines.redis_server import redis_client
from pipelines.serving.store import feast_environment, feature_store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.filterwarnings("ignore:The spark:RuntimeWarning"),
]

H0 = datetime(2035, 3, 2, 6, tzinfo=UTC)
H1, H2, H3 = (H0 + timedelta(hours=i) for i in (1, 2, 3))
VIEW = REGISTRY.view("member_engagement")
SUCCESS = {
    **{t: "success" for t in ("ingest", "compute", "validate", "materialize", "consistency")},
    "stream_lag": "success",  # no stream ingest runs here: nothing to wait for
    "wait_for_publication": "success",
    "replay": "skipped",  # nothing was served, so nothing was logged
}
# The hours lie in the future: their publication time has not come, so the sensor is
# marked done (its target is tested in test_dags).
PUBLISHED = "^wait_for_publication$"


@pytest.fixture(scope="module")
def pipeline_env(spark, redis_server, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEATURE_PLATFORM_DATA_DIR", str(tmp_path_factory.mktemp("dag-e2e")))
        patch.setenv("REDIS_URL", redis_server.url)
        for key, value in feast_environment().items():
            patch.setenv(key, value)
        redis_client(redis_server.url).flushdb()
        from pipelines.feast_repo import feast_objects

        feature_store().apply(list(feast_objects().values()))
        # A day of history before the first scheduled hour, and three hours of arrivals.
        generate(spark, start=H0 - timedelta(days=1), end=H3, scale=0.05, seed=21)
        ingest(spark, start=H0 - timedelta(days=1), end=H0)
        yield redis_server.url


def _snapshot(spark, url: str) -> tuple:
    features = (
        spark.table(VIEW.table)
        .where(
            (F.col("created_timestamp") > H0.replace(tzinfo=None))
            & (F.col("created_timestamp") <= H2.replace(tzinfo=None))
        )
        .orderBy("member_id", "event_timestamp", "created_timestamp")
        .collect()
    )
    clean = (
        spark.table(playback_events.table)
        .where(
            (F.col("ingestion_timestamp") >= H0.replace(tzinfo=None))
            & (F.col("ingestion_timestamp") < H2.replace(tzinfo=None))
        )
        .count()
    )
    client = redis_client(url)
    online = {key: client.hgetall(key) for key in client.scan_iter(count=1000)}
    return features, clean, online


def test_two_hours_then_a_rerun_then_a_failing_gate(spark, pipeline_env):
    url = pipeline_env
    assert run_dag_once("feature_pipeline", H0, H1, retries=0, mark_success_pattern=PUBLISHED) == (
        SUCCESS
    )
    # The run of [H0, H1) leaves every member's row as of H1: fresh by construction.
    rows_h1 = (
        spark.table(VIEW.table).where(F.col("event_timestamp") == H1.replace(tzinfo=None)).count()
    )
    assert rows_h1 > 0
    assert run_dag_once("feature_pipeline", H1, H2, retries=0, mark_success_pattern=PUBLISHED) == (
        SUCCESS
    )
    rows_h2 = spark.table(VIEW.table).where(F.col("event_timestamp") == H2.replace(tzinfo=None))
    assert rows_h2.count() > 0
    # Redis holds the H2 rows (the latest): one entity checked directly through Feast.
    latest = rows_h2.orderBy("member_id").first()
    from pipelines.serving.online import get_online_features

    online = get_online_features(
        [f"{VIEW.name}:plays_count_1h", f"{VIEW.name}:watch_seconds_sum_1d"],
        [{"member_id": latest["member_id"]}],
        store=feature_store(url),
    )
    assert online["plays_count_1h"] == [latest["plays_count_1h"]]
    assert online["watch_seconds_sum_1d"][0] == pytest.approx(
        latest["watch_seconds_sum_1d"], rel=1e-9
    )

    before = _snapshot(spark, url)
    again = run_dag_once("feature_pipeline", H0, H1, retries=0, mark_success_pattern=PUBLISHED)
    assert again == SUCCESS
    assert _snapshot(spark, url) == before, "rerunning the first hour changed tables or Redis"

    # Bad clean data for the third hour (as if an upstream writer produced it): the gate
    # fails, nothing is materialized, Redis keeps its values.
    schema = spark.table(playback_events.table).schema
    row = {
        "event_id": "bad-1",
        "member_id": None,
        "title_id": 1,
        "device": "tv",
        "event_timestamp": H2.replace(tzinfo=None) + timedelta(minutes=5),
        "watch_seconds": 60.0,
        "ingestion_timestamp": H2.replace(tzinfo=None) + timedelta(minutes=6),
        "event_date": H2.date(),
    }
    bad = spark.createDataFrame([tuple(row[name] for name in schema.names)], schema)
    bad.write.format("delta").mode("append").saveAsTable(playback_events.table)
    states = run_dag_once("feature_pipeline", H2, H3, retries=0, mark_success_pattern="^ingest$")
    assert states["validate"] == "failed"
    assert states["materialize"] == "upstream_failed"
    assert states["consistency"] == "upstream_failed"
    assert _snapshot(spark, url)[2] == before[2]
