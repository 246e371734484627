"""`feature-platform`: the one entry point for the platform's own commands.

Each capability registers its subcommand here; the command bodies live next
to the code they drive. Failures the user can fix print one line and exit 2.
"""

from __future__ import annotations

import typer

from pipelines.compute.commands import backfill_command, compute_command
from pipelines.demo import demo_command
from pipelines.generate.commands import generate_command
from pipelines.ingest.commands import ingest_command
from pipelines.monitoring.commands import drift_command, model_scores_command
from pipelines.quality.commands import consistency_command, validate_command
from pipelines.serving.commands import (
    FEAST_CONTEXT,
    feast_command,
    feast_env_command,
    materialize_command,
    online_command,
    redis_app,
)
from pipelines.streaming.commands import (
    kafka_app,
    replay_command,
    stream_command,
    stream_ingest_command,
)
from pipelines.training.commands import labels_app, training_set_command

app = typer.Typer(
    name="feature-platform",
    help="Spark feature store and training-data platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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
    typer.echo(
        f"redis          : {conf.redis_url or '(local redis-server: started by `redis start`, the demo and materialize)'}"
    )
    typer.echo(
        f"kafka          : {conf.kafka_bootstrap_servers or '(local broker: started by `kafka start` and `replay`)'}"
    )


# The command bodies live next to the code they drive; registered here in pipeline order.
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
app.add_typer(kafka_app, name="kafka")
app.command("replay")(replay_command)
app.command("stream")(stream_command)
app.command("stream-ingest")(stream_ingest_command)
app.add_typer(labels_app, name="labels")
app.command("training-set")(training_set_command)
app.command("consistency")(consistency_command)
app.command("drift")(drift_command)
app.command("model-scores")(model_scores_command)
app.command("demo")(demo_command)


def main() -> None:
    app(prog_name="feature-platform")


if __name__ == "__main__":
    main()
