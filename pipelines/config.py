"""Where the platform keeps its state, from environment variables with embedded defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SPARK_CONF_DIR = PROJECT_ROOT / "spark_conf"
FEATURE_REPO_DIR = PROJECT_ROOT / "feature_repo"

DATA_DIR_ENV = "FEATURE_PLATFORM_DATA_DIR"
REDIS_URL_ENV = "REDIS_URL"
SPARK_MASTER_ENV = "FEATURE_PLATFORM_SPARK_MASTER"
KAFKA_BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
DRIFT_REFERENCE_ENV = "FEATURE_PLATFORM_DRIFT_REFERENCE"

# Database names: features.catalog.


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    redis_url: str | None
    spark_master: str | None
    kafka_bootstrap_servers: str | None
    # The training set of the model in production, which the daily drift check compares with.
    drift_reference: str | None = None

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

    def ctr_training_set(self, day: date) -> Path:
        """Where the daily job writes the CTR training set of `day`."""
        return self.data_dir / "training_sets" / "ctr" / day.isoformat()


def settings() -> Settings:
    """Read the settings now (not at import), so tests and CLIs can set the environment first."""
    data_dir = Path(os.environ.get(DATA_DIR_ENV) or PROJECT_ROOT / "data").resolve()
    return Settings(
        data_dir=data_dir,
        redis_url=os.environ.get(REDIS_URL_ENV) or None,
        spark_master=os.environ.get(SPARK_MASTER_ENV) or None,
        kafka_bootstrap_servers=os.environ.get(KAFKA_BOOTSTRAP_ENV) or None,
        drift_reference=os.environ.get(DRIFT_REFERENCE_ENV) or None,
    )
