"""Body of `feature-platform ingest`: the interval is checked before Spark starts."""

from __future__ import annotations

import typer

from pipelines.interval import Interval
from pipelines.reporting import run_reporting_errors, run_step
from pipelines.steps import INGEST

START_HELP = "Start of the arrival interval (inclusive), UTC, e.g. 2026-01-01 or 2026-01-01T05:00"
END_HELP = "End of the arrival interval (exclusive), UTC"


def ingest_command(
    start: str = typer.Option(..., "--start", help=START_HELP),
    end: str = typer.Option(..., "--end", help=END_HELP),
) -> None:
    """Check the raw rows that arrived in [start, end): clean tables plus a quarantine."""
    run_reporting_errors(lambda: run_step(INGEST, Interval.parse(start, end)))
