"""
### feature_pipeline

Hourly, for the run's data interval `[data_interval_start, data_interval_end)`:

1. **ingest** raw events that arrived in the interval into the clean tables (malformed rows to `clean.quarantine`);
2. **compute** every feature view for the hours of the interval (Delta `replaceWhere`: reruns are idempotent);
3. **validate** the clean and feature tables with Great Expectations (a failure stops the run here);
4. **materialize** the interval's latest values to Redis in Feast's layout (never older over newer);
5. **consistency**: sample entities, compare Redis (through Feast) with the Delta tables, fail on skew.

Every task calls `pipelines.tasks`; nothing here reads data or configuration at parse time.
Spark tasks share the `spark` pool (one slot by default: the embedded metastore admits one JVM).
Set `FEATURE_PLATFORM_TASK_RUNNER=spark-submit` and `FEATURE_PLATFORM_SPARK_MASTER=spark://...`
to run the same tasks with `spark-submit` against a cluster.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

SPARK_POOL = "spark"
# The first hour of the platform's data; catchup fills every hour since.
START_DATE = datetime(2026, 11, 1, tzinfo=UTC)

default_args = {
    "owner": "ml-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=15),
    "pool": SPARK_POOL,
}


@dag(
    dag_id="feature_pipeline",
    schedule=CronDataIntervalTimetable("@hourly", timezone="UTC"),
    start_date=START_DATE,
    catchup=True,
    max_active_runs=1,
    default_args=default_args,
    tags=["features", "spark", "feast", "redis"],
    doc_md=__doc__,
)
def feature_pipeline() -> None:
    @task
    def ingest(data_interval_start=None, data_interval_end=None) -> dict:
        from pipelines import tasks

        return tasks.run("ingest", data_interval_start, data_interval_end)

    @task
    def compute(data_interval_start=None, data_interval_end=None) -> dict:
        from pipelines import tasks

        return tasks.run("compute", data_interval_start, data_interval_end)

    @task
    def validate(data_interval_start=None, data_interval_end=None) -> dict:
        from pipelines import tasks

        return tasks.run("validate", data_interval_start, data_interval_end)

    @task
    def materialize(data_interval_start=None, data_interval_end=None) -> dict:
        from pipelines import tasks

        return tasks.run("materialize", data_interval_start, data_interval_end)

    @task
    def consistency(data_interval_start=None, data_interval_end=None) -> dict:
        from pipelines import tasks

        return tasks.run("consistency", data_interval_start, data_interval_end)

    ingest() >> compute() >> validate() >> materialize() >> consistency()


feature_pipeline()
