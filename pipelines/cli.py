"""`feature-platform`: the one entry point for the platform's own commands.

Each capability registers its subcommand here; the command bodies live next
to the code they drive. Failures the user can fix print one line and exit 2.
"""

from __future__ import annotations

import typer

from pipelines.errors import PlatformError

app = typer.Typer(
    name="feature-platform",
    help="Spark feature store and training-data platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_reporting_errors(func, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Run a command body; turn platform and Spark analysis errors into one line."""
    from pyspark.errors import AnalysisException

    try:
        return func(*args, **kwargs)
    except PlatformError as exc:
        fail(str(exc))
    except AnalysisException as exc:
        fail(str(exc).strip().splitlines()[0])


@app.callback()
def _root() -> None:
    """Spark feature store and training-data platform."""


@app.command()
def info() -> None:
    """Print where the platform keeps its data and which services it uses."""
    from pipelines.config import SPARK_CONF_DIR, settings

    conf = settings()
    typer.echo(f"data directory : {conf.data_dir}")
    typer.echo(f"spark conf     : {SPARK_CONF_DIR}")
    typer.echo(f"spark master   : {conf.spark_master or '(spark-defaults.conf)'}")
    typer.echo(f"redis          : {conf.redis_url or '(local redis-server started on demand)'}")


# The command bodies live next to the code they drive; registered here in pipeline order.
# (Imported after `app` and the helpers above, which the command modules use.)
from pipelines.compute.commands import backfill_command, compute_command  # noqa: E402
from pipelines.generate.commands import generate_command  # noqa: E402
from pipelines.ingest.commands import ingest_command  # noqa: E402
from pipelines.quality.commands import validate_command  # noqa: E402
from pipelines.serving.commands import (  # noqa: E402
    FEAST_CONTEXT,
    feast_command,
    feast_env_command,
    materialize_command,
    online_command,
    redis_app,
)
from pipelines.training.commands import labels_app, training_set_command  # noqa: E402

app.command("generate")(generate_command)
app.command("ingest")(ingest_command)
app.command("compute")(compute_command)
app.command("backfill")(backfill_command)
app.command("validate")(validate_command)
app.command("feast", context_settings=FEAST_CONTEXT)(feast_command)
app.command("feast-env")(feast_env_command)
app.command("materialize")(materialize_command)
app.command("online")(online_command)
app.add_typer(redis_app, name="redis")
app.add_typer(labels_app, name="labels")
app.command("training-set")(training_set_command)


@app.command()
def consistency(
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
    from pipelines.interval import Interval, parse_time

    def check_store() -> None:
        if as_of is None:
            raise PlatformError("give --as-of, or --replay with --start and --end")
        moment = parse_time(as_of)
        names = [v.strip() for v in views.split(",") if v.strip()] if views else None
        if names:
            for name in names:
                _require_view(name)
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
        from features import REGISTRY, DeclarationError
        from pipelines.training.spec import Mode

        try:
            chosen = Mode(mode)
        except ValueError:
            raise PlatformError(f"unknown mode {mode!r} (known: serving, known, feast)") from None
        names = [n.strip() for n in services.split(",") if n.strip()] if services else None
        for name in names or ():
            try:
                REGISTRY.service(name)
            except DeclarationError as exc:
                raise PlatformError(str(exc)) from None
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


def _require_view(name: str) -> None:
    from features import REGISTRY, DeclarationError

    try:
        REGISTRY.view(name)
    except DeclarationError as exc:
        raise PlatformError(str(exc)) from None


@app.command()
def demo(
    days: int = typer.Option(5, "--days", min=2, help="Days of data to generate"),
    scale: float = typer.Option(0.3, "--scale", min=0.01, help="Data volume multiplier"),
    live_hours: int = typer.Option(
        4, "--live-hours", min=1, max=12, help="Last hours run hourly, with traffic and replay"
    ),
    airflow: bool = typer.Option(True, "--airflow/--no-airflow", help="Also run the hourly DAG"),
) -> None:
    """Run the whole platform end to end on the embedded defaults and report what it did."""
    from pipelines.demo import run_demo

    run_reporting_errors(
        run_demo, days=days, scale=scale, live_hours=live_hours, with_airflow=airflow
    )


def main() -> None:
    app(prog_name="feature-platform")


if __name__ == "__main__":
    main()
