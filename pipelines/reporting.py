"""The CLI's one error boundary, and how the CLI runs a pipeline step.

An error the user can fix prints one line and exits 2; a checking step whose verdict
is FAIL has printed its report and exits 1 (a DAG or a script stops on either).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from pipelines.errors import PlatformError
from pipelines.steps import StepFailedError

if TYPE_CHECKING:
    from pipelines.interval import Interval
    from pipelines.steps import Step, StepResult

Result = TypeVar("Result")


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_reporting_errors(func: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
    """Run a command body; turn platform and Spark analysis errors into one line."""
    from pyspark.errors import AnalysisException

    try:
        return func(*args, **kwargs)
    except StepFailedError as exc:
        fail(str(exc), code=1)
    except PlatformError as exc:
        fail(str(exc))
    except AnalysisException as exc:
        fail(str(exc).strip().splitlines()[0])
    raise AssertionError("unreachable: fail() exits")


# Steps that draw their own progress (views or chunks done); the others show their
# Spark stages' tasks.
OWN_PROGRESS = {"compute", "backfill", "materialize"}


def run_step(step: Step, interval: Interval, **options: Any) -> StepResult:
    """Run a pipeline step from the CLI: Spark starts only now, after the arguments passed
    their checks, and the step's lines go to the terminal."""
    from pipelines.progress import spark_progress
    from pipelines.spark import get_spark

    spark = get_spark(step.name)
    if step.name in OWN_PROGRESS:
        return step.run(spark, interval, echo=typer.echo, **options)
    with spark_progress(spark, step.name):
        return step.run(spark, interval, echo=typer.echo, **options)


def parse_names(text: str | None) -> list[str] | None:
    """A comma-separated option (`--views a,b`) as names; absent or blank -> None (all)."""
    if text is None or not text.strip():
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_view_names(text: str | None) -> list[str] | None:
    """`--views`, each name checked against the declarations before Spark starts."""
    from features import REGISTRY

    names = parse_names(text)
    if names is not None:
        REGISTRY.select_views(names)  # a DeclarationError names the unknown view
    return names
