"""build_training_set against Feast's own get_historical_features(...).to_spark_df().

Feast is applied from the platform's repo objects (pipelines.feast_repo, the same
SparkSource tables, TTLs and services) to a registry in a temporary directory, and
both read the same Delta feature tables in the same Spark session.
"""

from __future__ import annotations

import warnings

import pytest
from pyspark.testing import assertDataFrameEqual
from training_oracle import (
    AD_ROWS,
    LABELS,
    LABELS_SCHEMA,
    MEMBER_ROWS,
    PROFILE_ROWS,
    REFS,
    B,
    feature_row,
    write_feature_table,
)

from pipelines.training import build_training_set

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Feast's "experimental"

# Feast switches this on in the shared session; it changes how backticks parse.
_FEAST_SESSION_CONF = "spark.sql.parser.quotedRegexColumnNames"


@pytest.fixture(scope="module")
def feast_store(spark, tmp_path_factory):
    from feast import FeatureStore, RepoConfig
    from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
        SparkOfflineStoreConfig,
    )

    from pipelines.feast_repo import feast_objects

    workdir = tmp_path_factory.mktemp("feast")
    config = RepoConfig(
        project="training_vs_feast",
        provider="local",
        registry=str(workdir / "registry.db"),
        offline_store=SparkOfflineStoreConfig(),
        online_store={"type": "sqlite", "path": str(workdir / "online.db")},
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        store.apply(list(feast_objects().values()))
    previous = spark.conf.get(_FEAST_SESSION_CONF, "false")
    yield store
    spark.conf.set(_FEAST_SESSION_CONF, previous)


@pytest.fixture(scope="module")
def tables(spark):
    write_feature_table(spark, "ad_performance", AD_ROWS)
    write_feature_table(spark, "member_ad_history", MEMBER_ROWS)
    write_feature_table(spark, "member_profile", PROFILE_ROWS)
    write_feature_table(
        spark,
        "ad_profile",
        [
            feature_row("ad_profile", 10, B, B, category="games", advertiser="a", bid_cpm=2.0),
            feature_row("ad_profile", 11, B, B, category="cars", advertiser="b", bid_cpm=1.0),
        ],
    )
    write_feature_table(
        spark,
        "member_engagement",
        [feature_row("member_engagement", 1, B, B, plays_count_1d=4, watch_seconds_sum_7d=9.5)],
    )


def feast_rows(store, labels, features, as_known_at=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        job = store.get_historical_features(
            entity_df=labels, features=features, filter_by_created_timestamp=as_known_at
        )
        return job.to_spark_df()


@pytest.mark.parametrize("mode", ["feast", "known"])
def test_same_rows_as_feast(spark, feast_store, tables, mode):
    """Feast mode is Feast's join; known mode is Feast's join filtered by created time."""
    labels = spark.createDataFrame([tuple(r.values()) for r in LABELS], LABELS_SCHEMA)
    ours = build_training_set(spark, labels, REFS, mode=mode)
    theirs = feast_rows(feast_store, labels, REFS, as_known_at=mode == "known")
    assert ours.columns == theirs.columns
    assertDataFrameEqual(ours, theirs)


def test_same_rows_and_columns_as_feast_for_a_feature_service(spark, feast_store, tables):
    labels = spark.createDataFrame([tuple(r.values()) for r in LABELS], LABELS_SCHEMA)
    ours = build_training_set(spark, labels, "ctr_model")
    theirs = feast_rows(feast_store, labels, feast_store.get_feature_service("ctr_model"))
    assert ours.columns == theirs.columns
    assert ours.schema.simpleString() == theirs.schema.simpleString()
    assertDataFrameEqual(ours, theirs)
