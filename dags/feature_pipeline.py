"""
### feature_pipeline

Hourly, for the run's data interval `[data_interval_start, data_interval_end)`:

0. **stream_lag**: where a streaming ingest lands the topics, fail while it is further behind than its
   declared bound (`features.monitoring.STREAM_LAG_ALERT`), so no hour is ingested half landed;
1. **ingest** raw events that arrived in the interval into the clean tables (malformed rows to `clean.quarantine`);
2. **compute** the feature versions that became knowable in the interval: every row as of the interval's end,
   and new versions of earlier rows that late events changed (Delta `replaceWhere`: reruns are idempotent);
3. **validate** those versions and the clean rows with Great Expectations (a failure stops the run here);
4. **wait_for_publication** until `data_interval_end` + the views' declared serving lag: values go online
   exactly when training sets "as served" say they did (the sensor waits outside the `spark` pool);
5. **materialize** the entities whose current values changed to Redis in Feast's layout (newer wins);
6. **consistency**: sample entities, compare Redis (through Feast) with the Delta tables, fail on skew;
7. **replay** the previous hour's logged requests through the training-set builder in serving mode
   (skipped when nothing was logged), fail when a training row differs from what was served.

Every task calls `pipelines.tasks`; nothing here reads data or configuration at parse time (the
declarations in `features/` are inert data). Spark tasks share the `spark` pool (one slot by default:
the embedded metastore admits one JVM). Set `FEATURE_PLATFORM_TASK_RUNNER=spark-submit` and
`FEATURE_PLATFORM_SPARK_MASTER=spark://...` to run the same tasks with `spark-submit` against a cluster.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.standard.sensors.date_time import DateTimeSensor
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException
from airflow.timetables.interval import CronDataIntervalTimetable

from features import REGISTRY

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


def publication_groups() -> dict[timedelta, list[str]]:
    """The views by declared serving lag: each group goes online at its own time."""
    groups: dict[timedelta, list[str]] = {}
    for view in REGISTRY.views:
        groups.setdefault(view.serving_lag, []).append(view.name)
    return dict(sorted(groups.items()))


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
    def stream_lag() -> dict:
        from pipelines import tasks

        return tasks.check_stream_lag()

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
    def materialize(views=None, data_interval_start=None, data_interval_end=None) -> dict:
        from pipelines import tasks

        return tasks.run("materialize", data_interval_start, data_interval_end, views=views)

    @task
    def consistency(data_interval_start=None, data_interval_end=None) -> dict:
        from pipelines import tasks

        return tasks.run("consistency", data_interval_start, data_interval_end)

    @task
    def replay(data_interval_start=None, data_interval_end=None) -> dict:
        from pipelines import tasks

        result = tasks.run("replay", data_interval_start, data_interval_end)
        if "skipped" in result:
            raise AirflowSkipException(result["skipped"])
        return result

    validated = stream_lag() >> ingest() >> compute() >> validate()
    checked = consistency()
    groups = publication_groups()
    for lag, views in groups.items():
        suffix = "" if len(groups) == 1 else f"_{int(lag.total_seconds() // 60)}min"
        wait = DateTimeSensor(
            task_id=f"wait_for_publication{suffix}",
            target_time=f"{{{{ data_interval_end + macros.timedelta(seconds={int(lag.total_seconds())}) }}}}",
            mode="reschedule",
            poke_interval=30,
            timeout=3600,
            pool="default_pool",
        )
        published = materialize.override(task_id=f"materialize{suffix}")(
            views=None if len(groups) == 1 else views
        )
        validated >> wait >> published >> checked
    replay()


feature_pipeline()
