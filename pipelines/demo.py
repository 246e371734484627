"""`feature-platform demo`: the whole platform end to end on the embedded defaults.

Generates a few days of events, ingests them, computes every feature view, validates,
applies the Feast repo, materializes the last day to Redis, reads online features,
checks online/offline consistency, builds a click-through training set and trains a
baseline on it, then runs the hourly DAG for the last hour through Airflow.
Every step is one of the platform's own jobs; the demo only sequences and reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import typer

from features import REGISTRY, AttributeView

DEMO_START = datetime(2026, 11, 1, tzinfo=UTC)
DEMO_DAYS = 5
DEMO_SCALE = 0.3

T = TypeVar("T")


def _say(message: str = "") -> None:
    typer.echo(message)


@contextmanager
def _step(title: str) -> Iterator[None]:
    _say(f"\n== {title}")
    started = time.perf_counter()
    yield
    _say(f"   ({time.perf_counter() - started:.1f} s)")


def _timed(title: str, func: Callable[[], T]) -> T:
    with _step(title):
        return func()


def run_demo(
    *, days: int = DEMO_DAYS, scale: float = DEMO_SCALE, with_airflow: bool = True
) -> None:
    from pyspark.sql import functions as F

    from pipelines.compute import backfill
    from pipelines.config import settings
    from pipelines.feast_repo import feast_objects
    from pipelines.generate import generate
    from pipelines.ingest import ingest
    from pipelines.modeling import train_logistic_baseline
    from pipelines.quality import validate
    from pipelines.redis_server import ensure_redis
    from pipelines.serving.materialize import materialize
    from pipelines.serving.online import get_online_features_df
    from pipelines.serving.store import feature_store
    from pipelines.spark import get_spark
    from pipelines.training import build_training_set, ctr_labels

    conf = settings()
    start = DEMO_START
    end = start + timedelta(days=days)
    last_day = end - timedelta(days=1)
    _say(f"data directory: {conf.data_dir}")
    _say(f"period: [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) UTC, scale {scale}")

    redis_url = _timed("redis", ensure_redis)
    _say(f"   redis at {redis_url}")
    spark = _timed("spark", lambda: get_spark("feature-platform-demo"))

    with _step("generate raw events (raw.*)"):
        counts = generate(spark, start=start, end=end, scale=scale)
        for table, rows in counts.items():
            _say(f"   raw.{table:<18} {rows:>10,} rows")

    with _step("ingest raw -> clean (malformed rows -> clean.quarantine)"):
        report = ingest(spark, start=start, end=end)
        for line in report.lines():
            _say(f"   {line}")

    with _step("compute feature views (features.*), day by day"):
        written = backfill(spark, start=start, end=end, chunk=timedelta(days=1), force=True)
        _say(f"   {'table':<28} {'rows':>9} {'entities':>9}  event_timestamp range")
        for view in REGISTRY.views:
            stats = (
                spark.table(view.table)
                .agg(
                    F.count("*").alias("rows"),
                    F.countDistinct(view.entity.join_key).alias("entities"),
                    # As text in the session time zone (UTC), not the machine's.
                    F.min("event_timestamp").cast("string").alias("first"),
                    F.max("event_timestamp").cast("string").alias("last"),
                )
                .collect()[0]
            )
            _say(
                f"   {view.table:<28} {stats['rows']:>9,} {stats['entities']:>9,}  "
                f"{stats['first']} .. {stats['last']}"
            )
        _say(f"   rows written this run: {sum(written.values()):,}")

    with _step(f"validate the last day with Great Expectations [{last_day:%Y-%m-%d}]"):
        verdict = validate(spark, start=last_day, end=end)
        _say("   " + verdict.render().replace("\n", "\n   "))

    with _step("feast apply (objects built from features/)"):
        store = feature_store(redis_url)
        objects = list(feast_objects().values())
        store.apply(objects)
        _say(f"   applied {len(objects)} objects to project {store.project}")

    # Attribute views change rarely and have no TTL: their latest versions may be older
    # than the last day, so they are loaded from the start (as a first deployment would).
    windowed = [v.name for v in REGISTRY.views if not isinstance(v, AttributeView)]
    attributes = [v.name for v in REGISTRY.views if isinstance(v, AttributeView)]
    with _step(
        f"materialize to Redis: windowed views [{last_day:%Y-%m-%d}, {end:%Y-%m-%d}), "
        f"attribute views [{start:%Y-%m-%d}, {end:%Y-%m-%d})"
    ):
        for views, since in ((attributes, start), (windowed, last_day)):
            mat = materialize(spark, start=since, end=end, views=views, redis_url=redis_url)
            _say("   " + mat.summary().replace("\n", "\n   "))

    with _step("online features (ctr_model) for a few members and ads"):
        examples = _example_entities(spark)
        frame = get_online_features_df("ctr_model", examples, redis_url=redis_url)
        with_pd_options(lambda: _say(frame.head(5).T.to_string()))

    _consistency(spark, end)

    with _step("click-through training set and a baseline model"):
        train_days = max(1, days - 2)
        train_start = end - timedelta(days=train_days + 1)
        train_labels = ctr_labels(spark, start=train_start, end=last_day)
        test_labels = ctr_labels(spark, start=last_day, end=end)
        output = conf.data_dir / "training_sets" / "ctr" / f"{last_day:%Y-%m-%d}"
        test_set = build_training_set(spark, test_labels, "ctr_model", output=str(output))
        train_set = build_training_set(spark, train_labels, "ctr_model")
        size = test_set.agg(F.count("*").alias("n"), F.avg("clicked").alias("rate")).collect()[0]
        _say(
            f"   training set for {last_day:%Y-%m-%d}: {size['n']:,} rows, label rate {size['rate']:.3%}"
        )
        _say(f"   written to {output} (with the Delta versions it read)")
        names = [n for view_names in REGISTRY.resolve("ctr_model").values() for n in view_names]
        result = train_logistic_baseline(train_set, test_set, label="clicked", features=names)
        _say(
            f"   logistic regression: trained on {result.train_rows:,} rows "
            f"[{train_start:%Y-%m-%d}, {last_day:%Y-%m-%d}), "
            f"test AUC {result.auc:.3f} on {result.test_rows:,} rows of {last_day:%Y-%m-%d} "
            "(a constant predictor scores 0.500)"
        )

    if with_airflow:
        _airflow(end)

    _say("\nDone. Explore the tables with:")
    _say("   source .venv/bin/activate   # sets SPARK_CONF_DIR=spark_conf")
    _say("   spark-sql -e 'SHOW TABLES IN features'")
    _say(f"Reports: {conf.reports_dir}")


def with_pd_options(func: Callable[[], Any]) -> Any:
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.max_rows", 80):
        return func()


def _example_entities(spark: Any) -> list[dict[str, Any]]:
    """The busiest member and ads of the last impressions: entities with values to show."""
    from pyspark.sql import functions as F

    rows = (
        spark.table("clean.ad_impressions")
        .groupBy("member_id", "ad_id")
        .agg(F.max("event_timestamp").alias("last_seen"))
        .orderBy(F.desc("last_seen"), "member_id", "ad_id")
        .limit(3)
        .collect()
    )
    examples = [{"member_id": int(r["member_id"]), "ad_id": int(r["ad_id"])} for r in rows]
    examples.append({"member_id": -1, "ad_id": -1})  # never materialized: nulls, not errors
    return examples


def _consistency(spark: Any, as_of: datetime) -> None:
    try:
        from pipelines.quality.consistency import check_consistency
    except ImportError:
        return
    with _step(f"online/offline consistency as of {as_of:%Y-%m-%d %H:%M}"):
        report = check_consistency(spark, as_of=as_of)
        for line in report.lines():
            _say(f"   {line}")


def _airflow(end: datetime) -> None:
    from pipelines.airflow_local import run_dag_once

    interval_start = end - timedelta(hours=1)
    with _step(
        f"Airflow: feature_pipeline for [{interval_start:%H:%M}, {end:%H:%M}) via dag.test()"
    ):
        states = run_dag_once("feature_pipeline", interval_start, end, retries=0)
        for task_id, state in states.items():
            _say(f"   {task_id:<14} {state}")
