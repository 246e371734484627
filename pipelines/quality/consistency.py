"""Online/offline consistency: does Redis (read through Feast) hold what the Delta tables say?

For each feature view, a deterministic sample of entities (the `sample` keys with the
smallest xxhash64 of their join key: the same entities are followed from run to run)
is read from the online store through Feast, as of `as_of`, and compared with the
values expected from the Delta feature tables as of `as_of` (or as of the end of the
newest materialized interval, if later: Redis then rightly holds newer values): the
entity's current row as known then, i.e. of the versions with `created_timestamp <=
as_of`, the one with the greatest `event_timestamp` (ties: greatest
`created_timestamp`), ignored when older than the view's TTL. That is exactly what
materializing every hour up to `as_of` must leave online.

Only entities whose expected version became known in the part of time the online store
claims to cover are checked: from the start of the view's first materialized interval
(Feast's registry records them) up to `as_of`. A gap (materialization behind the offline
table, or for an older interval) therefore shows as values missing online or stale, and
fails. The request-level check, "does a training row equal what serving returned", is
the replay of logged requests (`pipelines.quality.replay`).

Measures per feature: compared entities, mismatch ratio (values that differ: ints and
strings exactly, floats beyond 1e-9 relative), missing-online ratio (offline has a value,
online none), and mean/max relative difference. Great Expectations decides pass/fail
on them (default: zero tolerance), and the measures are appended to
`monitoring.consistency_metrics`, one row per feature and `as_of` (reruns replace).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features import REGISTRY, AnyView
from features.catalog import MONITORING, table_name
from pipelines.config import settings
from pipelines.delta_io import replace_where, require_table
from pipelines.errors import PlatformError
from pipelines.feature_tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from pipelines.interval import parse_time, sql_timestamp, utc_literal
from pipelines.quality import expectations as ex
from pipelines.quality.report import TableResult
from pipelines.quality.runner import QualityRunner


def metrics_table() -> str:
    return table_name(MONITORING, "consistency_metrics")


DEFAULT_SAMPLE = 1000
FLOAT_RTOL = 1e-9
# Feast reads entities in batches; bounded so one request stays small.
ONLINE_BATCH = 500

METRICS_SCHEMA = T.StructType(
    [
        T.StructField("as_of", T.TimestampType()),
        T.StructField("view", T.StringType()),
        T.StructField("feature", T.StringType()),
        T.StructField("compared", T.LongType()),
        T.StructField("mismatches", T.LongType()),
        T.StructField("missing_online", T.LongType()),
        T.StructField("mismatch_ratio", T.DoubleType()),
        T.StructField("missing_online_ratio", T.DoubleType()),
        T.StructField("mean_rel_diff", T.DoubleType()),
        T.StructField("max_rel_diff", T.DoubleType()),
        T.StructField("example_entity", T.StringType()),
    ]
)


class ConsistencyError(PlatformError):
    pass


@dataclass(frozen=True)
class FeatureMeasure:
    view: str
    feature: str
    compared: int
    mismatches: int
    missing_online: int
    mean_rel_diff: float
    max_rel_diff: float
    example_entity: str | None

    @property
    def mismatch_ratio(self) -> float:
        return self.mismatches / self.compared if self.compared else 0.0

    @property
    def missing_online_ratio(self) -> float:
        return self.missing_online / self.compared if self.compared else 0.0


@dataclass(frozen=True)
class ConsistencyReport:
    as_of: datetime
    sampled_entities: int
    measures: tuple[FeatureMeasure, ...]
    result: TableResult
    docs_index: Path
    seconds: float
    skipped_views: tuple[str, ...] = field(default=())

    @property
    def success(self) -> bool:
        return self.result.success

    def summary(self) -> str:
        bad = [m for m in self.measures if m.mismatches or m.missing_online]
        if not bad:
            return f"{len(self.measures)} features consistent on {self.sampled_entities} entities"
        names = ", ".join(f"{m.view}:{m.feature}" for m in bad[:8])
        return f"{len(bad)} of {len(self.measures)} features differ online ({names})"

    def lines(self) -> list[str]:
        verdict = "PASS" if self.success else "FAIL"
        out = [
            f"{verdict}  online/offline consistency as of {self.as_of.isoformat()}: "
            f"{self.sampled_entities} sampled entities, {len(self.measures)} features, "
            f"{self.seconds:.1f} s"
        ]
        for m in self.measures:
            if m.mismatches or m.missing_online:
                out.append(
                    f"  x {m.view}:{m.feature}: {m.mismatches}/{m.compared} differ, "
                    f"{m.missing_online} missing online, max rel diff {m.max_rel_diff:.3g}"
                    + (f" (e.g. entity {m.example_entity})" if m.example_entity else "")
                )
        out += [
            f"  note: {v} has no materialized interval; not checked" for v in self.skipped_views
        ]
        out.append(f"  data docs: {self.docs_index}")
        return out


def check_consistency(
    spark: SparkSession,
    *,
    as_of: str | datetime | date,
    sample: int = DEFAULT_SAMPLE,
    views: Sequence[str] | None = None,
    tolerance: float = 0.0,
    redis_url: str | None = None,
    store: Any = None,
) -> ConsistencyReport:
    """Compare a deterministic sample of online values with the Delta tables as of `as_of`."""
    from pipelines.serving.online import get_online_features, online_store

    started = time.perf_counter()
    moment = parse_time(as_of)
    if sample <= 0:
        raise ConsistencyError(f"sample must be positive, got {sample}")
    selected = [REGISTRY.view(name) for name in views] if views else list(REGISTRY.views)
    store = store or online_store(redis_url)
    # The registry is cached per store; materialization intervals recorded since must count.
    store.refresh_registry()
    measures: list[FeatureMeasure] = []
    skipped: list[str] = []
    sampled = 0
    for view in selected:
        require_table(spark, view.table, "run `feature-platform compute` first")
        coverage = _coverage(store, view.name)
        if coverage is None:
            skipped.append(view.name)
            continue
        covered_from, covered_until = coverage
        # After a newer interval was materialized (a rerun or backfill of an older hour),
        # Redis rightly holds the newer values: compare with those.
        view_as_of = max(moment, covered_until)
        expected = expected_values(
            spark, view, view_as_of, covered_from=covered_from, sample=sample
        )
        if not expected:
            continue
        sampled += len(expected)
        key = view.entity.join_key
        names = [f.name for f in view.features]
        online: dict[str, list[Any]] = {name: [] for name in names}
        for offset in range(0, len(expected), ONLINE_BATCH):
            batch = expected[offset : offset + ONLINE_BATCH]
            values = get_online_features(
                [f"{view.name}:{n}" for n in names],
                [{key: row[key]} for row in batch],
                as_of=view_as_of,
                store=store,
            )
            for name in names:
                online[name].extend(values[name])
        for name in names:
            measures.append(compare_feature(view.name, name, key, expected, online[name]))
    metrics = _metrics_frame(spark, moment, measures)
    runner = QualityRunner(
        settings().reports_dir / "data_docs", run_name=f"consistency-{moment:%Y%m%dT%H%M}"
    )
    result = runner.validate("online_offline_consistency", metrics, _suite(tolerance))
    replace_where(
        metrics.select(*[f.name for f in METRICS_SCHEMA.fields]),
        metrics_table(),
        predicate=f"as_of = {sql_timestamp(moment)}",
    )
    return ConsistencyReport(
        as_of=moment,
        sampled_entities=sampled,
        measures=tuple(measures),
        result=result,
        docs_index=runner.docs_index,
        seconds=time.perf_counter() - started,
        skipped_views=tuple(skipped),
    )


def _coverage(store: Any, view_name: str) -> tuple[datetime, datetime] | None:
    """First start and last end of the intervals Feast's registry says were materialized."""
    try:
        feast_view = store.get_feature_view(view_name)
    except Exception as exc:  # Feast raises its own "not found" types
        raise ConsistencyError(
            f"feature view {view_name} is not in the Feast registry: run `feature-platform feast apply`"
        ) from exc
    intervals = list(feast_view.materialization_intervals or [])
    if not intervals:
        return None
    return (
        min(parse_time(start) for start, _ in intervals),
        max(parse_time(end) for _, end in intervals),
    )


