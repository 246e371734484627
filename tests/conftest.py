"""One SparkSession for the whole test session, on a throwaway data directory."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("platform-data")
    previous = os.environ.get("FEATURE_PLATFORM_DATA_DIR")
    os.environ["FEATURE_PLATFORM_DATA_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("FEATURE_PLATFORM_DATA_DIR", None)
    else:
        os.environ["FEATURE_PLATFORM_DATA_DIR"] = previous


@pytest.fixture(scope="session")
def spark(data_dir) -> Iterator[SparkSession]:
    from pipelines.spark import get_spark

    session = get_spark(
        "feature-platform-tests",
        extra_conf={
            "spark.master": "local[2]",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.sql.adaptive.coalescePartitions.enabled": "true",
            "spark.databricks.delta.snapshotPartitions": "2",
        },
    )
    yield session
    session.stop()
