"""Delta references (a catalog table name or a path), pinned versions and table properties."""

from __future__ import annotations

import os
from urllib.parse import urlparse

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession

from pipelines.delta_io import ensure_database
from pipelines.errors import MissingTableError, PlatformError


def is_path(ref: str) -> bool:
    """Paths contain a slash or a scheme; catalog names look like `db.table`."""
    return "/" in ref or "://" in ref or ref.startswith(".")


def normalize(ref: str) -> str:
    """Absolute local paths (URIs such as s3://... and table names are kept as they are)."""
    if is_path(ref) and not urlparse(ref).scheme:
        return os.path.abspath(ref)
    return ref


def identifier(ref: str) -> str:
    """The name to use in `DataFrame.writeTo` and SQL for a table or a path."""
    return f"delta.`{ref}`" if is_path(ref) else ref


def is_delta(spark: SparkSession, ref: str) -> bool:
    from delta.tables import DeltaTable

    if is_path(ref):
        return bool(DeltaTable.isDeltaTable(spark, ref))
    if not spark.catalog.tableExists(ref):
        return False
    try:
        DeltaTable.forName(spark, ref)
    except AnalysisException:
        return False
    return True


def exists(spark: SparkSession, ref: str) -> bool:
    return is_delta(spark, ref) if is_path(ref) else bool(spark.catalog.tableExists(ref))


def current_version(spark: SparkSession, ref: str) -> int:
    """The latest committed version of a Delta table (read from its log, no data scan)."""
    from delta.tables import DeltaTable

    table = DeltaTable.forPath(spark, ref) if is_path(ref) else DeltaTable.forName(spark, ref)
    row = table.history(1).select("version").first()
    if row is None:
        raise MissingTableError(f"Delta table {ref} has no history")
    return int(row["version"])


def read_at(spark: SparkSession, ref: str, version: int) -> DataFrame:
    """The table as of `version` (Delta time travel); a clear error if it is gone."""
    reader = spark.read.format("delta").option("versionAsOf", version)
    try:
        df = reader.load(ref) if is_path(ref) else reader.table(ref)
        df.schema  # noqa: B018 - resolves the snapshot now, so a missing version fails here
    except AnalysisException as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise PlatformError(f"cannot read {ref} at Delta version {version}: {first_line}") from exc
    return df


def properties(spark: SparkSession, ref: str) -> dict[str, str]:
    from delta.tables import DeltaTable

    table = DeltaTable.forPath(spark, ref) if is_path(ref) else DeltaTable.forName(spark, ref)
    row = table.detail().select("properties").first()
    return dict(row["properties"] or {}) if row is not None else {}


def replace_with_properties(df: DataFrame, ref: str, table_properties: dict[str, str]) -> None:
    """Create or replace the whole table in one Delta commit, data and properties together."""
    if not is_path(ref) and "." in ref:
        ensure_database(df.sparkSession, ref.split(".")[0])
    writer = df.writeTo(identifier(ref)).using("delta")
    for key, value in table_properties.items():
        writer = writer.tableProperty(key, value)
    writer.createOrReplace()


def read_latest(spark: SparkSession, ref: str) -> DataFrame:
    return spark.read.format("delta").load(ref) if is_path(ref) else spark.read.table(ref)