def sample_keys(features: DataFrame, key: str, sample: int) -> DataFrame:
    """The `sample` keys with the smallest xxhash64: stable as the table grows."""
    return (
        features.select(key)
        .where(F.col(key).isNotNull())
        .distinct()
        .withColumn("_sample_hash", F.xxhash64(F.col(key)))
        .orderBy("_sample_hash", key)
        .limit(sample)
        .select(key)
    )


def expected_values(
    spark: SparkSession,
    view: AnyView,
    as_of: datetime,
    *,
    covered_from: datetime,
    sample: int,
) -> list[dict[str, Any]]:
    """Per sampled entity, the feature row materialization up to `as_of` must leave online."""
    key = view.entity.join_key
    table = spark.table(view.table)
    before = table.where(F.col(CREATED_TIMESTAMP) <= utc_literal(as_of))
    ttl = view.effective_ttl
    if ttl.total_seconds() > 0:
        lower = as_of - ttl
        before = before.where(F.col(EVENT_TIMESTAMP) >= utc_literal(lower))
    keys = sample_keys(before, key, sample)
    ranked = (
        before.join(F.broadcast(keys), key)
        .withColumn(
            "_rank",
            F.row_number().over(
                Window.partitionBy(key).orderBy(F.desc(EVENT_TIMESTAMP), F.desc(CREATED_TIMESTAMP))
            ),
        )
        .where("_rank = 1")
        .where(F.col(CREATED_TIMESTAMP) > utc_literal(covered_from))
        .select(key, *[f.name for f in view.features])
        .orderBy(key)
    )
    # A bounded sample (at most `sample` rows) is compared on the driver by design.
    return [row.asDict() for row in ranked.collect()]


