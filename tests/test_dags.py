"""DAG integrity: the DAGs import cleanly, every task can retry and has an owner, parsing is cheap."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pendulum
import pytest
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk.bases.sensor import BaseSensorOperator

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"

PARSE_PROBE = """
import json, sys, time, importlib.util, pathlib
started = time.perf_counter()
from airflow.sdk import DAG  # Airflow's own import cost is not the DAGs' parse cost
airflow_done = time.perf_counter()
dag_ids = []
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.py")):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag_ids += [v.dag_id for v in vars(module).values() if isinstance(v, DAG)]
finished = time.perf_counter()
heavy = sorted(m for m in ("pyspark", "delta", "feast", "great_expectations", "pipelines.tasks", "redis")
               if m in sys.modules)
print(json.dumps({"parse_seconds": finished - airflow_done, "heavy": heavy}))
"""


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"feature_pipeline", "training_set"} <= set(dagbag.dag_ids)


def test_every_task_has_retries_an_owner_and_the_spark_pool_unless_it_waits(dagbag):
    for dag in dagbag.dags.values():
        assert dag.tags and dag.doc_md, dag.dag_id
        assert dag.max_active_runs == 1, dag.dag_id
        assert dag.catchup, dag.dag_id
        assert dag.start_date.tzinfo is not None and dag.start_date.utcoffset() == timedelta(0)
        for task in dag.tasks:
            assert task.retries >= 1, task.task_id
            assert task.owner not in (None, "", "airflow"), task.task_id
            # A sensor must not hold the one Spark slot while it waits.
            wanted = "default_pool" if isinstance(task, BaseSensorOperator) else "spark"
            assert task.pool == wanted, task.task_id


def test_training_set_waits_until_its_labels_are_mature(dagbag):
    from features.labels import ctr

    dag = dagbag.dags["training_set"]
    build = dag.get_task("build_ctr_training_set")
    (sensor_id,) = build.upstream_task_ids
    sensor = dag.get_task(sensor_id)
    assert isinstance(sensor, ExternalTaskSensor)
    assert (sensor.external_dag_id, sensor.external_task_id) == ("feature_pipeline", "compute")
    assert sensor.mode == "reschedule"
    day = pendulum.datetime(2026, 11, 3, tz="UTC")
    interval = dag.timetable.infer_manual_data_interval(run_after=day + timedelta(hours=5))
    # The sensor looks for the run with logical date (= data interval start) this one's
    # minus the delta: the hourly run that ends when the day's labels are mature.
    waited_for = interval.start - sensor.execution_delta
    hourly = dagbag.dags["feature_pipeline"].timetable
    that_hour = hourly.infer_manual_data_interval(run_after=waited_for + timedelta(hours=1))
    assert (that_hour.start, that_hour.end) == (waited_for, waited_for + timedelta(hours=1))
    assert that_hour.end == interval.end + ctr.maturity == interval.end + timedelta(hours=14)
    # Once the day's training set is built, its features are checked for drift.
    assert dag.get_task("feature_drift").upstream_task_ids == {"build_ctr_training_set"}


def test_pipeline_order_and_publication_at_the_serving_lag(dagbag):
    from airflow.providers.standard.sensors.date_time import DateTimeSensor

    from features import REGISTRY

    dag = dagbag.dags["feature_pipeline"]
    order = ["stream_lag", "ingest", "compute", "validate", "wait_for_publication"]
    order += ["materialize", "consistency"]
    for upstream, downstream in itertools.pairwise(order):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    wait = dag.get_task("wait_for_publication")
    assert isinstance(wait, DateTimeSensor) and wait.mode == "reschedule"
    (lag,) = {v.serving_lag for v in REGISTRY.views}
    assert f"seconds={int(lag.total_seconds())}" in wait.target_time
    assert "data_interval_end" in wait.target_time
    assert dag.get_task("replay").upstream_task_ids == set()


@pytest.mark.parametrize(("dag_id", "length"), [("feature_pipeline", 1), ("training_set", 24)])
def test_runs_get_a_whole_interval(dagbag, dag_id, length):
    # Airflow 3's plain cron schedules give empty intervals; the DAGs must not.
    dag = dagbag.dags[dag_id]
    after = pendulum.datetime(2026, 11, 3, 5, 30, tz="UTC")
    interval = dag.timetable.infer_manual_data_interval(run_after=after)
    assert interval.end - interval.start == timedelta(hours=length)
    assert interval.end <= after


def test_parsing_is_cheap_and_does_no_heavy_imports(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    out = (
        subprocess.run(
            [sys.executable, "-c", PARSE_PROBE, str(DAGS)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            timeout=300,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    probe = json.loads(out)
    assert probe["heavy"] == [], f"DAG files import {probe['heavy']} at parse time"
    # Airflow's default dagbag_import_timeout is 30 s; our files should take a small fraction.
    assert probe["parse_seconds"] < 5.0, probe
