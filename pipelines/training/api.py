"""`build_training_set`: point-in-time-correct training sets from labels and feature tables."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeAlias

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from features import REGISTRY, FeatureView, Registry
from pipelines.errors import MissingTableError, PlatformError
from pipelines.training import delta
from pipelines.training.asof import SkewPolicy, column_named, label_stats, point_in_time_join
from pipelines.training.metadata import LabelsRecord, TrainingSetRecord
from pipelines.training.sawtooth import sawtooth_join
from pipelines.training.spec import FeatureSelection, Mode, ViewRead, select_features

Labels: TypeAlias = DataFrame | pd.DataFrame | str
Features: TypeAlias = str | list[str]
# Each view with its table read at the view's pinned Delta version.
PinnedTables: TypeAlias = tuple[tuple[ViewRead, DataFrame], ...]

LABELS_COPY_SUFFIX = "__labels"
# The joins' own columns (pipelines.training.asof and .sawtooth).
RESERVED_PREFIXES = ("__pit_", "__sawtooth_", "__head__")

_INTEGER_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_TIMESTAMP_TYPES = (T.TimestampType, T.TimestampNTZType)


class TrainingSetError(PlatformError):
    """Bad input to a training set: the message names the culprit."""


@dataclass(frozen=True)
class LoadedLabels:
    df: DataFrame
    description: str  # what the caller passed, for messages and the record
    pinned: LabelsRecord | None  # set when the labels are a Delta table read at a version


def build_training_set(
    spark: SparkSession,
    labels: Labels,
    features: Features,
    *,
    timestamp_column: str = "event_timestamp",
    output: str | None = None,
    mode: Mode | str = Mode.FEAST,
    skew: SkewPolicy | None = None,
) -> DataFrame:
    """Join every label row to the features as they were at its timestamp.

    `mode` says which values "as they were" means (`Mode`): `feast`, the latest row by
    event time with its latest version, as Feast's `get_historical_features` gives;
    `known`, only versions known at the label time; `serving`, only the versions the
    online store served then, so each row equals what a model saw in production;
    `realtime`, real-time views at the exact label time (sawtooth windows), the others
    as served.

    `labels`: a Spark or pandas DataFrame, a catalog table name or a Delta path, with
    the entity join keys of every requested view and `timestamp_column`; all its
    columns pass through unchanged. `features`: a feature service name or
    `"view:feature"` references. Feature tables are read at their current Delta
    version, pinned before reading.

    Returns the label columns followed by the features (named like the features, as
    Feast does by default), one row per label row. With `output` (a Delta path or a
    catalog table), the training set is written there in one commit, together with
    what is needed to rebuild it (`pipelines.training.reproduce`), and read back.
    `skew` sets when an entity counts as hot and is split over several tasks; it
    changes how the work is spread, never the rows.
    """
    mode = _mode(mode)
    selection = _select(REGISTRY, features)
    output_ref = delta.normalize(output) if output is not None else None
    _check_output_is_not_read(output_ref, selection.views)
    loaded = load_labels(spark, labels)
    validate_labels(loaded, selection, timestamp_column)
    _check_names(loaded.df, selection.views)
    tables = pin_feature_tables(spark, selection)
    if mode is Mode.REALTIME:
        tables = pin_sawtooth_tables(spark, tables)
    if output_ref is not None and loaded.pinned is not None and loaded.pinned.ref == output_ref:
        raise TrainingSetError(f"output {output_ref} is the labels table itself")

    if output_ref is None:
        return join_features(loaded.df, tables, timestamp_column, mode, skew)

    if loaded.pinned is not None:
        labels_record, labels_df = loaded.pinned, loaded.df  # already read at that version
    else:
        labels_record = _snapshot_labels(loaded, output_ref)
        labels_df = delta.read_at(spark, labels_record.ref, labels_record.version)
    record = TrainingSetRecord(
        features=features,
        timestamp_column=timestamp_column,
        mode=mode,
        views=tuple(view for view, _ in tables),
        definitions_hash=selection.definitions_hash,
        labels=labels_record,
    )
    result = join_features(labels_df, tables, timestamp_column, mode, skew)
    delta.replace_with_properties(result, output_ref, record.to_properties())
    return delta.read_latest(spark, output_ref)


def join_features(
    labels: DataFrame,
    tables: PinnedTables,
    timestamp_column: str,
    mode: Mode,
    skew: SkewPolicy | None = None,
) -> DataFrame:
    """The join itself, on feature tables already read at their pinned versions."""
    sawtooth = [view for view, _ in tables if mode is Mode.REALTIME and view.sawtooth_tables]
    as_of = tuple((view, table) for view, table in tables if view not in sawtooth)
    joined = labels
    if as_of:
        joined = point_in_time_join(
            labels,
            as_of,
            timestamp_column=timestamp_column,
            stats=label_stats(labels, timestamp_column),
            mode=mode,
            skew=skew,
        )
    for view in sawtooth:
        declared = _current_declaration(view)
        read = [delta.read_at(labels.sparkSession, t, v) for t, v in view.sawtooth_tables]
        joined = sawtooth_join(
            joined,
            declared,
            state=read[0],
            events={s.name: df for s, df in zip(declared.sources, read[1:], strict=True)},
            timestamp_column=timestamp_column,
            features=view.features,
            base_labels=labels,
        )
    ordered = [f for view, _ in tables for f in view.features]
    return joined.select(
        *[column_named(c) for c in labels.columns], *[column_named(f) for f in ordered]
    )


def _current_declaration(view: ViewRead) -> FeatureView:
    """The declaration a sawtooth join merges with: sawtooth values are computed from the
    view's aggregations, so they must still mean what the training set recorded."""
    declared = select_features(REGISTRY, [f"{view.name}:{f}" for f in view.features])
    feature_view = REGISTRY.view(view.name)
    if declared.views[0].definition_hash != view.definition_hash or not isinstance(
        feature_view, FeatureView
    ):
        raise TrainingSetError(
            f"feature view {view.name} changed since the training set was recorded: "
            "its sawtooth values cannot be rebuilt"
        )
    return feature_view


