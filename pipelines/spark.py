"""The one way the platform builds a SparkSession: from `spark_conf/`.

Spark's launcher reads `spark_conf/spark-defaults.conf` and sources
`spark_conf/spark-env.sh` when SPARK_CONF_DIR points there, exactly as it does
for `spark-sql` and `pyspark`; so the Python jobs, the shells and Feast's Spark
offline store share one configuration.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from pipelines.config import DATA_DIR_ENV, SPARK_CONF_DIR, settings
from pipelines.errors import PlatformError
from pipelines.run_logs import output_to, run_log_path

# The file the JVM of this process writes its output to (see `get_spark`).
_jvm_log: Path | None = None


class SparkStartError(PlatformError):
    pass


def get_spark(
    app_name: str = "feature-platform", extra_conf: dict[str, Any] | None = None
) -> SparkSession:
    """Return the active session, or start one from the project's Spark configuration.

    The JVM reads its configuration once; an already running session is returned
    as it is (with `extra_conf` applied where Spark allows it at runtime).
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        for key, value in (extra_conf or {}).items():
            active.conf.set(key, str(value))
        return active

    conf = settings()
    conf.data_dir.mkdir(parents=True, exist_ok=True)
    # The launcher (spark-submit) that pyspark starts reads these two variables.
    os.environ["SPARK_CONF_DIR"] = str(SPARK_CONF_DIR)
    os.environ[DATA_DIR_ENV] = str(conf.data_dir)
    # Python UDF workers (mapInArrow writers, pandas UDFs) need this interpreter's packages;
    # on a cluster set PYSPARK_PYTHON to the executors' interpreter instead.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name).config(
        # Maven Central only (see the file): pyspark passes it to spark-submit as --conf, the
        # only way the launcher reads it, since spark-defaults.conf cannot hold a path that
        # depends on where the checkout is.
        "spark.jars.ivySettings",
        str(SPARK_CONF_DIR / "ivysettings.xml"),
    )
    if conf.spark_master:
        builder = builder.master(conf.spark_master)
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, str(value))
    global _jvm_log
    log = run_log_path("spark")
    try:
        # The JVM inherits the redirected descriptors: its dependency resolution and
        # its log lines go to the file for as long as it runs.
        with output_to(log):
            spark = builder.enableHiveSupport().getOrCreate()
    except Exception as exc:  # the JVM's own message is long; keep the first line
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise SparkStartError(
            f"could not start Spark with {SPARK_CONF_DIR}: {first_line} (Spark's output: {log})"
        ) from exc
    _jvm_log = log
    spark.sparkContext.setLogLevel("WARN")
    # py4j logs each closed connection at INFO (at exit too), wherever a library such as
    # Airflow has set the root level to INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    downloaded = _jars_downloaded(log)
    if downloaded:
        print(
            f"spark: fetched {downloaded} jars from Maven Central (cached for later runs); "
            f"resolution log: {log}",
            file=sys.stderr,
        )
    return spark


def spark_log() -> Path | None:
    """The file this process's Spark JVM writes its output to, once it has started."""
    return _jvm_log


def _jars_downloaded(log: Path) -> int:
    # Ivy prints one "downloading <url> ..." line per artifact it fetches.
    text = log.read_text(errors="replace")
    return len(re.findall(r"^\s*downloading https?://", text, flags=re.MULTILINE))
