"""Bodies of `feature-platform validate` and `consistency`: the quality gates as commands.

Prints PASS/FAIL per table, the failing expectations with example rows, and where the
Data Docs are; exits 1 when anything fails, so a DAG stops before bad data is served.
"""

from __future__ import annotations

import typer

from pipelines.errors import PlatformError
from pipelines.reporting import run_reporting_errors

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
    if not run_reporting_errors(_validate, start, end, views, tables):
        raise typer.Exit(1)


def consistency_command(
    as_of: str | None = typer.Option(
        None, "--as-of", help="Compare online values with Delta as of this time (UTC)"
    ),
    sample: int = typer.Option(
        1000, "--sample", min=1, help="Entities per view (hash-based sample)"
    ),
    views: str | None = typer.Option(None, "--views", help="Comma-separated views (default: all)"),
    tolerance: float = typer.Option(
        0.0, "--tolerance", min=0.0, max=1.0, help="Allowed mismatch ratio"
    ),
    replay: bool = typer.Option(
        False,
        "--replay",
        help="Replay the requests logged in [--start, --end) through the training-set builder",
    ),
    start: str | None = typer.Option(None, "--start", help="With --replay: interval start (UTC)"),
    end: str | None = typer.Option(None, "--end", help="With --replay: interval end (UTC)"),
    mode: str = typer.Option(
        "serving",
        "--mode",
        help="With --replay: the training-set mode to compare (serving, known, feast)",
    ),
    services: str | None = typer.Option(
        None, "--services", help="With --replay: comma-separated feature services (default: all)"
    ),
) -> None:
    """Check that Redis holds what the Delta tables say (--as-of), or that logged requests
    equal their training rows (--replay --start --end); exit 1 if not."""
    from features import REGISTRY
    from pipelines.interval import Interval, parse_time

    def check_store() -> None:
        if as_of is None:
            raise PlatformError("give --as-of, or --replay with --start and --end")
        moment = parse_time(as_of)
        names = _names(views) if views else None
        for name in names or ():
            REGISTRY.view(name)  # a DeclarationError names the unknown view
        from pipelines.quality.consistency import check_consistency
        from pipelines.spark import get_spark

        report = check_consistency(
            get_spark("consistency"), as_of=moment, sample=sample, views=names, tolerance=tolerance
        )
        for line in report.lines():
            typer.echo(line)
        if not report.success:
            raise typer.Exit(1)

    def check_replay() -> None:
        if start is None or end is None:
            raise PlatformError("--replay needs --start and --end")
        interval = Interval.parse(start, end)
        from pipelines.training.spec import Mode

        try:
            chosen = Mode(mode)
        except ValueError:
            raise PlatformError(f"unknown mode {mode!r} (known: serving, known, feast)") from None
        names = _names(services) if services else None
        for name in names or ():
            REGISTRY.service(name)  # a DeclarationError names the unknown service
        from pipelines.quality.replay import replay as replay_requests
        from pipelines.spark import get_spark

        report = replay_requests(
            get_spark("replay"),
            start=interval.start,
            end=interval.end,
            services=names,
            mode=chosen,
            tolerance=tolerance,
        )
        for line in report.lines():
            typer.echo(line)
        if not report.success:
            raise typer.Exit(1)

    run_reporting_errors(check_replay if replay else check_store)
