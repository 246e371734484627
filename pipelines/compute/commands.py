"""Bodies of `feature-platform compute` and `feature-platform backfill`.

The interval and view names are checked before Spark starts, so bad input
fails in a second with one line.
"""

from __future__ import annotations

from datetime import timedelta

import typer

from pipelines.interval import Interval

START_HELP = "Start of the interval (inclusive), a whole hour in UTC, e.g. 2026-01-01T00:00"
END_HELP = "End of the interval (exclusive), a whole hour in UTC"
VIEWS_HELP = "Comma-separated feature view names (default: all)"
PARALLELISM_HELP = "Views written at once (each in its own Delta transaction)"


def _report(written: dict[str, int]) -> None:
    for table, rows in written.items():
        typer.echo(f"{table}: {rows} rows")


def _compute(start: str, end: str, views: str | None, parallelism: int) -> None:
    from pipelines.compute.job import compute, parse_view_names

    interval = Interval.parse(start, end).require_hour_aligned()
    names = parse_view_names(views)
    from pipelines.spark import get_spark

    spark = get_spark("compute")
    _report(
        compute(spark, start=interval.start, end=interval.end, views=names, parallelism=parallelism)
    )


def _backfill(
    start: str, end: str, chunk_hours: int, views: str | None, force: bool, parallelism: int
) -> None:
    from pipelines.compute.backfill import backfill
    from pipelines.compute.job import parse_view_names
    from pipelines.errors import IntervalError

    interval = Interval.parse(start, end).require_hour_aligned()
    if chunk_hours < 1:
        raise IntervalError(f"--chunk-hours must be at least 1, got {chunk_hours}")
    names = parse_view_names(views)
    from pipelines.spark import get_spark

    written = backfill(
        get_spark("backfill"),
        start=interval.start,
        end=interval.end,
        chunk=timedelta(hours=chunk_hours),
        views=names,
        force=force,
        parallelism=parallelism,
    )
    _report(written)


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
    from pipelines.reporting import run_reporting_errors

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
    from pipelines.reporting import run_reporting_errors

    run_reporting_errors(_backfill, start, end, chunk_hours, views, force, parallelism)
