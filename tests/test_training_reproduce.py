"""Written training sets record what they read, and rebuild identically after changes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest
from delta.tables import DeltaTable
from pyspark.testing import assertDataFrameEqual
from training_oracle import feature_row, write_feature_table

from features import REGISTRY
from pipelines.errors import PlatformError
from pipelines.training import build_training_set, reproduce
from pipelines.training.metadata import (
    DEFINITIONS_HASH_PROPERTY,
    FEATURE_VERSIONS_PROPERTY,
    METADATA_PROPERTY,
)
from pipelines.training.reproduce import compare, read_record
from pipelines.training.spec import select_features

B = datetime(2026, 3, 2)
REFS = ["ad_performance:ad_clicks_count_1d", "ad_profile:bid_cpm", "member_profile:plan"]


def h(hours: float) -> datetime:
    return B + timedelta(hours=hours)


def first_tables(spark) -> None:
    write_feature_table(
        spark,
        "ad_performance",
        [
            feature_row("ad_performance", 10, h(0), h(0), ad_clicks_count_1d=1),
            feature_row("ad_performance", 10, h(2), h(2), ad_clicks_count_1d=2),
            feature_row("ad_performance", 11, h(1), h(1), ad_clicks_count_1d=5),
        ],
    )
    write_feature_table(
        spark, "ad_profile", [feature_row("ad_profile", 10, h(-24), h(-24), bid_cpm=1.5)]
    )
    write_feature_table(
        spark, "member_profile", [feature_row("member_profile", 1, h(-24), h(-24), plan="basic")]
    )


def change_tables(spark) -> None:
    """Late corrections and new rows that would change every label row if they were read."""
    write_feature_table(
        spark,
        "ad_performance",
        [
            feature_row("ad_performance", 10, h(0), h(0), ad_clicks_count_1d=100),
            feature_row("ad_performance", 10, h(2), h(9), ad_clicks_count_1d=200),
            feature_row("ad_performance", 11, h(1), h(1), ad_clicks_count_1d=500),
        ],
    )
    write_feature_table(
        spark, "ad_profile", [feature_row("ad_profile", 10, h(-48), h(-48), bid_cpm=9.9)]
    )
    write_feature_table(
        spark, "member_profile", [feature_row("member_profile", 1, h(-2), h(-2), plan="premium")]
    )


def table_version(spark, table: str) -> int:
    return int(DeltaTable.forName(spark, table).history(1).first()["version"])


LABELS = pd.DataFrame(
    {
        "member_id": [1, 1, 2],
        "ad_id": [10, 11, 10],
        "event_timestamp": pd.to_datetime(
            ["2026-03-02 03:00", "2026-03-02 01:30", "2026-03-02 00:30"]
        ),
        "clicked": [1, 0, 0],
    }
)


@pytest.mark.slow
def test_reproduce_after_the_feature_tables_changed(spark, tmp_path):
    first_tables(spark)
    tables = [REGISTRY.view(v).table for v in ("ad_performance", "ad_profile", "member_profile")]
    versions = {t: table_version(spark, t) for t in tables}

    # 1. In-memory labels: they are written next to the output to be replayable.
    in_memory_out = str(tmp_path / "from_pandas")
    written = build_training_set(spark, LABELS, REFS, output=in_memory_out)
    recorded_rows = written.collect()
    assert sorted(r.ad_clicks_count_1d for r in recorded_rows) == [1, 2, 5]
    assert DeltaTable.isDeltaTable(spark, in_memory_out + "__labels")

    # 2. Labels from a Delta path, output to a catalog table.
    labels_path = str(tmp_path / "labels")
    spark.createDataFrame(LABELS).write.format("delta").save(labels_path)
    catalog_out = "training_sets.reproduce_test"
    build_training_set(spark, labels_path, REFS, output=catalog_out, mode="serving")

    # What was recorded: table versions, definitions hash, labels source and version.
    properties = DeltaTable.forPath(spark, in_memory_out).detail().first()["properties"]
    assert json.loads(properties[FEATURE_VERSIONS_PROPERTY]) == versions
    assert properties[DEFINITIONS_HASH_PROPERTY] == select_features(REGISTRY, REFS).definitions_hash
    record = json.loads(properties[METADATA_PROPERTY])
    assert record["labels"] == {
        "ref": in_memory_out + "__labels",
        "version": 0,
        "origin": "a pandas DataFrame",
    }
    catalog_record = read_record(spark, catalog_out)
    assert catalog_record.labels.ref == labels_path and catalog_record.labels.version == 0
    assert catalog_record.mode == "serving"

    # The world changes: feature tables corrected, more labels appended.
    change_tables(spark)
    spark.createDataFrame(LABELS).write.format("delta").mode("append").save(labels_path)
    fresh = build_training_set(spark, LABELS, REFS).collect()
    assert sorted(r.ad_clicks_count_1d for r in fresh) == [100, 200, 500]  # the test can fail

    # Rebuilt from the recorded versions: the very same rows.
    assertDataFrameEqual(reproduce(spark, in_memory_out), recorded_rows)
    rebuilt = reproduce(spark, catalog_out)
    assert rebuilt.count() == len(LABELS)
    assert compare(spark.table(catalog_out), rebuilt).identical

    # Written elsewhere on request, with the same record.
    copy_out = str(tmp_path / "rebuilt")
    assertDataFrameEqual(reproduce(spark, in_memory_out, into=copy_out), recorded_rows)
    assert read_record(spark, copy_out) == read_record(spark, in_memory_out)
    feature_table = read_record(spark, in_memory_out).views[0].table
    with pytest.raises(PlatformError, match="an input of the rebuild"):
        reproduce(spark, in_memory_out, into=feature_table)


def test_reproduce_needs_a_training_set(spark, tmp_path):
    plain = str(tmp_path / "plain")
    spark.range(3).write.format("delta").save(plain)
    with pytest.raises(PlatformError, match="not a training set"):
        reproduce(spark, plain)
    with pytest.raises(PlatformError, match="does not exist"):
        reproduce(spark, str(tmp_path / "nothing"))
