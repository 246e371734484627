"""What each Airflow task runs, for one data interval: the seam between `dags/` and the jobs.

Two runners, chosen by FEATURE_PLATFORM_TASK_RUNNER (no code change):
- `local` (default): the job runs in the task's own process, Spark in local mode (or against
  FEATURE_PLATFORM_SPARK_MASTER in client mode);
- `spark-submit`: the task submits `feature-platform <step>` with `spark-submit` to
  FEATURE_PLATFORM_SPARK_MASTER (a standalone, YARN or Kubernetes master).
Each step returns a small JSON-able summary (it lands in XCom).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pipelines.config import PROJECT_ROOT, SPARK_CONF_DIR, settings
from pipelines.errors import PlatformError
from pipelines.interval import Interval

TASK_RUNNER_ENV = "FEATURE_PLATFORM_TASK_RUNNER"


def _ingest(spark: Any, interval: Interval) -> dict[str, Any]:
    from pipelines.ingest import ingest

    report = ingest(spark, start=interval.start, end=interval.end)
    for line in report.lines():
        print(line)
    return {
        name: {"raw": c.raw, "clean": c.clean, "quarantined": dict(c.quarantined)}
        for name, c in report.tables.items()
    }


def _compute(spark: Any, interval: Interval, views: list[str] | None = None) -> dict[str, Any]:
    from pipelines.compute import compute

    return dict(compute(spark, start=interval.start, end=interval.end, views=views))


def _validate(spark: Any, interval: Interval) -> dict[str, Any]:
    from pipelines.quality import validate

    report = validate(spark, start=interval.start, end=interval.end)
    print(report.render())
    if not report.success:
        failed = ", ".join(t.name for t in report.failed)
        raise PlatformError(f"validation failed for {interval}: {failed} (see {report.docs_index})")
    return {"success": True, "tables": len(report.tables)}


def _materialize(spark: Any, interval: Interval, views: list[str] | None = None) -> dict[str, Any]:
    from pipelines.serving.materialize import materialize

    report = materialize(spark, start=interval.start, end=interval.end, views=views)
    print(report.summary())
    return {v.view: {"entities": v.rows, "written": v.written} for v in report.views}


def _consistency(spark: Any, interval: Interval) -> dict[str, Any]:
    from pipelines.quality.consistency import check_consistency

    report = check_consistency(spark, as_of=interval.end)
    for line in report.lines():
        print(line)
    if not report.success:
        raise PlatformError(
            f"online/offline consistency failed as of {interval.end}: {report.summary()}"
        )
    return {"success": True, "entities": report.sampled_entities}


def _replay(spark: Any, interval: Interval) -> dict[str, Any]:
    """Replay the requests logged in the hour before the interval (their values were all
    published by earlier runs)."""
    from pipelines.interval import HOUR
    from pipelines.quality.replay import ReplayError, replay

    previous = Interval(interval.start - HOUR, interval.start)
    try:
        report = replay(spark, start=previous.start, end=previous.end)
    except ReplayError as exc:
        if str(exc).startswith("no requests were logged"):
            return {"skipped": str(exc)}
        raise
    for line in report.lines():
        print(line)
    if not report.success:
        raise PlatformError(f"replay of {previous} found skew: {report.lines()[0]}")
    return {"success": True, "requests": report.requests}


def _training_set(spark: Any, interval: Interval) -> dict[str, Any]:
    """The day's CTR training set as served (`Mode.SERVING`), once its labels are mature."""
    from pipelines.training import Mode, build_training_set
    from pipelines.training.labels import ctr_labels

    output = settings().data_dir / "training_sets" / "ctr" / interval.start.strftime("%Y-%m-%d")
    labels = ctr_labels(spark, start=interval.start, end=interval.end)
    frame = build_training_set(spark, labels, "ctr_model", output=str(output), mode=Mode.SERVING)
    return {"output": str(output), "rows": frame.count(), "mode": Mode.SERVING.value}


STEPS: dict[str, Callable[..., dict[str, Any]]] = {
    "ingest": _ingest,
    "compute": _compute,
    "validate": _validate,
    "materialize": _materialize,
    "consistency": _consistency,
    "replay": _replay,
    "training_set": _training_set,
}


def run(
    step: str, start: str | datetime | None, end: str | datetime | None, **options: Any
) -> dict[str, Any]:
    """Run one pipeline step for `[start, end)` with the configured runner; `options` are
    the step's own (e.g. `views` for materialize)."""
    if step not in STEPS:
        raise PlatformError(f"unknown step {step!r} (known: {', '.join(STEPS)})")
    if start is None or end is None:
        raise PlatformError(f"step {step} needs a data interval")
    interval = Interval.parse(start, end)
    if os.environ.get(TASK_RUNNER_ENV, "local") == "spark-submit":
        return _spark_submit(step, interval, options)
    from pipelines.spark import get_spark

    return STEPS[step](get_spark(f"feature-platform-{step}"), interval, **options)


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
