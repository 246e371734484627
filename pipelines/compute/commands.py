"""Bodies of `feature-platform compute` and `feature-platform backfill`.

The interval and view names are checked before Spark starts, so bad input
fails in a second with one line.
"""

from __future__ import annotations

import typer

from pipelines.errors import IntervalError
from pipelines.interval import Interval
from pipelines.reporting import parse_view_names, run_reporting_errors, run_step
from pipelines.steps import BACKFILL, COMPUTE

START_HELP = "Start of the interval (inclusive), a whole hour in UTC, e.g. 2026-01-01T00:00"
END_HELP = "End of the interval (exclusive), a whole hour in UTC"
VIEWS_HELP = "Comma-separated feature view names (default: all)"
PARALLELISM_HELP = "Views written at once (each in its own Delta transaction)"


def _compute(start: str, end: str, views: str | None, parallelism: int) -> None:
    interval = Interval.parse(start, end).require_hour_aligned()
    run_step(COMPUTE, interval, views=parse_view_names(views), parallelism=parallelism)


def _backfill(
    start: str, end: str, chunk_hours: int, views: str | None, force: bool, parallelism: int
) -> None:
    interval = Interval.parse(start, end).require_hour_aligned()
    if chunk_hours < 1:
        raise IntervalError(f"--chunk-hours must be at least 1, got {chunk_hours}")
    run_step(
        BACKFILL,
        interval,
        chunk_hours=chunk_hours,
        views=parse_view_names(views),
        force=force,
        parallelism=parallelism,
    )


def compute_command(
    start: str = typer.Option(..., "--start", help=START_HELP),
    end: str = typer.Option(..., "--end", help=END_HELP),
    views: str | None = typer.Option(None, "--views", help=VIEWS_HELP),
    parallelism: int = typer.Option(2, "--parallelism", min=1, help=PARALLELISM_HELP),
) -> None:
    """Bring the feature tables up to date with what arrived in [start, end).

    Writes the versions that became knowable in (start, end]: each view's row at every hour
    up to END as known at that hour (fresh by construction: when it finishes, the tables hold
    every entity's value as of END), and a new version of every earlier row that events
    arriving in [start, end) change. Reruns replace exactly those versions. Prints rows
    written per table.
    """
    run_reporting_errors(_compute, start, end, views, parallelism)


def backfill_command(
    start: str = typer.Option(..., "--start", help=START_HELP),
    end: str = typer.Option(..., "--end", help=END_HELP),
    chunk_hours: int = typer.Option(24, "--chunk-hours", help="Hours per chunk"),
    views: str | None = typer.Option(None, "--views", help=VIEWS_HELP),
    force: bool = typer.Option(False, "--force", help="Recompute chunks already completed"),
    parallelism: int = typer.Option(2, "--parallelism", min=1, help=PARALLELISM_HELP),
) -> None:
    """`compute` over [start, end) chunk by chunk, skipping chunks already completed."""
    run_reporting_errors(_backfill, start, end, chunk_hours, views, force, parallelism)
