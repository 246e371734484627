"""Rebuild a written training set from what it recorded, with Delta time travel."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from features import REGISTRY, DeclarationError
from pipelines.errors import MissingTableError
from pipelines.training import delta
from pipelines.training.api import TrainingSetError, join_features, read_pinned
from pipelines.training.metadata import TrainingSetRecord
from pipelines.training.spec import select_features


def read_record(spark: SparkSession, output: str) -> TrainingSetRecord:
    ref = delta.normalize(output)
    if not delta.exists(spark, ref) or not delta.is_delta(spark, ref):
        raise MissingTableError(f"training set {ref} does not exist or is not a Delta table")
    return TrainingSetRecord.from_properties(ref, delta.properties(spark, ref))


def reproduce(spark: SparkSession, output: str, *, into: str | None = None) -> DataFrame:
    """The training set at `output`, rebuilt from the labels and feature table versions it read.

    Uses the view definitions recorded with it (key, TTL, features), not the current
    declarations, so later edits to the declarations do not change the rebuild. With
    `into`, the rebuild is written there (with the same record) and read back.
    """
    record = read_record(spark, output)
    labels = delta.read_at(spark, record.labels.ref, record.labels.version)
    tables = read_pinned(spark, record.views)
    rebuilt = join_features(labels, tables, record.timestamp_column, record.mode)
    if into is None:
        return rebuilt
    into_ref = delta.normalize(into)
    inputs = {delta.normalize(output), record.labels.ref, *(view.table for view in record.views)}
    inputs |= {table for view in record.views for table, _ in view.sawtooth_tables}
    if into_ref in inputs:
        raise TrainingSetError(f"cannot rebuild into {into_ref}: it is an input of the rebuild")
    delta.replace_with_properties(rebuilt, into_ref, record.to_properties())
    return delta.read_latest(spark, into_ref)


@dataclass(frozen=True)
class Comparison:
    rows: int
    missing: int  # recorded rows the rebuild lacks (counted with multiplicity)
    extra: int  # rebuilt rows the recorded set lacks

    @property
    def identical(self) -> bool:
        return self.missing == 0 and self.extra == 0


def compare(recorded: DataFrame, rebuilt: DataFrame) -> Comparison:
    """Row multisets compared in Spark; only three counts reach the driver."""
    if recorded.columns != rebuilt.columns:
        return Comparison(recorded.count(), -1, -1)
    return Comparison(
        rows=recorded.count(),
        missing=recorded.exceptAll(rebuilt).count(),
        extra=rebuilt.exceptAll(recorded).count(),
    )


def changed_definitions(record: TrainingSetRecord) -> list[str]:
    """Views whose current declarations differ from those the training set was built with."""
    changed = []
    for view in record.views:
        try:
            current = select_features(REGISTRY, [f"{view.name}:{f}" for f in view.features])
        except DeclarationError:
            changed.append(view.name)
            continue
        if current.views[0].definition_hash != view.definition_hash:
            changed.append(view.name)
    return changed
