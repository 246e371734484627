"""The environment of the Feast repo and the FeatureStore the platform reads through.

`feature_repo/feature_store.yaml` takes two values from the environment (Feast
expands `${VAR}` when it loads the file): the data directory (registry path) and
the Redis connection string. Sessions Feast builds itself (when no SparkSession
is active) need SPARK_CONF_DIR, so they read spark_conf/ like every other Spark
launch, and PYSPARK_PYTHON, so their Python workers have this environment's
packages. `feast_environment()` computes all four for the current settings;
`feature-platform feast-env` prints them as shell exports.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipelines.config import DATA_DIR_ENV, FEATURE_REPO_DIR, SPARK_CONF_DIR, settings
from pipelines.errors import PlatformError
from pipelines.redis_server import (
    check_redis,
    ensure_redis,
    feast_connection_string,
    feast_redis_type,
)


def quiet_feast_warnings() -> None:
    """Drop Feast's "experimental Spark API" warnings, printed on every registry read.

    Feast's Spark store sets `simplefilter("once", RuntimeWarning)` when imported,
    so the filter goes in after that import.
    """
    import feast.infra.offline_stores.contrib.spark_offline_store.spark  # noqa: F401

    warnings.filterwarnings("ignore", message="The spark ", category=RuntimeWarning)


REDIS_CONNECTION_ENV = "FEATURE_PLATFORM_REDIS_CONNECTION"
REDIS_TYPE_ENV = "FEATURE_PLATFORM_REDIS_TYPE"
SPARK_CONF_DIR_ENV = "SPARK_CONF_DIR"
PYSPARK_PYTHON_ENV = "PYSPARK_PYTHON"
FEAST_YAML = "feature_store.yaml"


@dataclass(frozen=True)
class RepoSettings:
    """What the platform's own writer must agree on with Feast, read from feature_store.yaml."""

    project: str
    entity_key_serialization_version: int


def repo_settings(repo_path: Path = FEATURE_REPO_DIR) -> RepoSettings:
    path = repo_path / FEAST_YAML
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PlatformError(f"no Feast repo config at {path}") from None
    version = int(raw.get("entity_key_serialization_version", 3))
    if version != 3:
        raise PlatformError(f"{path}: entity_key_serialization_version must be 3, not {version}")
    return RepoSettings(project=str(raw["project"]), entity_key_serialization_version=version)


def resolve_redis_url(redis_url: str | None = None) -> str:
    """`redis_url` (checked), else REDIS_URL (checked), else the local server (started if needed)."""
    if redis_url:
        check_redis(redis_url)
        return redis_url
    return ensure_redis()


def feast_environment(redis_url: str | None = None) -> dict[str, str]:
    """The variables feature_store.yaml and Feast's Spark sessions need.

    Creates the registry's folder, which Feast expects to exist.
    """
    conf = settings()
    url = resolve_redis_url(redis_url)
    (conf.data_dir / "feast").mkdir(parents=True, exist_ok=True)
    return {
        DATA_DIR_ENV: str(conf.data_dir),
        SPARK_CONF_DIR_ENV: str(SPARK_CONF_DIR),
        # Python workers of sessions Feast starts (spark.engine) need this interpreter's packages.
        PYSPARK_PYTHON_ENV: os.environ.get(PYSPARK_PYTHON_ENV) or sys.executable,
        REDIS_CONNECTION_ENV: feast_connection_string(url),
        REDIS_TYPE_ENV: feast_redis_type(url),
    }


def use_feast_environment(redis_url: str | None = None) -> dict[str, str]:
    """Set the variables in this process."""
    env = feast_environment(redis_url)
    os.environ.update(env)
    return env


def feature_store(redis_url: str | None = None, repo_path: Path = FEATURE_REPO_DIR):  # type: ignore[no-untyped-def]
    """A Feast FeatureStore on the platform's repo, pointed at the right data dir and Redis.

    Feast reads the variables once, when it loads the repo config; the process
    environment is left as it was.
    """
    from feast import FeatureStore

    quiet_feast_warnings()
    env = feast_environment(redis_url)
    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return FeatureStore(repo_path=str(repo_path))
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
