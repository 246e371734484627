"""Body of `feature-platform validate`: the data-quality gate as a command.

Prints PASS/FAIL per table, the failing expectations with example rows, and where the
Data Docs are; exits 1 when anything fails, so a DAG stops before bad data is served.
"""

from __future__ import annotations

import typer

START_HELP = "Start of the interval (inclusive), UTC, e.g. 2026-01-01T00:00"
END_HELP = "End of the interval (exclusive), UTC"
VIEWS_HELP = "Comma-separated feature view names (default: all, unless --tables is given)"
TABLES_HELP = (
    "Comma-separated clean event tables, e.g. clean.playback_events "
    "(default: all, unless --views is given)"
)


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def _validate(start: str, end: str, views: str | None, tables: str | None) -> bool:
    from pipelines.interval import Interval

    interval = Interval.parse(start, end)
    from pipelines.quality.gate import validate
    from pipelines.spark import get_spark

    report = validate(
        get_spark("validate"),
        start=interval.start,
        end=interval.end,
        views=_names(views),
        tables=_names(tables),
    )
    typer.echo(report.render())
    return report.success


def validate_command(
    start: str = typer.Option(..., "--start", help=START_HELP),
    end: str = typer.Option(..., "--end", help=END_HELP),
    views: str | None = typer.Option(None, "--views", help=VIEWS_HELP),
    tables: str | None = typer.Option(None, "--tables", help=TABLES_HELP),
) -> None:
    """Validate [start, end) of the feature and clean event tables; exit 1 if any check fails."""
    from pipelines.cli import run_reporting_errors

    if not run_reporting_errors(_validate, start, end, views, tables):
        raise typer.Exit(1)
