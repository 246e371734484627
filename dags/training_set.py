"""
### training_set

Daily, for the previous day `[data_interval_start, data_interval_end)`: builds the click-through
labels (one row per ad impression, clicked within 30 minutes) and joins them point-in-time with
the `ctr_model` feature service into a dated Delta path
`<data dir>/training_sets/ctr/<YYYY-MM-DD>`, recording the Delta versions it read so the set can
be rebuilt with `feature-platform training-set --reproduce <path>`.

Waits for nothing but its own interval; run it after `feature_pipeline` has covered the day
(the labels need 30 minutes of clicks after the day ends, which the next hourly runs ingest).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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

    build_ctr_training_set()


training_set()
