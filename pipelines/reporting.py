"""The CLI's one error boundary: what a user can fix is printed as one line, exit 2."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import typer

from pipelines.errors import PlatformError

Result = TypeVar("Result")


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_reporting_errors(func: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
    """Run a command body; turn platform and Spark analysis errors into one line."""
    from pyspark.errors import AnalysisException

    try:
        return func(*args, **kwargs)
    except PlatformError as exc:
        fail(str(exc))
    except AnalysisException as exc:
        fail(str(exc).strip().splitlines()[0])
    raise AssertionError("unreachable: fail() exits")
