"""Bodies of `feature-platform materialize | online | feast | feast-env | redis ...`.

Arguments are checked before Spark, Feast or Redis start, so bad input fails fast
with one line.
"""

from __future__ import annotations

import shlex
import sys
from typing import Annotated, Any

import typer

from pipelines.errors import PlatformError
from pipelines.interval import Interval

# Feast commands that read the offline store (and so need Spark); plan and apply
# read the tables' schemas unless told --skip-source-validation.
FEAST_SPARK_COMMANDS = {"materialize", "materialize-incremental"}
FEAST_VALIDATING_COMMANDS = {"plan", "apply"}


def feast_needs_spark(args: list[str]) -> bool:
    if FEAST_SPARK_COMMANDS.intersection(args):
        return True
    return bool(FEAST_VALIDATING_COMMANDS.intersection(args)) and (
        "--skip-source-validation" not in args
    )


def _run(func: Any, *args: Any) -> Any:
    from pipelines.reporting import run_reporting_errors

    return run_reporting_errors(func, *args)


# --- materialize ---------------------------------------------------------------------


def _materialize(start: str, end: str, views: str | None) -> None:
    from pipelines.reporting import parse_view_names, run_step
    from pipelines.steps import MATERIALIZE

    run_step(MATERIALIZE, Interval.parse(start, end), views=parse_view_names(views))


def materialize_command(
    start: str = typer.Option(..., "--start", help="Start of the interval (inclusive), UTC"),
    end: str = typer.Option(..., "--end", help="End of the interval (exclusive), UTC"),
    views: str | None = typer.Option(None, "--views", help="Comma-separated views (default: all)"),
) -> None:
    """Write the latest feature row per entity of [start, end) to Redis, in Feast's layout."""
    _run(_materialize, start, end, views)


# --- online --------------------------------------------------------------------------


def parse_entities(pairs: list[str]) -> dict[str, Any]:
    from features import REGISTRY

    key_types = {e.join_key: e.value_type for e in REGISTRY.entities}
    row: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or key not in key_types:
            raise PlatformError(
                f"--entity {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(key_types))}"
            )
        if key_types[key] == "int64":
            try:
                row[key] = int(value)
            except ValueError:
                raise PlatformError(f"--entity {pair!r}: {key} is an integer") from None
        else:
            row[key] = value
    return row


def _online(
    service: str | None,
    features: list[str],
    entities: list[str],
    as_of: str | None,
    through_feast: bool,
) -> None:
    from pipelines.interval import parse_time

    if bool(service) == bool(features):
        raise PlatformError("give either --service or one or more --feature view:feature")
    wanted: str | list[str] = service if service else features
    row = parse_entities(entities)
    when = parse_time(as_of) if as_of else None
    if through_feast:
        from pipelines.serving.online import get_online_features, resolve_features

        resolve_features(wanted)
        values = get_online_features(wanted, [row], as_of=when)
    else:
        # Needs only Redis and the declarations: no Feast SDK import, no JVM.
        from pipelines.serving.direct import OnlineReader

        with OnlineReader(wanted) as reader:
            values = reader.get([row], as_of=when)
    width = max(len(name) for name in values)
    for name, column in values.items():
        typer.echo(f"{name:<{width}}  {column[0]}")


def online_command(
    entity: Annotated[
        list[str], typer.Option("--entity", help="An entity key KEY=VALUE (repeatable)")
    ],
    service: str | None = typer.Option(None, "--service", help="Feature service name"),
    feature: Annotated[
        list[str] | None,
        typer.Option("--feature", help="A feature reference view:feature (repeatable)"),
    ] = None,
    as_of: str | None = typer.Option(
        None, "--as-of", help="Hide values older than their view's TTL as of this UTC time"
    ),
    through_feast: bool = typer.Option(
        False,
        "--through-feast",
        help="Read through Feast's FeatureStore (same values, slower start) instead of "
        "straight from Redis",
    ),
) -> None:
    """Print online feature values from Redis (Feast's layout)."""
    _run(_online, service, feature or [], entity, as_of, through_feast)


# --- Feast passthrough -----------------------------------------------------------------


def feast_argv(args: list[str]) -> list[str]:
    from pipelines.config import FEATURE_REPO_DIR

    if any(a in ("-c", "--chdir") or a.startswith("--chdir=") for a in args):
        return list(args)
    return ["-c", str(FEATURE_REPO_DIR), *args]


def _feast(args: list[str]) -> None:
    from pipelines.serving.store import quiet_feast_warnings, use_feast_environment

    use_feast_environment()
    quiet_feast_warnings()
    if feast_needs_spark(args):
        from pipelines.spark import get_spark

        get_spark("feast")  # Feast's Spark store and engines reuse the active session
    from feast.cli.cli import cli

    cli.main(args=feast_argv(args), prog_name="feast", standalone_mode=True)


def feast_command(
    ctx: typer.Context,
) -> None:
    """Run Feast's CLI on feature_repo/ with the platform's data dir, Redis and Spark."""
    _run(_feast, list(ctx.args))


FEAST_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _feast_env() -> None:
    from pipelines.serving.store import feast_environment

    for name, value in feast_environment().items():
        typer.echo(f"export {name}={shlex.quote(value)}")


def feast_env_command() -> None:
    """Print shell exports for a plain `feast -c feature_repo ...` (starts the local Redis)."""
    _run(_feast_env)


# --- redis -----------------------------------------------------------------------------

redis_app = typer.Typer(
    help="The platform's local redis-server (used when REDIS_URL is not set).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _local_server():  # type: ignore[no-untyped-def]
    from pipelines.config import settings
    from pipelines.redis_server import local_server

    conf = settings()
    if conf.redis_url:
        raise PlatformError("REDIS_URL is set: the platform uses that server, not a local one")
    return local_server(conf)


@redis_app.command("start")
def redis_start() -> None:
    """Start the local redis-server (or reuse the running one) and print its URL."""

    def body() -> None:
        typer.echo(_local_server().start().url)

    _run(body)


@redis_app.command("stop")
def redis_stop() -> None:
    """Stop the local redis-server (its data is saved under <data_dir>/redis)."""
    _run(lambda: _local_server().stop())


@redis_app.command("status")
def redis_status() -> None:
    """Say which Redis the platform uses and whether it answers."""

    def body() -> None:
        from pipelines.config import settings
        from pipelines.redis_server import check_redis, redacted

        conf = settings()
        if conf.redis_url:
            check_redis(conf.redis_url)
            typer.echo(f"REDIS_URL {redacted(conf.redis_url)}: up")
            return
        server = _local_server()
        if server.is_running():
            typer.echo(f"local redis-server {server.url} (pid {server.pid()}): up")
        else:
            typer.echo(f"local redis-server in {server.directory}: not running")
            sys.exit(1)

    _run(body)
