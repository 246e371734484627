"""Online/offline consistency: a clean materialization passes; each kind of skew is caught."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from features import REGISTRY, AttributeView
from pipelines.delta_io import replace_where, table_exists
from pipelines.feature_tables import feature_table_schema
from pipelines.quality.consistency import (
    check_consistency,
    compare_feature,
    metrics_table,
    sample_keys,
)
from pipelines.redis_server import redis_client
from pipelines.serving.encoding import encode_entity_keys, encode_values
from pipelines.serving.materialize import layout_for, materialize
from pipelines.serving.store import feast_environment, feature_store

pytestmark = [
    pytest.mark.redis,
    pytest.mark.filterwarnings("ignore:The spark:RuntimeWarning"),
]

END = datetime(2033, 6, 10, tzinfo=UTC)
START = END - timedelta(days=2)
VIEWS = ("ad_performance", "ad_profile")
KEYS = list(range(1, 41))


def _rows(view, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    rows = []
    for key in KEYS:
        for hour in sorted(rng.sample(range(1, 47), 3)):
            event = START + timedelta(hours=hour)
            values = []
            for feature in view.features:
                if feature.value_type == "int64":
                    values.append(rng.randint(0, 10**6))
                elif feature.value_type == "float64":
                    values.append(rng.uniform(0, 1))
                elif feature.value_type == "string":
                    values.append(rng.choice(["news", "sports", "games"]))
                else:
                    values.append(date(2020, 1, 1) + timedelta(days=rng.randint(0, 900)))
            # A windowed row is known at its hour; an attribute version that arrived at
            # `event` at the end of that hour.
            known = event + timedelta(hours=1) if isinstance(view, AttributeView) else event
            rows.append((key, event, known, *values, event.date()))
    return rows


@pytest.fixture(scope="module")
def world(spark, redis_server, tmp_path_factory):
    predicate = (
        f"event_timestamp >= TIMESTAMP '{START:%Y-%m-%d %H:%M:%S}' "
        f"AND event_timestamp < TIMESTAMP '{END + timedelta(days=1):%Y-%m-%d %H:%M:%S}'"
    )
    created_here = []
    for i, name in enumerate(VIEWS):
        view = REGISTRY.view(name)
        if not table_exists(spark, view.table):
            created_here.append(view.table)
        df = spark.createDataFrame(_rows(view, i), feature_table_schema(view))
        replace_where(df, view.table, predicate=predicate)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEATURE_PLATFORM_DATA_DIR", str(tmp_path_factory.mktemp("consistency")))
        patch.setenv("REDIS_URL", redis_server.url)
        for key, value in feast_environment().items():
            patch.setenv(key, value)
        from pipelines.feast_repo import feast_objects

        feature_store().apply(list(feast_objects().values()))
        yield redis_server.url
    for name in VIEWS:
        table = REGISTRY.view(name).table
        if table in created_here:
            spark.sql(f"DROP TABLE IF EXISTS {table}")
        else:
            spark.sql(f"DELETE FROM {table} WHERE {predicate}")


def _fresh(spark, url: str, start: datetime = START) -> None:
    redis_client(url).flushdb()
    materialize(spark, start=start, end=END, views=list(VIEWS), redis_url=url)


def _check(spark, url: str):
    # A new FeatureStore reads the registry's materialization intervals afresh.
    return check_consistency(
        spark, as_of=END, sample=25, views=list(VIEWS), store=feature_store(url)
    )


def test_clean_materialization_passes_and_metrics_are_recorded(spark, world):
    _fresh(spark, world)
    report = _check(spark, world)
    assert report.success, report.lines()
    assert report.sampled_entities == 50  # 25 per view
    assert all(m.compared == 25 and m.mismatches == 0 for m in report.measures)
    recorded = spark.table(metrics_table()).where(f"as_of = TIMESTAMP '{END:%Y-%m-%d %H:%M:%S}'")
    assert recorded.count() == len(report.measures)
    again = _check(spark, world)  # a rerun replaces the rows of that as_of
    assert again.success
    assert recorded.count() == len(report.measures)


def test_sampling_is_deterministic_and_stable_as_the_table_grows(spark):
    def sampled(keys: list[int], partitions: int) -> list[int]:
        df = spark.createDataFrame([(k,) for k in keys], "member_id long").repartition(partitions)
        return sorted(r["member_id"] for r in sample_keys(df, "member_id", 25).collect())

    def smallest_hashes(keys: list[int]) -> list[int]:
        hashed = spark.createDataFrame([(k,) for k in keys], "member_id long").select(
            "member_id", F.xxhash64("member_id").alias("h")
        )
        ranked = sorted(hashed.collect(), key=lambda r: (r["h"], r["member_id"]))
        return sorted(r["member_id"] for r in ranked[:25])

    old = list(range(1, 201))
    first = sampled(old, 3)
    assert first == smallest_hashes(old)
    assert sampled(old[::-1] + old[:50], 7) == first  # row order, repeats, partitioning
    grown = sampled(old + list(range(1000, 1200)), 5)
    assert grown == smallest_hashes(old + list(range(1000, 1200)))
    assert {k for k in grown if k <= 200} <= set(first)  # old keys only ever leave the sample


def _sampled_key(spark, view_name: str) -> int:
    from pipelines.quality.consistency import expected_values

    rows = expected_values(spark, REGISTRY.view(view_name), END, covered_from=START, sample=25)
    return int(rows[0][REGISTRY.view(view_name).entity.join_key])


def test_a_value_changed_in_redis_is_caught(spark, world):
    _fresh(spark, world)
    view = REGISTRY.view("ad_performance")
    key = _sampled_key(spark, view.name)
    layout = layout_for(view, feature_store(world).project)
    redis_key = encode_entity_keys(layout, pa.array([key], pa.int64()))[0].as_py()
    field = layout.field_hashes[0]  # ad_impressions_count_1h
    redis_client(world).hset(
        redis_key, field, encode_values(pa.array([999_999_999]), "int64")[0].as_py()
    )
    report = _check(spark, world)
    assert not report.success
    bad = {(m.view, m.feature) for m in report.measures if m.mismatches}
    assert bad == {("ad_performance", view.features[0].name)}
    assert str(key) in "\n".join(report.lines())


def test_a_key_deleted_from_redis_is_caught(spark, world):
    _fresh(spark, world)
    view = REGISTRY.view("ad_profile")
    key = _sampled_key(spark, view.name)
    redis_key = encode_entity_keys(
        layout_for(view, feature_store(world).project), pa.array([key], pa.int64())
    )[0].as_py()
    redis_client(world).delete(redis_key)
    report = _check(spark, world)
    assert not report.success
    missing = {m.view for m in report.measures if m.missing_online}
    # The hash is shared by every view of the entity: both ad views lose that entity.
    assert missing == {"ad_performance", "ad_profile"}


def test_materialization_behind_the_offline_table_is_caught(spark, world):
    redis_client(world).flushdb()
    materialize(spark, start=START, end=END - timedelta(days=1), views=list(VIEWS), redis_url=world)
    report = _check(spark, world)
    assert not report.success
    assert any(m.missing_online or m.mismatches for m in report.measures)


def test_feature_table_recomputed_after_materialization_is_caught(spark, world):
    _fresh(spark, world)
    view = REGISTRY.view("ad_performance")
    key = _sampled_key(spark, view.name)
    spark.sql(
        f"UPDATE {view.table} SET ad_clicks_count_7d = ad_clicks_count_7d + 1 "
        f"WHERE ad_id = {key} AND event_timestamp >= TIMESTAMP '{START:%Y-%m-%d %H:%M:%S}'"
    )
    try:
        report = _check(spark, world)
        assert not report.success
        assert {m.feature for m in report.measures if m.mismatches} == {"ad_clicks_count_7d"}
    finally:
        spark.sql(
            f"UPDATE {view.table} SET ad_clicks_count_7d = ad_clicks_count_7d - 1 "
            f"WHERE ad_id = {key} AND event_timestamp >= TIMESTAMP '{START:%Y-%m-%d %H:%M:%S}'"
        )


def test_compare_feature_rules():
    expected = [
        {"k": 1, "f": 1.0},
        {"k": 2, "f": float("nan")},
        {"k": 3, "f": 2.0},
        {"k": 4, "f": None},
    ]
    measure = compare_feature("v", "f", "k", expected, [1.0 + 1e-12, None, 2.5, None])
    assert (measure.compared, measure.mismatches, measure.missing_online) == (4, 1, 0)
    assert measure.example_entity == "3"
    assert measure.max_rel_diff == pytest.approx(0.2)
    missing = compare_feature("v", "f", "k", [{"k": 1, "f": 5}], [None])
    assert missing.missing_online == 1 and missing.mismatches == 0
