"""Bodies of `feature-platform kafka start | stop | status | topics`."""

from __future__ import annotations

import typer

from pipelines.config import KAFKA_BOOTSTRAP_ENV, settings
from pipelines.errors import PlatformError
from pipelines.reporting import run_reporting_errors

kafka_app = typer.Typer(
    help="The event bus: the local Kafka broker (used when KAFKA_BOOTSTRAP_SERVERS is not set).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _local_broker():  # type: ignore[no-untyped-def]
    from pipelines.streaming.broker import local_broker

    if settings().kafka_bootstrap_servers:
        raise PlatformError(
            f"{KAFKA_BOOTSTRAP_ENV} is set: the platform uses that cluster, not a local broker"
        )
    return local_broker()


@kafka_app.command("start")
def kafka_start() -> None:
    """Start the local Kafka broker (or reuse the running one), create the event topics,
    and print its bootstrap servers. The first start fetches Kafka's jars from Maven Central."""

    def body() -> None:
        from pipelines.streaming.topics import create_topics

        broker = _local_broker().start()
        create_topics(broker.bootstrap_servers)
        typer.echo(broker.bootstrap_servers)

    run_reporting_errors(body)


@kafka_app.command("stop")
def kafka_stop() -> None:
    """Stop the local Kafka broker (its data stays under <data_dir>/kafka)."""
    run_reporting_errors(lambda: _local_broker().stop())


@kafka_app.command("status")
def kafka_status() -> None:
    """Say which Kafka the platform uses and whether it answers; exit 1 if it does not."""

    def body() -> None:
        from pipelines.streaming.broker import check_kafka

        configured = settings().kafka_bootstrap_servers
        if configured:
            check_kafka(configured)
            typer.echo(f"{KAFKA_BOOTSTRAP_ENV} {configured}: up")
            return
        broker = _local_broker()
        if not broker.is_running():
            typer.echo(f"local Kafka broker in {broker.directory}: not running")
            raise typer.Exit(1)
        typer.echo(f"local Kafka broker {broker.bootstrap_servers} (pid {broker.pid()}): up")

    run_reporting_errors(body)


@kafka_app.command("topics")
def kafka_topics() -> None:
    """Create the event topics that do not exist yet, then list them with their sources."""

    def body() -> None:
        from pipelines.streaming.broker import bootstrap_servers
        from pipelines.streaming.topics import create_topics, topics

        created = set(create_topics(bootstrap_servers()))
        for name, source in topics().items():
            note = " (created)" if name in created else ""
            typer.echo(f"{name:<32} {source.table}{note}")

    run_reporting_errors(body)


def replay_command(
    start: str = typer.Option(..., "--start", help="Start of the arrival interval, UTC"),
    end: str = typer.Option(..., "--end", help="End of the arrival interval (exclusive), UTC"),
    speed: float = typer.Option(
        60.0, "--speed", min=0.0, help="N times real time (60: an hour a minute; 0: no pacing)"
    ),
    scale: float = typer.Option(1.0, "--scale", help="The generator's size knob"),
    seed: int = typer.Option(7, "--seed", help="The generator's seed"),
) -> None:
    """Publish the generated events that arrive in [start, end) to Kafka, in arrival order
    (late, malformed and hostile rows included, as `generate` writes them)."""

    def body() -> None:
        from pipelines.generate.world import GeneratorConfig
        from pipelines.interval import Interval
        from pipelines.streaming.broker import ensure_kafka
        from pipelines.streaming.publish import publish
        from pipelines.streaming.topics import create_topics

        interval = Interval.parse(start, end)
        config = GeneratorConfig(scale=scale, seed=seed)
        servers = ensure_kafka()
        create_topics(servers)
        report = publish(
            servers,
            start=interval.start,
            end=interval.end,
            speed=speed,
            config=config,
            echo=typer.echo,
        )
        for line in report.lines():
            typer.echo(line)

    run_reporting_errors(body)


def _run_stream(
    *, fresh: bool, until_caught_up: bool, trigger_seconds: float, status: bool
) -> None:
    """The body of `stream` (landing and fresh values) and `stream-ingest` (landing only)."""
    name = "stream" if fresh else "stream-ingest"

    def show_status() -> None:
        from pipelines.steps import StepFailedError
        from pipelines.streaming.lag import StreamLagError, check_stream_lag

        try:
            check_stream_lag(typer.echo)
        except StreamLagError as exc:  # the check's verdict: exit 1, as a failed gate
            raise StepFailedError(str(exc)) from None

    def body() -> None:
        if status:
            show_status()
            if fresh:
                show_fresh_status()
            return
        from pipelines.spark import get_spark
        from pipelines.streaming.broker import bootstrap_servers
        from pipelines.streaming.fresh import fresh_values
        from pipelines.streaming.land import checkpoint_dir, land_events

        servers = bootstrap_servers()
        writer = fresh_values(checkpoint_dir()) if fresh else None
        query = land_events(
            get_spark(name),
            bootstrap_servers=servers,
            until_caught_up=until_caught_up,
            trigger_seconds=trigger_seconds,
            fresh=writer,
        )
        into = "the raw and clean tables" + (", and fresh values into Redis" if fresh else "")
        typer.echo(f"landing {servers} into {into} (checkpoint {checkpoint_dir()})")
        try:
            query.awaitTermination()
        except KeyboardInterrupt:
            query.stop()
        failure = query.exception()
        if failure is not None:
            raise PlatformError(f"{name} failed: {str(failure).strip().splitlines()[0]}")
        landed = sum(p.get("numInputRows", 0) for p in query.recentProgress)
        typer.echo(f"landed {landed:,} messages in {len(query.recentProgress)} micro-batches")
        if writer is not None:
            show_fresh_status()

    run_reporting_errors(body)


def show_fresh_status() -> None:
    from pipelines.streaming.fresh import fresh_status
    from pipelines.streaming.land import checkpoint_dir

    for line in fresh_status(checkpoint_dir()):
        typer.echo(line)


_UNTIL_CAUGHT_UP = typer.Option(
    False, "--until-caught-up", help="Land what the topics hold now, then stop"
)
_TRIGGER_SECONDS = typer.Option(
    5.0, "--trigger-seconds", min=0.5, help="Seconds between micro-batches when running on"
)
_STATUS = typer.Option(
    False,
    "--status",
    help="Print how far the stream is behind (messages, age of the oldest not landed), "
    "its last committed offsets and checkpoint size; exit 1 past the declared bound",
)


def stream_command(
    until_caught_up: bool = _UNTIL_CAUGHT_UP,
    trigger_seconds: float = _TRIGGER_SECONDS,
    status: bool = _STATUS,
) -> None:
    """The real-time path: land the event topics as `stream-ingest` does, then after each
    micro-batch write the real-time views' fresh values (sawtooth windows, exactly the
    `realtime` training values) into Redis in Feast's layout. Runs until stopped unless
    --until-caught-up; the real-time views must have been computed once."""
    _run_stream(
        fresh=True, until_caught_up=until_caught_up, trigger_seconds=trigger_seconds, status=status
    )


def stream_ingest_command(
    until_caught_up: bool = _UNTIL_CAUGHT_UP,
    trigger_seconds: float = _TRIGGER_SECONDS,
    status: bool = _STATUS,
) -> None:
    """Land the event topics in the raw tables with Spark Structured Streaming, exactly once
    (checkpoint under <data_dir>/checkpoints), and ingest each micro-batch's hours into the
    clean tables with the hourly job's rules. Runs until stopped unless --until-caught-up."""
    _run_stream(
        fresh=False, until_caught_up=until_caught_up, trigger_seconds=trigger_seconds, status=status
    )
