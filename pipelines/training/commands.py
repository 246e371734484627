"""CLI bodies: `feature-platform training-set ...` and `feature-platform labels ctr ...`."""

from __future__ import annotations

import typer

labels_app = typer.Typer(
    help="Build label tables for training sets.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def training_set_command(
    labels: str | None = typer.Option(None, "--labels", help="Labels: a table name or Delta path."),
    feature_service: str | None = typer.Option(None, "--feature-service", help="Feature service."),
    features: str | None = typer.Option(
        None, "--features", help="Comma-separated view:feature references."
    ),
    output: str | None = typer.Option(None, "--output", help="Delta path or table to write."),
    timestamp_column: str = typer.Option("event_timestamp", "--timestamp-column"),
    mode: str = typer.Option(
        "feast",
        "--mode",
        help=(
            "Which values a label at t gets: feast (latest row by event time, as Feast), "
            "known (versions known at t), serving (what the online store served at t), "
            "realtime (real-time views at exact t, sawtooth windows; the others as served)."
        ),
    ),
    reproduce_from: str | None = typer.Option(
        None,
        "--reproduce",
        help="Rebuild this training set from the versions it recorded and check it is identical.",
    ),
) -> None:
    """Build a point-in-time-correct training set (or reproduce one with --reproduce)."""
    from pipelines.reporting import run_reporting_errors

    if reproduce_from is not None:
        run_reporting_errors(_reproduce, reproduce_from, output)
        return
    run_reporting_errors(_build, labels, feature_service, features, output, timestamp_column, mode)


@labels_app.command("ctr")
def ctr_command(
    start: str = typer.Option(..., "--start", help="Interval start (UTC), e.g. 2026-01-01."),
    end: str = typer.Option(..., "--end", help="Interval end (UTC, exclusive)."),
    output: str = typer.Option(..., "--output", help="Delta path or table to write."),
    allow_immature: bool = typer.Option(
        False,
        "--allow-immature",
        help="Build before late clicks can all have arrived (labels may still change).",
    ),
) -> None:
    """Click labels: one row per clean ad impression, clicked = click within 30 minutes."""
    from pipelines.reporting import run_reporting_errors

    run_reporting_errors(_ctr, start, end, output, allow_immature)


def _build(
    labels: str | None,
    feature_service: str | None,
    features: str | None,
    output: str | None,
    timestamp_column: str,
    mode: str,
) -> None:
    from pipelines.errors import PlatformError
    from pipelines.progress import spark_progress
    from pipelines.reporting import parse_names
    from pipelines.spark import get_spark
    from pipelines.training import build_training_set
    from pipelines.training.reproduce import read_record

    if labels is None or output is None:
        raise PlatformError("--labels and --output are required (or use --reproduce)")
    if (feature_service is None) == (features is None):
        raise PlatformError("give exactly one of --feature-service and --features")
    requested: str | list[str] = (
        feature_service if feature_service is not None else (parse_names(features) or [])
    )
    spark = get_spark("training-set")
    with spark_progress(spark, "training set"):
        written = build_training_set(
            spark,
            labels,
            requested,
            timestamp_column=timestamp_column,
            output=output,
            mode=mode,
        )
    record = read_record(spark, output)
    typer.echo(f"wrote {output}: {written.count()} rows, {len(written.columns)} columns")
    typer.echo(
        f"labels   : {record.labels.origin} (read {record.labels.ref}@v{record.labels.version})"
    )
    for view in record.views:
        typer.echo(f"features : {view.table}@v{view.version} ({len(view.features)} features)")
    typer.echo(f"mode     : {record.mode.value}")
    typer.echo(f"definitions hash: {record.definitions_hash}")


def _reproduce(output: str, into: str | None) -> None:
    from pipelines.errors import PlatformError
    from pipelines.spark import get_spark
    from pipelines.training import delta
    from pipelines.training.reproduce import changed_definitions, compare, read_record, reproduce

    spark = get_spark("training-set-reproduce")
    record = read_record(spark, output)
    rebuilt = reproduce(spark, output, into=into)
    result = compare(delta.read_latest(spark, delta.normalize(output)), rebuilt)
    versions = ", ".join(f"{v.table}@v{v.version}" for v in record.views)
    typer.echo(f"rebuilt {output} from {record.labels.ref}@v{record.labels.version}, {versions}")
    changed = changed_definitions(record)
    if changed:
        typer.echo(
            f"note: declarations of {', '.join(changed)} changed since; "
            "the rebuild used the recorded ones"
        )
    if not result.identical:
        raise PlatformError(
            f"rebuild of {output} differs: {result.missing} recorded rows missing, "
            f"{result.extra} extra rows (of {result.rows})"
        )
    typer.echo(f"identical: {result.rows} rows" + (f", written to {into}" if into else ""))


def _ctr(start: str, end: str, output: str, allow_immature: bool) -> None:
    from pipelines.spark import get_spark
    from pipelines.training.labels import write_ctr_labels

    spark = get_spark("labels-ctr")
    written = write_ctr_labels(
        spark, start=start, end=end, output=output, allow_immature=allow_immature
    )
    typer.echo(f"wrote {output}: {written.count()} label rows in total")
