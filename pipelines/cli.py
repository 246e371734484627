"""`feature-platform`: the one entry point for the platform's own commands.

Each capability registers its subcommand here; the command bodies live next
to the code they drive. Failures the user can fix print one line and exit 2.
"""

from __future__ import annotations

import sys

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


def main() -> None:
    app(prog_name="feature-platform")


if __name__ == "__main__":
    sys.exit(main())
