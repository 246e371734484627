"""
### training_set

Daily, for the previous day `[data_interval_start, data_interval_end)`: builds the click-through
labels (one row per ad impression, clicked within 30 minutes) and joins them point-in-time with
the `ctr_model` feature service into a dated Delta path
`<data dir>/training_sets/ctr/<YYYY-MM-DD>`, recording the Delta versions it read so the set can
be rebuilt with `feature-platform training-set --reproduce <path>`.

First waits (without holding the `spark` pool) until `feature_pipeline` has ingested and
computed the next day's first hour: by then the day's features are computed and the clicks of
the 30 minutes after the day, which its last impressions' labels depend on, are ingested.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

default_args = {
    "owner": "ml-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "pool": "spark",
}


@dag(
    dag_id="training_set",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=True,
    max_active_runs=1,
    default_args=default_args,
    tags=["training", "spark"],
    doc_md=__doc__,
)
def training_set() -> None:
    @task
    def build_ctr_training_set(data_interval_start=None, data_interval_end=None) -> dict:
        from pipelines import tasks

        return tasks.run("training_set", data_interval_start, data_interval_end)

    next_day_first_hour = ExternalTaskSensor(
        task_id="wait_for_next_day_first_hour",
        external_dag_id="feature_pipeline",
        external_task_id="compute",
        # The hourly run starting when this day ends: logical date + 1 day.
        execution_delta=-timedelta(days=1),
        mode="reschedule",
        poke_interval=300,
        timeout=12 * 3600,
        pool="default_pool",
    )
    next_day_first_hour >> build_ctr_training_set()


training_set()
