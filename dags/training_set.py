"""
### training_set

Daily, for the previous day `[data_interval_start, data_interval_end)`: builds the click-through
labels (`features.labels.ctr`: one row per ad impression, clicked within 30 minutes) and joins
them with the `ctr_model` feature service as served (`Mode.SERVING`: each row holds exactly what
the online store served at the impression's time) into a dated Delta path
`<data dir>/training_sets/ctr/<YYYY-MM-DD>`, recording the Delta versions it read so the set can
be rebuilt with `feature-platform training-set --reproduce <path>`.

Then checks the day's features for drift (`feature-platform drift`): the day's training set
against the production model's (FEATURE_PLATFORM_DRIFT_REFERENCE, by default the training set of
a week before). It fails on a feature past its alert threshold, naming the features; warnings are
logged; with no reference yet it is skipped.

First waits (without holding the `spark` pool) until the labels are mature: until
`feature_pipeline` has ingested and computed the hour that ends `ctr.maturity` after the day
(the click window plus the clicks' declared lateness), so clicks that arrive late still count.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException
from airflow.timetables.interval import CronDataIntervalTimetable

from features.labels import ctr

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

    labels_mature = ExternalTaskSensor(
        task_id="wait_for_mature_labels",
        external_dag_id="feature_pipeline",
        external_task_id="compute",
        # The hourly run that ends `ctr.maturity` after this day: its logical date (the
        # start of its interval) is this run's + 1 day + maturity - 1 hour.
        execution_delta=-(timedelta(days=1) + ctr.maturity - timedelta(hours=1)),
        mode="reschedule",
        poke_interval=300,
        timeout=12 * 3600,
        pool="default_pool",
    )

    @task
    def feature_drift(data_interval_start=None, data_interval_end=None) -> dict:
        from pipelines import tasks

        result = tasks.run("drift", data_interval_start, data_interval_end)
        if "skipped" in result:
            raise AirflowSkipException(result["skipped"])
        return result

    labels_mature >> build_ctr_training_set() >> feature_drift()


training_set()
