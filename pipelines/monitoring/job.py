"""The `drift` job: every selected feature, current interval against a reference.

Each side is an interval of the feature tables, a table of feature columns (a training
set: its Delta directory or its table name), or what a feature service served in an
interval (its request log, `ServedLog`). A feature's values over an interval are its
view's rows with `event_timestamp` in the interval, each in its latest version known at
the interval's end: what the online store held, hour by hour, for every entity that had
a row.

Each run appends one row per feature to `monitoring.drift_metrics` (the trend) and
writes one HTML report under `<data_dir>/reports/drift/`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features import REGISTRY, AnyView, Feature
from features.catalog import MONITORING, table_name
from pipelines.config import settings
from pipelines.delta_io import ensure_database, require_table, rows_in
from pipelines.errors import NothingToCheckError, PlatformError
from pipelines.feature_tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP, PARTITION_COLUMN
from pipelines.interval import Interval, utc_literal
from pipelines.monitoring.drift import FeatureDrift, Verdict, measure_drift
from pipelines.monitoring.report import write_report

METRICS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType()),
        T.StructField("measured_at", T.TimestampType()),
        T.StructField("reference", T.StringType()),
        T.StructField("current", T.StringType()),
        T.StructField("view", T.StringType()),
        T.StructField("feature", T.StringType()),
        T.StructField("value_type", T.StringType()),
        T.StructField("method", T.StringType()),
        T.StructField("score", T.DoubleType()),
        T.StructField("psi", T.DoubleType()),
        T.StructField("js_distance", T.DoubleType()),
        T.StructField("ks_statistic", T.DoubleType()),
        T.StructField("wasserstein_normed", T.DoubleType()),
        T.StructField("chi_squared_p_value", T.DoubleType()),
        T.StructField("reference_null_rate", T.DoubleType()),
        T.StructField("current_null_rate", T.DoubleType()),
        T.StructField("reference_mean", T.DoubleType()),
        T.StructField("current_mean", T.DoubleType()),
        T.StructField("reference_p50", T.DoubleType()),
        T.StructField("current_p50", T.DoubleType()),
        T.StructField("reference_p90", T.DoubleType()),
        T.StructField("current_p90", T.DoubleType()),
        T.StructField("reference_rows", T.LongType()),
        T.StructField("current_rows", T.LongType()),
        T.StructField("verdict", T.StringType()),
        T.StructField("reasons", T.StringType()),
    ]
)


def metrics_table() -> str:
    return table_name(MONITORING, "drift_metrics")


@dataclass(frozen=True)
class DriftReport:
    run_id: str
    reference: str
    current: str
    drifts: dict[str, list[FeatureDrift]]  # by view
    report_path: Path

    @property
    def features(self) -> list[tuple[str, FeatureDrift]]:
        return [(view, d) for view, drifts in self.drifts.items() for d in drifts]

    def named(self, verdict: Verdict) -> list[str]:
        return [d.feature for _, d in self.features if d.verdict is verdict]

    @property
    def verdict(self) -> Verdict:
        if self.named(Verdict.ALERT):
            return Verdict.ALERT
        return Verdict.WARN if self.named(Verdict.WARN) else Verdict.OK

    def lines(self) -> list[str]:
        counted = {v: len(self.named(v)) for v in Verdict}
        out = [
            f"drift of {len(self.features)} features, {self.current} against {self.reference}: "
            f"{self.verdict.value.upper()} ({counted[Verdict.ALERT]} alert, "
            f"{counted[Verdict.WARN]} warn, {counted[Verdict.OK]} ok)"
        ]
        for view, drift in self.features:
            if drift.verdict is not Verdict.OK:
                out.append(
                    f"  {drift.verdict.value:<5} {view}:{drift.feature}: {'; '.join(drift.reasons)}"
                )
        out.append(f"  report: {self.report_path}")
        out.append(f"  trend: SELECT * FROM {metrics_table()} WHERE feature = '<name>'")
        return out


def feature_values(spark: SparkSession, view: AnyView, interval: Interval) -> DataFrame:
    """The view's rows in the interval, each in its latest version known at its end."""
    require_table(spark, view.table, hint="run `feature-platform compute` first")
    names = [f.name for f in view.features]
    rows = rows_in(
        spark.table(view.table), EVENT_TIMESTAMP, interval, partition_column=PARTITION_COLUMN
    ).where(F.col(CREATED_TIMESTAMP) <= utc_literal(interval.end))
    latest = rows.groupBy(view.entity.join_key, EVENT_TIMESTAMP).agg(
        F.max_by(F.struct(*names), F.col(CREATED_TIMESTAMP)).alias("values")
    )
    return latest.select(*[F.col(f"values.{n}").alias(n) for n in names])


def read_table(spark: SparkSession, where: str) -> DataFrame:
    """A table of feature columns: a Delta directory (a path) or a table name."""
    if "/" in where:
        if not (Path(where) / "_delta_log").is_dir():
            raise PlatformError(f"{where} is not a Delta directory (a training set?)")
        return spark.read.format("delta").load(where)
    require_table(spark, where)
    return spark.table(where)


# Without a declared production model, the daily check takes the training set of the same
# weekday a week earlier (traffic has a weekly cycle too).
MODEL_AGE = timedelta(days=7)