def pin_sawtooth_tables(spark: SparkSession, tables: PinnedTables) -> PinnedTables:
    """For Mode.REALTIME: each real-time view's state table and its sources' clean
    tables, pinned at their current Delta versions."""
    pinned = []
    for view, table in tables:
        declared = REGISTRY.view(view.name)
        if isinstance(declared, FeatureView) and declared.realtime:
            refs = [declared.state_table, *[source.table for source in declared.sources]]
            for ref in refs:
                if not spark.catalog.tableExists(ref):
                    raise MissingTableError(
                        f"table {ref} does not exist (compute feature view {view.name} first)"
                    )
            versions = tuple((ref, delta.current_version(spark, ref)) for ref in refs)
            view = replace(view, sawtooth_tables=versions)
        pinned.append((view, table))
    return tuple(pinned)


def _mode(mode: Mode | str) -> Mode:
    try:
        return Mode(mode)
    except ValueError:
        known = ", ".join(m.value for m in Mode)
        raise TrainingSetError(f"unknown mode {mode!r} (known: {known})") from None


def read_pinned(spark: SparkSession, views: tuple[ViewRead, ...]) -> PinnedTables:
    """Each view's table at the Delta version recorded in the view (time travel)."""
    tables = []
    for view in views:
        if view.version is None:
            raise TrainingSetError(f"feature view {view.name}: no Delta version pinned")
        tables.append((view, delta.read_at(spark, view.table, view.version)))
    return tuple(tables)


def load_labels(spark: SparkSession, labels: Labels) -> LoadedLabels:
    if isinstance(labels, DataFrame):
        return LoadedLabels(labels, "a Spark DataFrame", None)
    if isinstance(labels, pd.DataFrame):
        return LoadedLabels(_from_pandas(spark, labels), "a pandas DataFrame", None)
    if not isinstance(labels, str):
        raise TrainingSetError(
            "labels must be a Spark or pandas DataFrame, a table name or a Delta path, "
            f"not {type(labels).__name__}"
        )
    ref = delta.normalize(labels)
    if delta.is_path(ref):
        if not delta.is_delta(spark, ref):
            raise MissingTableError(f"labels path {ref} is not a Delta table")
    elif not spark.catalog.tableExists(ref):
        raise MissingTableError(f"labels table {ref} does not exist")
    elif not delta.is_delta(spark, ref):
        # A catalog table without time travel: snapshot it when writing.
        return LoadedLabels(spark.read.table(ref), f"table {ref}", None)
    version = delta.current_version(spark, ref)
    return LoadedLabels(
        delta.read_at(spark, ref, version), ref, LabelsRecord(ref, version, origin=ref)
    )


