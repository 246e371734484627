"""Run the project's DAGs through Airflow itself (metadata DB, DAG parsing, task runner),
without a scheduler: `dag.test()` for one data interval, as `airflow dags test` does.

Airflow reads its configuration when first imported, so the environment is set before
any Airflow import: AIRFLOW_HOME defaults to `<data dir>/airflow` with a SQLite database.
"""

from __future__ import annotations

import os
from datetime import datetime

from pipelines.config import PROJECT_ROOT, settings
from pipelines.errors import PlatformError

SPARK_POOL = "spark"


def prepare_airflow_environment() -> str:
    """Point Airflow at the project's DAGs and a home under the data directory (if unset)."""
    home = os.environ.setdefault("AIRFLOW_HOME", str(settings().data_dir / "airflow"))
    os.makedirs(home, exist_ok=True)
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    return home


_initialized: set[str] = set()


def init_metadata_db() -> None:
    """`airflow db migrate` and the `spark` pool (one slot: one Spark job at a time)."""
    home = prepare_airflow_environment()
    if home in _initialized:
        return
    from airflow.models.pool import Pool
    from airflow.utils import db

    db.initdb()
    Pool.create_or_update_pool(
        SPARK_POOL, slots=1, description="one Spark job at a time", include_deferred=False
    )
    _initialized.add(home)


def run_dag_once(
    dag_id: str,
    start: datetime,
    end: datetime,
    *,
    retries: int | None = None,
    mark_success_pattern: str | None = None,
) -> dict[str, str]:
    """Run every task of `dag_id` for the data interval `[start, end)`; return task states.

    With Airflow 3's interval timetables a manual run's logical date is the end of its
    data interval (the run happens when the interval is over).

    `retries` overrides the tasks' retries (a demo or test should not wait for backoff);
    tasks matching `mark_success_pattern` are marked successful without running.
    Raises PlatformError when the run's interval is not `[start, end)`.
    """
    init_metadata_db()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    if bag.import_errors:
        raise PlatformError(f"DAG import errors: {bag.import_errors}")
    if dag_id not in bag.dags:
        raise PlatformError(f"unknown DAG {dag_id!r} (known: {', '.join(sorted(bag.dags))})")
    dag = bag.dags[dag_id]
    if retries is not None:
        for task in dag.tasks:
            task.retries = retries
    run = dag.test(logical_date=end, mark_success_pattern=mark_success_pattern)
    if run.data_interval_start != start or run.data_interval_end != end:
        raise PlatformError(
            f"{dag_id} ran for [{run.data_interval_start}, {run.data_interval_end}), "
            f"expected [{start}, {end})"
        )
    return task_states(dag_id, run.run_id)


def task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(TaskInstance.task_id, TaskInstance.state)
            .filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            # In the order they ran; tasks that never started last.
            .order_by(TaskInstance.start_date.is_(None), TaskInstance.start_date)
            .all()
        )
    return {task_id: str(state) for task_id, state in rows}
