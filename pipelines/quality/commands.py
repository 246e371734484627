"""Bodies of `feature-platform validate` and `consistency`: the quality gates as commands.

Prints PASS/FAIL per table, the failing expectations with example rows, and where the
Data Docs are; exits 1 when anything fails, so a DAG stops before bad data is served.
"""

from __future__ import annotations

import typer

from features import REGISTRY
from pipelines.errors import PlatformError
from pipelines.interval import HOUR, Interval, parse_time
from pipelines.reporting import parse_names, parse_view_names, run_reporting_errors, run_step
from pipelines.steps import CONSISTENCY, REPLAY, VALIDATE

START_HELP = "Start of the interval (inclusive), UTC, e.g. 2026-01-01T00:00"
END_HELP = "End of the interval (exclusive), UTC"
VIEWS_HELP = "Comma-separated feature view names (default: all, unless --tables is given)"
TABLES_HELP = (
    "Comma-separated clean event tables, e.g. clean.playback_events "
    "(default: all, unless --views is given)"
)


def _validate(start: str, end: str, views: str | None, tables: str | None) -> None:
    interval = Interval.parse(start, end)
    run_step(VALIDATE, interval, views=parse_view_names(views), tables=parse_names(tables))


def validate_command(
    start: str = typer.Option(..., "--start", help=START_HELP),
    end: str = typer.Option(..., "--end", help=END_HELP),
    views: str | None = typer.Option(None, "--views", help=VIEWS_HELP),
    tables: str | None = typer.Option(None, "--tables", help=TABLES_HELP),
) -> None:
    """Validate [start, end) of the feature and clean event tables; exit 1 if any check fails."""
    run_reporting_errors(_validate, start, end, views, tables)


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
        help="With --replay: the training-set mode to compare (serving, known, feast, realtime)",
    ),
    services: str | None = typer.Option(
        None, "--services", help="With --replay: comma-separated feature services (default: all)"
    ),
) -> None:
    """Check that Redis holds what the Delta tables say (--as-of), or that logged requests
    equal their training rows (--replay --start --end); exit 1 if not."""

    def check_store() -> None:
        if as_of is None:
            raise PlatformError("give --as-of, or --replay with --start and --end")
        moment = parse_time(as_of)
        # The step checks the store as a run over an interval leaves it: as of its end.
        interval = Interval(moment - HOUR, moment)
        run_step(
            CONSISTENCY, interval, sample=sample, views=parse_view_names(views), tolerance=tolerance
        )

    def check_replay() -> None:
        if start is None or end is None:
            raise PlatformError("--replay needs --start and --end")
        interval = Interval.parse(start, end)
        from pipelines.training.spec import Mode

        if mode not in {m.value for m in Mode}:
            raise PlatformError(
                f"unknown mode {mode!r} (known: {', '.join(m.value for m in Mode)})"
            )
        names = parse_names(services)
        for name in names or ():
            REGISTRY.service(name)  # a DeclarationError names the unknown service
        run_step(REPLAY, interval, services=names, mode=mode, tolerance=tolerance)

    run_reporting_errors(check_replay if replay else check_store)