def validate_labels(
    loaded: LoadedLabels, selection: FeatureSelection, timestamp_column: str
) -> None:
    schema = loaded.df.schema
    names = [f.name for f in schema.fields]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TrainingSetError(f"labels ({loaded.description}) repeat columns {duplicates}")
    if timestamp_column not in names:
        raise TrainingSetError(
            f"labels ({loaded.description}) have no timestamp column {timestamp_column!r} "
            f"(columns: {', '.join(names)})"
        )
    ts_type = schema[timestamp_column].dataType
    if not isinstance(ts_type, _TIMESTAMP_TYPES):
        raise TrainingSetError(
            f"labels column {timestamp_column!r} is {ts_type.simpleString()}, not a timestamp "
            "(convert it, e.g. with to_timestamp, so times are not compared as text or numbers)"
        )
    for view in selection.views:
        key = view.join_key
        if key not in names:
            raise TrainingSetError(
                f"labels ({loaded.description}) have no join key column {key!r}, "
                f"needed by feature view {view.name}"
            )
        key_type = schema[key].dataType
        wanted = _INTEGER_TYPES if view.key_type == "int64" else (T.StringType,)
        if not isinstance(key_type, wanted):
            raise TrainingSetError(
                f"labels column {key!r} is {key_type.simpleString()}, but feature view "
                f"{view.name} keys on {view.key_type}"
            )


def pin_feature_tables(spark: SparkSession, selection: FeatureSelection) -> PinnedTables:
    """Each view at the current Delta version of its table, read at that version once and
    checked for the needed columns."""
    pinned = []
    for view in selection.views:
        if not spark.catalog.tableExists(view.table):
            raise MissingTableError(
                f"feature table {view.table} does not exist (compute feature view {view.name} first)"
            )
        if not delta.is_delta(spark, view.table):
            raise TrainingSetError(f"feature table {view.table} is not a Delta table")
        version = delta.current_version(spark, view.table)
        table = delta.read_at(spark, view.table, version)
        present = set(table.columns)
        missing = [c for c in view.columns() if c not in present]
        if missing:
            raise TrainingSetError(
                f"feature table {view.table} (version {version}) lacks columns {missing}"
            )
        pinned.append((view.at_version(version), table))
    return tuple(pinned)


def _select(registry: Registry, features: Features) -> FeatureSelection:
    if not isinstance(features, str):
        if not features:
            raise TrainingSetError("no features requested")
        repeated = sorted({ref for ref in features if list(features).count(ref) > 1})
        if repeated:
            raise TrainingSetError(f"features requested more than once: {repeated}")
    return select_features(registry, features if isinstance(features, str) else list(features))


def _check_output_is_not_read(output_ref: str | None, views: tuple[ViewRead, ...]) -> None:
    for view in views:
        if output_ref == view.table:
            raise TrainingSetError(
                f"output {output_ref} is the feature table of view {view.name}, an input"
            )


def _check_names(labels: DataFrame, views: tuple[ViewRead, ...]) -> None:
    taken = set(labels.columns)
    for view in views:
        for name in view.features:
            if name in taken:
                raise TrainingSetError(
                    f"feature {view.name}:{name} has the name of a labels column; "
                    "rename that column"
                )
            taken.add(name)
    for prefix in RESERVED_PREFIXES:
        internal = [c for c in labels.columns if c.startswith(prefix)]
        if internal:
            raise TrainingSetError(f"labels columns {internal} use the reserved prefix {prefix!r}")


def _from_pandas(spark: SparkSession, labels: pd.DataFrame) -> DataFrame:
    """As Feast does: datetime columns become UTC instants (naive ones are taken as UTC)."""
    converted = labels.copy()
    for column in converted.columns:
        if pd.api.types.is_datetime64_any_dtype(converted[column]):
            converted[column] = pd.to_datetime(converted[column], utc=True)
    if converted.empty:
        raise TrainingSetError("labels (a pandas DataFrame) are empty")
    return spark.createDataFrame(converted)


def _snapshot_labels(loaded: LoadedLabels, output_ref: str) -> LabelsRecord:
    """Write labels that cannot be time-travelled next to the output, so they can be replayed."""
    copy_ref = labels_copy_ref(output_ref)
    delta.replace_with_properties(loaded.df, copy_ref, {"training_set.labels_of": output_ref})
    spark = loaded.df.sparkSession
    return LabelsRecord(copy_ref, delta.current_version(spark, copy_ref), loaded.description)


def labels_copy_ref(output_ref: str) -> str:
    return output_ref.rstrip("/") + LABELS_COPY_SUFFIX
