"""Log and replay: does a training row equal what serving returned for the same request?

The online readers log a deterministic sample of served vectors
(`pipelines.serving.request_log`). `replay` loads the log of `[start, end)` into
`monitoring.served_<service>` (Delta), rebuilds every logged request with the
training-set builder at the logged request time (by default in `Mode.SERVING`, the mode
that claims to equal serving), and compares, per feature:

- `mismatches`: both sides have a value and they differ (floats beyond 1e-9 relative);
- `missing_online`: the training row has a value, serving returned none;
- `extra_online`: serving returned a value, the training row has none;
- `smape`: mean symmetric absolute percentage error over numeric values present on both
  sides (0 for identical values), as Chronon reports it.

In `Mode.REALTIME` (what the stream serves), each real-time view's features are rebuilt
at the instant logged with them, the instant the stream had written that value as of
(`pipelines.serving.direct`), since a value served at t lags t by the stream's
freshness; the report gives that age too.

The measures go to `monitoring.replay_metrics` (one row per interval, service, mode and
feature; a rerun replaces them), Great Expectations gates them (default: zero tolerance),
and Data Docs are written. Nothing is written when the interval has no logged requests
or was logged under feature definitions other than the current ones: both are one clear
error.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features import REGISTRY
from features.catalog import MONITORING, table_name
from pipelines.config import settings
from pipelines.delta_io import replace_where, rows_in
from pipelines.errors import NothingToCheckError, PlatformError
from pipelines.feature_tables import spark_type
from pipelines.interval import HOUR, Interval, floor_hour, sql_timestamp
from pipelines.quality import expectations as ex
from pipelines.quality.report import TableResult
from pipelines.quality.runner import QualityRunner
from pipelines.serving.request_log import (
    DEFINITIONS_HASH,
    REQUEST_HOUR,
    REQUEST_ID,
    REQUEST_TIME,
    definitions_hash,
    log_directory,
    service_columns,
    values_as_of_columns,
)
from pipelines.training.spec import Mode


def metrics_table() -> str:
    return table_name(MONITORING, "replay_metrics")


FLOAT_RTOL = 1e-9
_OFFLINE, _SERVED = "__offline", "__served"

METRICS_SCHEMA = T.StructType(
    [
        T.StructField("interval_start", T.TimestampType()),
        T.StructField("interval_end", T.TimestampType()),
        T.StructField("service", T.StringType()),
        T.StructField("mode", T.StringType()),
        T.StructField("feature", T.StringType()),
        T.StructField("requests", T.LongType()),
        T.StructField("mismatches", T.LongType()),
        T.StructField("missing_online", T.LongType()),
        T.StructField("extra_online", T.LongType()),
        T.StructField("mismatch_ratio", T.DoubleType()),
        T.StructField("missing_online_ratio", T.DoubleType()),
        T.StructField("extra_online_ratio", T.DoubleType()),
        T.StructField("smape", T.DoubleType()),
        T.StructField("example_request", T.StringType()),
    ]
)


class ReplayError(PlatformError):
    pass


class NothingLoggedError(NothingToCheckError):
    """No request of the selected services was logged in the interval."""


def served_table(service: str) -> str:
    return table_name(MONITORING, f"served_{service}")


@dataclass(frozen=True)
class FeatureReplay:
    service: str
    feature: str
    requests: int
    mismatches: int
    missing_online: int
    extra_online: int
    smape: float
    example_request: str | None

    @property
    def differing(self) -> int:
        return self.mismatches + self.missing_online + self.extra_online

    @property
    def differing_ratio(self) -> float:
        return self.differing / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class ReplayReport:
    interval: Interval
    mode: Mode
    requests: dict[str, int]  # per service
    features: tuple[FeatureReplay, ...]
    result: TableResult
    docs_index: Path
    seconds: float
    # Mode.REALTIME: per service, the median and greatest age of the served real-time
    # values at their requests (None: no stream had written them).
    values_age: dict[str, tuple[float, float] | None] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.result.success

    @property
    def differing_rows(self) -> int:
        return sum(f.differing for f in self.features)

    def rows_differing_ratio(self) -> float:
        """Share of replayed (request, feature) values that differ."""
        total = sum(f.requests for f in self.features)
        return self.differing_rows / total if total else 0.0

    def lines(self) -> list[str]:
        verdict = "PASS" if self.success else "FAIL"
        requests = ", ".join(f"{n} {service}" for service, n in self.requests.items())
        bad = [f for f in self.features if f.differing]
        out = [
            f"{verdict}  replay of {self.interval} in {self.mode.value} mode: {requests} "
            f"requests, {len(bad)} of {len(self.features)} features differ "
            f"({self.rows_differing_ratio():.2%} of values), {self.seconds:.1f} s"
        ]
        for service, age in self.values_age.items():
            out.append(
                f"  {service}: real-time values were served {age[0]:.1f} s old at the median "
                f"(at most {age[1]:.1f} s), each rebuilt at the instant it was as of"
                if age
                else f"  {service}: no fresh values were served (no stream wrote them)"
            )
        for f in sorted(bad, key=lambda f: -f.differing_ratio):
            out.append(
                f"  x {f.service}:{f.feature}: {f.differing_ratio:.1%} of requests differ "
                f"({f.mismatches} mismatched, {f.missing_online} missing online, "
                f"{f.extra_online} extra online; smape {f.smape:.3g})"
                + (f", e.g. request {f.example_request}" if f.example_request else "")
            )
        out.append(f"  data docs: {self.docs_index}")
        return out


def load_request_log(
    spark: SparkSession, service: str, interval: Interval, directory: Path | None = None
) -> DataFrame | None:
    """The landed log files of the interval's hours (typed from the declarations), checked
    to be of the current definitions; None when nothing was logged."""
    folder = log_directory(service, directory)
    last = floor_hour(interval.end - timedelta(microseconds=1))
    hours = [c.start for c in Interval(floor_hour(interval.start), last + HOUR).chunks(HOUR)]
    paths = [folder / f"{REQUEST_HOUR}={hour:%Y-%m-%dT%H}" for hour in hours]
    present = [str(p) for p in paths if p.is_dir() and any(p.glob("*.parquet"))]
    if not present:
        return None
    keys, features = service_columns(service)
    schema = T.StructType(
        [
            T.StructField(REQUEST_ID, T.StringType()),
            T.StructField(REQUEST_TIME, T.TimestampType()),
            *[T.StructField(name, spark_type(kind)) for name, kind in [*keys, *features]],
            *[
                T.StructField(column, T.TimestampType())
                for column, _ in values_as_of_columns(service)
            ],
            T.StructField(DEFINITIONS_HASH, T.StringType()),
        ]
    )
    logged = (
        spark.read.schema(schema)
        .parquet(*present)
        .transform(lambda requests: rows_in(requests, REQUEST_TIME, interval))
        .withColumn("request_date", F.to_date(REQUEST_TIME))
    )
    expected = definitions_hash(service)
    other = [
        r[DEFINITIONS_HASH]
        for r in logged.select(DEFINITIONS_HASH).distinct().collect()
        if r[DEFINITIONS_HASH] != expected
    ]
    if other:
        raise ReplayError(
            f"the {service} requests of {interval} were logged under other feature definitions "
            f"(hash {other[0][:12]}, now {expected[:12]}): replay them with the code that served them"
        )
    return logged


def replay(
    spark: SparkSession,
    *,
    start: str | datetime | date,
    end: str | datetime | date,
    services: Sequence[str] | None = None,
    mode: Mode | str = Mode.SERVING,
    tolerance: float = 0.0,
    log_root: Path | None = None,
) -> ReplayReport:
    """Replay the requests logged in `[start, end)` (see the module docstring)."""
    started = time.perf_counter()
    interval = Interval.parse(start, end)
    mode = Mode(mode)
    names = list(services) if services else [s.name for s in REGISTRY.services]
    for name in names:
        REGISTRY.service(name)
    logs: dict[str, DataFrame] = {}
    for name in names:
        landed = load_request_log(spark, name, interval, log_root)
        if landed is not None:
            logs[name] = landed
    if not logs:
        raise NothingLoggedError(
            f"no requests were logged for {', '.join(names)} in {interval} "
            f"(log directory {log_directory(names[0], log_root).parent})"
        )
    requests: dict[str, int] = {}
    measures: list[FeatureReplay] = []
    ages: dict[str, tuple[float, float] | None] = {}
    for name, logged in logs.items():
        replace_where(
            logged,
            served_table(name),
            predicate=interval.sql(REQUEST_TIME),
            partition_by=["request_date"],
            merge_schema=True,  # a view declared real-time adds a column to its log
        )
        served = rows_in(
            spark.table(served_table(name)), REQUEST_TIME, interval, partition_column="request_date"
        )
        _, features = service_columns(name)
        at_instants = values_as_of_columns(name) if mode is Mode.REALTIME else []
        offline = _rebuilt(spark, served, name, mode, at_instants).select(
            REQUEST_ID, *[F.col(f).alias(f"{f}{_OFFLINE}") for f, _ in features]
        )
        if at_instants:
            ages[name] = _values_age(served, [column for column, _ in at_instants])
        both = served.select(
            REQUEST_ID, *[F.col(f).alias(f"{f}{_SERVED}") for f, _ in features]
        ).join(offline, REQUEST_ID)
        requests[name], found = _compare(both, [f for f, _ in features])
        measures += [FeatureReplay(name, *values) for values in found]

    metrics = _metrics_frame(spark, interval, mode, measures)
    runner = QualityRunner(
        settings().reports_dir / "data_docs",
        run_name=f"replay-{mode.value}-{interval.start:%Y%m%dT%H%M}-{interval.end:%Y%m%dT%H%M}",
    )
    result = runner.validate("online_offline_replay", metrics, _suite(tolerance))
    services_sql = ", ".join(f"'{n}'" for n in logs)
    replace_where(
        metrics,
        metrics_table(),
        predicate=(
            f"interval_start = {sql_timestamp(interval.start)} "
            f"AND interval_end = {sql_timestamp(interval.end)} "
            f"AND mode = '{mode.value}' AND service IN ({services_sql})"
        ),
    )
    return ReplayReport(
        interval=interval,
        mode=mode,
        requests=requests,
        features=tuple(measures),
        result=result,
        docs_index=runner.docs_index,
        seconds=time.perf_counter() - started,
        values_age=ages,
    )


def _rebuilt(
    spark: SparkSession,
    served: DataFrame,
    service: str,
    mode: Mode,
    at_instants: list[tuple[str, str]],
) -> DataFrame:
    """The training rows of the logged requests, by request id: at the request time, and
    each view of `at_instants` ((column, view) pairs) at the instant logged in its column,
    the instant its served value was as of (the request time where none was logged)."""
    from pipelines.training import build_training_set

    keys = [k for k, _ in service_columns(service)[0]]
    resolved = REGISTRY.resolve(service)
    by_instant = {view for _, view in at_instants}
    rest = [f"{v}:{f}" for v, names in resolved.items() if v not in by_instant for f in names]
    groups = [(F.col(REQUEST_TIME), rest)] if rest else []
    groups += [
        (F.coalesce(column, REQUEST_TIME), [f"{view}:{f}" for f in resolved[view]])
        for column, view in at_instants
    ]
    rebuilt: DataFrame | None = None
    for label_time, refs in groups:
        labels = served.select(REQUEST_ID, label_time.alias(REQUEST_TIME), *keys)
        part = build_training_set(
            spark, labels, refs, timestamp_column=REQUEST_TIME, mode=mode
        ).select(REQUEST_ID, *[ref.split(":", 1)[1] for ref in refs])
        rebuilt = part if rebuilt is None else rebuilt.join(part, REQUEST_ID)
    assert rebuilt is not None
    return rebuilt


def _values_age(served: DataFrame, columns: list[str]) -> tuple[float, float] | None:
    """Median and greatest seconds from the instant a served real-time value was as of to
    its request (the stream's freshness as the requests met it); None: none logged."""
    ages = served.select(
        F.explode(
            F.array(*[(F.unix_micros(REQUEST_TIME) - F.unix_micros(c)) / 1e6 for c in columns])
        ).alias("age")
    ).where(F.col("age").isNotNull())
    row = ages.agg(F.percentile_approx("age", 0.5).alias("p50"), F.max("age").alias("max")).first()
    if row is None or row["p50"] is None:
        return None
    return float(row["p50"]), float(row["max"])


def _compare(both: DataFrame, features: list[str]) -> tuple[int, list[tuple[Any, ...]]]:
    """Requests and, per feature, (feature, requests, mismatches, missing_online,
    extra_online, smape, example request), from one aggregate over the joined rows."""
    aggregates: list[Column] = [F.count(F.lit(1)).alias("requests")]
    for feature in features:
        served, offline = F.col(f"{feature}{_SERVED}"), F.col(f"{feature}{_OFFLINE}")
        if isinstance(both.schema[f"{feature}{_SERVED}"].dataType, T.DoubleType):
            # Feast stores NaN as an empty value: it is served as null.
            offline = F.when(~F.isnan(offline), offline)
            scale = F.greatest(F.abs(served), F.abs(offline))
            differ = F.abs(served - offline) > F.lit(FLOAT_RTOL) * scale
        else:
            differ = served != offline
        mismatch = served.isNotNull() & offline.isNotNull() & differ
        missing = served.isNull() & offline.isNotNull()
        extra = served.isNotNull() & offline.isNull()
        if isinstance(both.schema[f"{feature}{_SERVED}"].dataType, T.NumericType):
            magnitude = F.abs(served) + F.abs(offline)
            smape = F.avg(
                F.when(magnitude > 0, 2 * F.abs(served - offline) / magnitude).otherwise(
                    F.when(served.isNotNull() & offline.isNotNull(), F.lit(0.0))
                )
            )
        else:
            smape = F.lit(None).cast("double")
        example = F.min(F.when(mismatch | missing | extra, F.col(REQUEST_ID)))
        aggregates += [
            F.count_if(mismatch).alias(f"{feature}:mismatches"),
            F.count_if(missing).alias(f"{feature}:missing"),
            F.count_if(extra).alias(f"{feature}:extra"),
            F.coalesce(smape, F.lit(0.0)).alias(f"{feature}:smape"),
            example.alias(f"{feature}:example"),
        ]
    row = both.agg(*aggregates).first()
    assert row is not None
    requests = int(row["requests"])
    return requests, [
        (
            feature,
            requests,
            int(row[f"{feature}:mismatches"]),
            int(row[f"{feature}:missing"]),
            int(row[f"{feature}:extra"]),
            float(row[f"{feature}:smape"]),
            row[f"{feature}:example"],
        )
        for feature in features
    ]


def _metrics_frame(
    spark: SparkSession, interval: Interval, mode: Mode, measures: list[FeatureReplay]
) -> DataFrame:
    def ratio(n: int, total: int) -> float:
        return n / total if total else 0.0

    rows = [
        (
            interval.start,
            interval.end,
            m.service,
            mode.value,
            m.feature,
            m.requests,
            m.mismatches,
            m.missing_online,
            m.extra_online,
            ratio(m.mismatches, m.requests),
            ratio(m.missing_online, m.requests),
            ratio(m.extra_online, m.requests),
            m.smape,
            m.example_request,
        )
        for m in measures
    ]
    return spark.createDataFrame(rows, METRICS_SCHEMA)


def _suite(tolerance: float) -> list[Any]:
    ident = ["service", "feature", "requests", "mismatches", "missing_online", "extra_online"]
    return ex.ratios_at_most(
        tolerance,
        [
            ("mismatch_ratio", "a training row must equal what serving returned"),
            ("missing_online_ratio", "serving must have had every value training uses"),
            ("extra_online_ratio", "serving must not have had values training lacks"),
        ],
        about="replayed requests vs the training-set builder",
        ident=[*ident, "example_request"],
    )
