"""What each Airflow task runs, for one data interval: the seam between `dags/` and the steps.

A task runs one of the pipeline's steps (`pipelines.steps`), the same object the CLI and
the demo run. Two runners, chosen by FEATURE_PLATFORM_TASK_RUNNER (no code change):
- `local` (default): the step runs in the task's own process, Spark in local mode (or
  against FEATURE_PLATFORM_SPARK_MASTER in client mode);
- `spark-submit`: the task submits the step with `spark-submit` to
  FEATURE_PLATFORM_SPARK_MASTER (a standalone, YARN or Kubernetes master).
A task returns the step's small JSON-able summary (it lands in XCom); a failed verdict
raises, which fails the task.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from pipelines.config import PROJECT_ROOT, SPARK_CONF_DIR, settings
from pipelines.errors import NothingToCheckError, PlatformError
from pipelines.interval import HOUR, Interval
from pipelines.steps import REPLAY, step_named

TASK_RUNNER_ENV = "FEATURE_PLATFORM_TASK_RUNNER"


def step_interval(step: str, interval: Interval) -> Interval:
    """The interval a task's step works on. Replay takes the hour before the run's own:
    the requests logged then were served from values earlier runs published."""
    if step == REPLAY.name:
        return Interval(interval.start - HOUR, interval.start)
    return interval


def run(
    step: str, start: str | datetime | None, end: str | datetime | None, **options: Any
) -> dict[str, Any]:
    """Run one pipeline step for the task's data interval `[start, end)` with the configured
    runner; `options` are the step's own (e.g. `views` for materialize). A replay with no
    logged requests, or a drift check with no reference, returns `{"skipped": reason}`."""
    chosen = step_named(step)
    if start is None or end is None:
        raise PlatformError(f"step {step} needs a data interval")
    interval = step_interval(step, Interval.parse(start, end))
    if os.environ.get(TASK_RUNNER_ENV, "local") == "spark-submit":
        return _spark_submit(step, interval, options)
    from pipelines.spark import get_spark

    try:
        result = chosen.run(get_spark(f"feature-platform-{step}"), interval, **options)
    except NothingToCheckError as exc:
        return {"skipped": str(exc)}
    return dict(result.summary)


def _spark_submit(step: str, interval: Interval, options: dict[str, Any]) -> dict[str, Any]:
    master = settings().spark_master
    if not master:
        raise PlatformError(
            "FEATURE_PLATFORM_TASK_RUNNER=spark-submit needs FEATURE_PLATFORM_SPARK_MASTER"
        )
    spark_submit = Path(sys.executable).with_name("spark-submit")
    command = [
        str(spark_submit),
        "--master",
        master,
        "--name",
        f"feature-platform-{step}",
        str(PROJECT_ROOT / "pipelines" / "submit_entry.py"),
        step,
        interval.start.isoformat(),
        interval.end.isoformat(),
        json.dumps(options),
    ]
    env = {**os.environ, "SPARK_CONF_DIR": str(SPARK_CONF_DIR)}
    completed = subprocess.run(command, env=env, check=False)
    if completed.returncode != 0:
        raise PlatformError(
            f"spark-submit of {step} for {interval} exited with {completed.returncode}"
        )
    return {"submitted": step, "master": master}


def check_stream_lag() -> dict[str, Any]:
    """Fail (`StreamLagError`) when the streaming ingest is behind its topics by more than
    its declared bound (`features.monitoring.STREAM_LAG_ALERT`); `{"skipped": reason}`
    where no stream ingest runs (it never committed a micro-batch here)."""
    from pipelines.streaming.lag import check_stream_lag as checked

    try:
        lag = checked()
    except NothingToCheckError as exc:
        return {"skipped": str(exc)}
    return {"messages_behind": lag.messages_behind, "lag_seconds": lag.lag.total_seconds()}
