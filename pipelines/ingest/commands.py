"""Body of `feature-platform ingest`: the interval is checked before Spark starts."""

from __future__ import annotations

import typer

from pipelines.interval import Interval

START_HELP = "Start of the arrival interval (inclusive), UTC, e.g. 2026-01-01 or 2026-01-01T05:00"
END_HELP = "End of the arrival interval (exclusive), UTC"


def _ingest(start: str, end: str) -> None:
    interval = Interval.parse(start, end)
    from pipelines.ingest.job import ingest
    from pipelines.spark import get_spark

    report = ingest(get_spark("ingest"), start=interval.start, end=interval.end)
    for line in report.lines():
        typer.echo(line)


def ingest_command(
    start: str = typer.Option(..., "--start", help=START_HELP),
    end: str = typer.Option(..., "--end", help=END_HELP),
) -> None:
    """Check the raw rows that arrived in [start, end): clean tables plus a quarantine."""
    from pipelines.reporting import run_reporting_errors

    run_reporting_errors(_ingest, start, end)