def compare_feature(
    view: str, feature: str, key: str, expected: list[dict[str, Any]], online: list[Any]
) -> FeatureMeasure:
    mismatches = missing = 0
    rel_diffs: list[float] = []
    example: str | None = None
    for row, actual in zip(expected, online, strict=True):
        wanted = row[feature]
        if isinstance(wanted, float) and math.isnan(wanted):
            wanted = None  # Feast stores NaN as an empty value: it reads back as null
        if wanted is None and actual is None:
            continue
        if actual is None:
            missing += 1
            example = example or str(row[key])
            continue
        same, rel = _same(wanted, actual)
        if rel is not None:
            rel_diffs.append(rel)
        if not same:
            mismatches += 1
            example = example or str(row[key])
    return FeatureMeasure(
        view=view,
        feature=feature,
        compared=len(expected),
        mismatches=mismatches,
        missing_online=missing,
        mean_rel_diff=sum(rel_diffs) / len(rel_diffs) if rel_diffs else 0.0,
        max_rel_diff=max(rel_diffs, default=0.0),
        example_entity=example,
    )


def _same(wanted: Any, actual: Any) -> tuple[bool, float | None]:
    """Equal under the platform's rule, and the relative difference for numbers."""
    if wanted is None:
        return False, None
    if isinstance(wanted, float) or isinstance(actual, float):
        a, b = float(wanted), float(actual)
        if math.isnan(a) and math.isnan(b):
            return True, 0.0
        scale = max(abs(a), abs(b))
        rel = 0.0 if scale == 0 else abs(a - b) / scale
        return rel <= FLOAT_RTOL, rel
    if isinstance(wanted, int) and isinstance(actual, int):
        scale = max(abs(wanted), abs(actual))
        rel = 0.0 if scale == 0 else abs(wanted - actual) / scale
        return wanted == actual, rel
    if isinstance(wanted, date) and isinstance(actual, datetime):
        # Feast has no date type: dates travel as midnight UTC timestamps.
        moment = actual.astimezone(UTC)
        return moment.date() == wanted and moment.time() == datetime.min.time(), None
    return wanted == actual, None


def _metrics_frame(
    spark: SparkSession, as_of: datetime, measures: list[FeatureMeasure]
) -> DataFrame:
    rows = [
        (
            parse_time(as_of),
            m.view,
            m.feature,
            m.compared,
            m.mismatches,
            m.missing_online,
            m.mismatch_ratio,
            m.missing_online_ratio,
            m.mean_rel_diff,
            m.max_rel_diff,
            m.example_entity,
        )
        for m in measures
    ]
    return spark.createDataFrame(rows, METRICS_SCHEMA)


def _suite(tolerance: float) -> list[Any]:
    return ex.ratios_at_most(
        tolerance,
        [
            ("mismatch_ratio", "online values must equal the Delta tables"),
            ("missing_online_ratio", "materialized entities must be online"),
        ],
        about="online vs offline",
        ident=["view", "feature", "compared", "mismatches", "missing_online", "example_entity"],
    )