def model_training_sets(day: Interval) -> tuple[str, str]:
    """(reference, current) of the daily drift check: the production model's training set
    (FEATURE_PLATFORM_DRIFT_REFERENCE, or the CTR training set of a week before) and the
    day's CTR training set. Both are rows at label times, so like is compared with like.
    NothingToCheckError when either is not there."""
    conf = settings()
    current = conf.ctr_training_set(day.start.date())
    reference = (
        Path(conf.drift_reference)
        if conf.drift_reference
        else conf.ctr_training_set((day.start - MODEL_AGE).date())
    )
    for side, path in (("the production model's training set", reference), ("the day's", current)):
        if not (path / "_delta_log").is_dir():
            raise NothingToCheckError(f"no drift check: {side} ({path}) does not exist")
    return str(reference), str(current)


# The service whose served log the daily check compares, beside the training sets.
DAILY_SERVICE = "ctr_model"


@dataclass(frozen=True)
class ServedLog:
    """The feature vectors `service` served in `interval`, as its request log holds them
    (a sample of the requests: `RequestLog`). `directory`: the log's root, if not the
    data directory's."""

    service: str
    interval: Interval
    directory: Path | None = None

    def __str__(self) -> str:
        return f"served by {self.service} in {self.interval}"


def served_values(spark: SparkSession, log: ServedLog) -> DataFrame:
    """The logged vectors of the interval, one row per served entity row."""
    from pipelines.quality.replay import load_request_log

    logged = load_request_log(spark, log.service, log.interval, log.directory)
    if logged is None:
        raise NothingToCheckError(f"no request of {log.service} was logged in {log.interval}")
    return logged


def _selected(features: list[str] | None, views: list[str] | None) -> dict[str, list[Feature]]:
    if features:
        by_view = REGISTRY.resolve(features)
        return {
            view: [f for f in REGISTRY.view(view).features if f.name in names]
            for view, names in by_view.items()
        }
    return {v.name: list(v.features) for v in REGISTRY.select_views(views)}


# An interval of the feature tables, a table of feature columns, or a served log.
Side = Interval | str | ServedLog


def drift(
    spark: SparkSession,
    *,
    current: Side,
    reference: Side,
    features: list[str] | None = None,
    views: list[str] | None = None,
    measured_at: datetime | None = None,
) -> DriftReport:
    """Measure, record and report the drift of the selected features (every feature of
    `views`, or the `view:feature` references in `features`; default: all views).
    Compare like with like: two intervals, or two sets of rows at request or label times
    (training sets, served logs)."""
    selected = _selected(features, views)
    tables = {
        side: served_values(spark, where)
        if isinstance(where, ServedLog)
        else read_table(spark, where)
        for side, where in (("reference", reference), ("current", current))
        if not isinstance(where, Interval)
    }
    present = {
        name: [f for f in found if all(f.name in t.columns for t in tables.values())]
        for name, found in selected.items()
    }
    present = {name: found for name, found in present.items() if found}
    drifts: dict[str, list[FeatureDrift]] = {}
    if len(tables) == 2:
        # Two tables of feature columns: every feature in one set of passes.
        everything = [f for found in present.values() for f in found]
        names = [f.name for f in everything]
        measured = measure_drift(
            tables["reference"].select(*names), tables["current"].select(*names), everything
        )
        for name, found in present.items():
            mine = {f.name for f in found}
            drifts[name] = [d for d in measured if d.feature in mine]
    for view_name, view_features in present.items():
        if view_name in drifts:
            continue
        view = REGISTRY.view(view_name)
        names = [f.name for f in view_features]
        ref = tables.get("reference")
        cur = tables.get("current")
        if ref is None:
            assert isinstance(reference, Interval)
            ref = feature_values(spark, view, reference)
        if cur is None:
            assert isinstance(current, Interval)
            cur = feature_values(spark, view, current)
        drifts[view_name] = measure_drift(ref.select(*names), cur.select(*names), view_features)
    if not drifts:
        raise PlatformError(
            f"no selected feature is in both {reference} and {current} (is one a training set "
            "of other features?)"
        )
    run_id = uuid.uuid4().hex[:12]
    moment = measured_at or datetime.now(UTC)
    report_path = (
        settings().data_dir / "reports" / "drift" / f"{moment:%Y%m%dT%H%M%S}-{run_id}.html"
    )
    result = DriftReport(run_id, str(reference), str(current), drifts, report_path)
    _append_metrics(spark, result, moment)
    write_report(result.report_path, result.reference, result.current, result.verdict, drifts)
    return result


def _append_metrics(spark: SparkSession, report: DriftReport, moment: datetime) -> None:
    rows = []
    for view, d in report.features:
        rows.append(
            (
                report.run_id,
                moment.astimezone(UTC),
                report.reference,
                report.current,
                view,
                d.feature,
                d.value_type,
                d.score_name,
                d.score,
                d.psi,
                d.js_distance,
                d.ks_statistic,
                d.wasserstein_normed,
                d.chi_squared_p_value,
                d.reference_null_rate,
                d.current_null_rate,
                d.reference_mean,
                d.current_mean,
                d.reference_quantiles.get("p50"),
                d.current_quantiles.get("p50"),
                d.reference_quantiles.get("p90"),
                d.current_quantiles.get("p90"),
                d.reference_rows,
                d.current_rows,
                d.verdict.value,
                "; ".join(d.reasons),
            )
        )
    table = metrics_table()
    ensure_database(spark, table.split(".")[0])
    frame = spark.createDataFrame(rows, METRICS_SCHEMA)
    frame.write.format("delta").mode("append").saveAsTable(table)
