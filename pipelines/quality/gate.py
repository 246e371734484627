"""The data-quality gate: validate one interval of the feature and clean event tables.

Each table is read once, filtered to the interval (feature tables to the versions a run
over it writes, created in `(start, end]`; clean tables to the rows that arrived in it,
by ingestion_timestamp), and checked by the suite its declarations imply
(pipelines.quality.suites). A DAG runs this between computing features and writing them
to Redis, and stops when anything fails.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from features import REGISTRY, AnyView, EventSource, FeatureView
from pipelines.config import settings
from pipelines.delta_io import require_table, rows_in
from pipelines.errors import PlatformError
from pipelines.feature_tables import versions_learned_in
from pipelines.interval import Interval
from pipelines.quality import suites
from pipelines.quality.report import TableResult, ValidationReport
from pipelines.quality.runner import QualityRunner

TimeLike = str | datetime | date


def data_docs_dir() -> Path:
    return settings().reports_dir / "data_docs"


def validate(
    spark: SparkSession,
    *,
    start: TimeLike,
    end: TimeLike,
    views: Sequence[str] | None = None,
    tables: Sequence[str] | None = None,
    policy: suites.QualityPolicy = suites.DEFAULT_POLICY,
    docs_dir: Path | None = None,
) -> ValidationReport:
    """Validate `[start, end)` of the selected feature views and clean event tables.

    `views` are feature view names, `tables` clean event tables (`clean.<source>`).
    Without either, everything is validated; with one of them, only what it names.
    Raises PlatformError for an unknown name or a missing table, before any check runs.
    """
    started = time.perf_counter()
    interval = Interval.parse(start, end)
    selected_views, selected_sources = _select(views, tables)
    for view in selected_views:
        require_table(spark, view.table, hint="compute the features first")
    for source in selected_sources:
        require_table(spark, source.table, hint="ingest the events first")

    docs_dir = docs_dir or data_docs_dir()
    runner = QualityRunner(docs_dir, run_name=_run_name(interval))
    results: list[TableResult] = []
    for view in selected_views:
        results.append(_validate_view(spark, runner, view, interval, policy))
    for source in selected_sources:
        df = _clean_rows(spark, source, interval)
        expectations = suites.clean_table_suite(source, interval=interval, policy=policy)
        results.append(runner.validate(source.table, df, expectations))
    return ValidationReport(
        interval=interval,
        tables=tuple(results),
        docs_index=runner.docs_index,
        seconds=time.perf_counter() - started,
    )


def _validate_view(
    spark: SparkSession,
    runner: QualityRunner,
    view: AnyView,
    interval: Interval,
    policy: suites.QualityPolicy,
) -> TableResult:
    df = feature_rows(spark, view.table, interval)
    if not isinstance(view, FeatureView):
        return runner.validate(view.table, df, suites.attribute_view_suite(view, interval=interval))
    previous = comparison_interval(interval)
    previous_rows = feature_rows(spark, view.table, previous).count()
    notes = (
        ()
        if previous_rows
        else (f"no rows in the comparison interval {previous}: row-count band not checked",)
    )
    expectations = suites.feature_view_suite(
        view, interval=interval, previous_rows=previous_rows, policy=policy
    )
    return runner.validate(view.table, df, expectations, notes=notes)


def comparison_interval(interval: Interval) -> Interval:
    """What an interval's volume is compared with: the same hours a day earlier for
    intervals up to a day (traffic has a strong daily cycle, so the hour before says
    little), else the previous interval of the same length."""
    length = interval.end - interval.start
    back = max(length, timedelta(days=1))
    return Interval(interval.start - back, interval.end - back)


def feature_rows(spark: SparkSession, table: str, interval: Interval) -> DataFrame:
    """The versions of a feature table that a run over the interval writes."""
    return versions_learned_in(spark.table(table), interval)


def _clean_rows(spark: SparkSession, source: EventSource, interval: Interval) -> DataFrame:
    return rows_in(spark.table(source.table), source.ingestion_column, interval)


def _run_name(interval: Interval) -> str:
    return f"{interval.start:%Y%m%dT%H%M}-{interval.end:%Y%m%dT%H%M}"


def _select(
    views: Sequence[str] | None, tables: Sequence[str] | None
) -> tuple[list[AnyView], list[EventSource]]:
    sources = {s.table: s for s in suites.event_sources()}
    if views is None and tables is None:
        return list(REGISTRY.views), list(sources.values())
    selected_views = [REGISTRY.view(name) for name in views or ()]
    unknown = [t for t in tables or () if t not in sources]
    if unknown:
        raise PlatformError(
            f"unknown clean event table {unknown[0]!r} (known: {', '.join(sources)})"
        )
    return selected_views, [sources[t] for t in tables or ()]
