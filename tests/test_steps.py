"""One pipeline of steps: the CLI, the Airflow tasks and the demo run the same step objects,
report them the same way, and fail the same way (no Spark needed here)."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer

from pipelines.errors import PlatformError
from pipelines.interval import HOUR, Interval
from pipelines.reporting import run_reporting_errors
from pipelines.steps import STEPS, Step, StepFailedError, StepResult, step_named
from pipelines.tasks import step_interval

ROOT = Path(__file__).resolve().parents[1]
HOUR_ONE = Interval(datetime(2026, 11, 1, 5, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC))
# The jobs a front end must reach only through a step.
JOBS = {"ingest", "compute", "backfill", "validate", "materialize", "check_consistency", "generate"}
FRONT_ENDS = [
    *sorted((ROOT / "pipelines").glob("*/commands.py")),
    ROOT / "pipelines" / "tasks.py",
    ROOT / "pipelines" / "demo.py",
    ROOT / "pipelines" / "day_in_the_life.py",
    ROOT / "pipelines" / "submit_entry.py",
]


def _checking_step(verdict: str | None) -> Step:
    def job(spark, interval: Interval, *, threshold: int) -> StepResult:
        return StepResult((f"checked {interval} at {threshold}",), {"ok": verdict is None}, verdict)

    return Step("check", "a checking step", job)


def test_a_step_prints_its_lines_and_returns_its_summary():
    printed: list[str] = []
    result = _checking_step(None).run(None, HOUR_ONE, echo=printed.append, threshold=3)
    assert printed == [f"checked {HOUR_ONE} at 3"]
    assert result.success and result.summary == {"ok": True}


def test_a_failed_verdict_prints_the_report_then_raises_one_line():
    printed: list[str] = []
    with pytest.raises(StepFailedError) as failed:
        _checking_step("2 of 5 tables").run(None, HOUR_ONE, echo=printed.append, threshold=3)
    assert printed == [f"checked {HOUR_ONE} at 3"]  # the report comes before the error
    assert str(failed.value) == f"check of {HOUR_ONE} failed: 2 of 5 tables"
    assert isinstance(failed.value, PlatformError)


@pytest.mark.parametrize(
    ("error", "code"),
    [(StepFailedError("check of [a, b) failed: x"), 1), (PlatformError("bad --views"), 2)],
)
def test_the_cli_boundary_exits_1_on_a_failed_verdict_and_2_on_a_user_error(error, code, capsys):
    def body() -> None:
        raise error

    with pytest.raises(typer.Exit) as exited:
        run_reporting_errors(body)
    assert exited.value.exit_code == code
    assert capsys.readouterr().err == f"error: {error}\n"


def test_front_ends_reach_the_jobs_only_through_steps():
    """No command body, task, demo or runner imports a job a step already wraps."""
    found = []
    for path in FRONT_ENDS:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipelines"):
                found += [
                    f"{path.relative_to(ROOT)}: {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name in JOBS
                ]
    assert found == []


def test_every_dag_task_runs_a_known_step():
    called = {
        name
        for path in sorted((ROOT / "dags").glob("*.py"))
        for name in re.findall(r'tasks\.run\(\s*"([a-z_]+)"', path.read_text())
    }
    assert called and called <= set(STEPS)


def test_the_replay_task_checks_the_hour_before_its_interval():
    assert step_interval("replay", HOUR_ONE) == Interval(HOUR_ONE.start - HOUR, HOUR_ONE.start)
    assert step_interval("compute", HOUR_ONE) == HOUR_ONE


def test_an_unknown_step_is_one_error_listing_the_known_ones():
    with pytest.raises(PlatformError, match=r"unknown step 'nope' \(known: generate, ingest"):
        step_named("nope")
