"""Bad inputs to build_training_set: one clear error naming the culprit, nothing written."""

from __future__ import annotations

import pytest

from features import REGISTRY, DeclarationError
from pipelines.errors import PlatformError
from pipelines.training import build_training_set

FEATURES = ["ad_performance:ad_clicks_count_1d", "member_ad_history:member_clicks_count_7d"]


@pytest.mark.parametrize(
    ("labels_sql", "features", "culprit"),
    [
        # labels lacking a join key / the timestamp column
        ("SELECT 1L AS member_id, TIMESTAMP'2026-03-02' AS event_timestamp", FEATURES, "'ad_id'"),
        ("SELECT 1L AS member_id, 10L AS ad_id, TIMESTAMP'2026-03-02' AS ts", FEATURES, "'event_timestamp'"),
        # timestamps of the wrong type
        ("SELECT 1L AS member_id, 10L AS ad_id, '2026-03-02' AS event_timestamp", FEATURES, "string"),
        ("SELECT 1L AS member_id, 10L AS ad_id, 1772409600L AS event_timestamp", FEATURES, "bigint"),
        # a join key of the wrong type
        ("SELECT 'm1' AS member_id, 10L AS ad_id, TIMESTAMP'2026-03-02' AS event_timestamp", FEATURES, "'member_id'"),
        # unknown features, views, services, malformed references
        ("SELECT 1L AS member_id, 10L AS ad_id, TIMESTAMP'2026-03-02' AS event_timestamp", ["ad_performance:nope"], "'ad_performance:nope'"),
        ("SELECT 1L AS member_id, 10L AS ad_id, TIMESTAMP'2026-03-02' AS event_timestamp", ["no_such_view:x"], "'no_such_view'"),
        ("SELECT 1L AS member_id, 10L AS ad_id, TIMESTAMP'2026-03-02' AS event_timestamp", "no_such_service", "'no_such_service'"),
        ("SELECT 1L AS member_id, 10L AS ad_id, TIMESTAMP'2026-03-02' AS event_timestamp", ["ad_clicks_count_1d"], "'ad_clicks_count_1d'"),
        ("SELECT 1L AS member_id, 10L AS ad_id, TIMESTAMP'2026-03-02' AS event_timestamp", [], "no features"),
        ("SELECT 1L AS member_id, 10L AS ad_id, TIMESTAMP'2026-03-02' AS event_timestamp", FEATURES + FEATURES[:1], "more than once"),
        # a label column named like a requested feature
        ("SELECT 1L AS member_id, 10L AS ad_id, TIMESTAMP'2026-03-02' AS event_timestamp, 1 AS ad_clicks_count_1d", FEATURES, "ad_clicks_count_1d"),
        # label columns named like the joins' own
        ("SELECT 1L AS member_id, 10L AS ad_id, TIMESTAMP'2026-03-02' AS event_timestamp, 1 AS __pit_key", FEATURES, "'__pit_'"),
        ("SELECT 1L AS member_id, 10L AS ad_id, TIMESTAMP'2026-03-02' AS event_timestamp, 1 AS __sawtooth_hour", FEATURES, "'__sawtooth_'"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_error_and_writes_nothing(
    spark, tmp_path, labels_sql, features, culprit
):
    output = tmp_path / "training_set"
    with pytest.raises(PlatformError) as raised:
        build_training_set(spark, spark.sql(labels_sql), features, output=str(output))
    assert culprit in str(raised.value)
    assert "\n" not in str(raised.value)
    assert not output.exists()
    assert not (tmp_path / "training_set__labels").exists()


def test_output_cannot_be_a_feature_table_it_reads(spark):
    labels = spark.sql(
        "SELECT 1L AS member_id, 10L AS ad_id, TIMESTAMP'2026-03-02' AS event_timestamp"
    )
    with pytest.raises(PlatformError, match="feature table of view ad_performance"):
        build_training_set(spark, labels, FEATURES, output=REGISTRY.view("ad_performance").table)


def test_unknown_features_are_also_declaration_errors(spark):
    labels = spark.sql("SELECT 1L AS ad_id, TIMESTAMP'2026-03-02' AS event_timestamp")
    with pytest.raises(DeclarationError, match="nope"):
        build_training_set(spark, labels, ["ad_profile:nope"])


def test_labels_that_are_not_a_table(spark, tmp_path):
    with pytest.raises(PlatformError, match="is not a Delta table"):
        build_training_set(spark, str(tmp_path / "missing"), FEATURES)
    with pytest.raises(PlatformError, match=r"no_such_db\.labels does not exist"):
        build_training_set(spark, "no_such_db.labels", FEATURES)
    with pytest.raises(PlatformError, match="not list"):
        build_training_set(spark, [1, 2], FEATURES)  # type: ignore[arg-type]


def test_custom_timestamp_column_is_checked(spark):
    labels = spark.sql("SELECT 10L AS ad_id, TIMESTAMP'2026-03-02' AS event_timestamp")
    with pytest.raises(PlatformError, match="'shown_at'"):
        build_training_set(spark, labels, ["ad_profile:bid_cpm"], timestamp_column="shown_at")
