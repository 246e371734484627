"""Where the platform keeps its state, from environment variables with embedded defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SPARK_CONF_DIR = PROJECT_ROOT / "spark_conf"
FEATURE_REPO_DIR = PROJECT_ROOT / "feature_repo"

DATA_DIR_ENV = "FEATURE_PLATFORM_DATA_DIR"
REDIS_URL_ENV = "REDIS_URL"
SPARK_MASTER_ENV = "FEATURE_PLATFORM_SPARK_MASTER"
KAFKA_BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"

# Database names: features.catalog.


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    redis_url: str | None
    spark_master: str | None
    kafka_bootstrap_servers: str | None

    @property
    def warehouse_dir(self) -> Path:
        return self.data_dir / "warehouse"

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def kafka_dir(self) -> Path:
        return self.data_dir / "kafka"


def settings() -> Settings:
    """Read the settings now (not at import), so tests and CLIs can set the environment first."""
    data_dir = Path(os.environ.get(DATA_DIR_ENV) or PROJECT_ROOT / "data").resolve()
    return Settings(
        data_dir=data_dir,
        redis_url=os.environ.get(REDIS_URL_ENV) or None,
        spark_master=os.environ.get(SPARK_MASTER_ENV) or None,
        kafka_bootstrap_servers=os.environ.get(KAFKA_BOOTSTRAP_ENV) or None,
    )
