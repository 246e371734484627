"""Body of `feature-platform drift`: feature drift as a command; exit 1 on an alert."""

from __future__ import annotations

import typer

from pipelines.errors import PlatformError
from pipelines.interval import Interval
from pipelines.reporting import parse_names, parse_view_names, run_reporting_errors, run_step


def _drift(
    start: str,
    end: str,
    reference: str | None,
    reference_start: str | None,
    reference_end: str | None,
    features: str | None,
    views: str | None,
    current_served: str | None,
) -> None:
    from pipelines.monitoring.job import ServedLog
    from pipelines.steps import DRIFT

    current = Interval.parse(start, end)
    if reference is not None and (reference_start or reference_end):
        raise PlatformError("give --reference or --reference-start/--reference-end, not both")
    if reference is None:
        if not (reference_start and reference_end):
            raise PlatformError(
                "no reference: give --reference <training set> or --reference-start/--reference-end"
            )
        baseline: Interval | str = Interval.parse(reference_start, reference_end)
    else:
        baseline = reference
    run_step(
        DRIFT,
        current,
        reference=baseline,
        current=ServedLog(current_served, current) if current_served else None,
        features=parse_names(features),
        views=parse_view_names(views),
    )


def drift_command(
    start: str = typer.Option(..., "--start", help="Start of the current interval (UTC)"),
    end: str = typer.Option(..., "--end", help="End of the current interval (UTC, exclusive)"),
    reference: str | None = typer.Option(
        None,
        "--reference",
        help="A training set (its Delta directory) or a table with feature columns",
    ),
    reference_start: str | None = typer.Option(
        None, "--reference-start", help="Or: start of a reference interval of the feature tables"
    ),
    reference_end: str | None = typer.Option(
        None, "--reference-end", help="Or: end of the reference interval"
    ),
    features: str | None = typer.Option(
        None, "--features", help="Comma-separated view:feature references (default: all)"
    ),
    views: str | None = typer.Option(None, "--views", help="Comma-separated views (default: all)"),
    current_served: str | None = typer.Option(
        None,
        "--current-served",
        help="A feature service: compare what it served in [start, end) (its request log) "
        "instead of the feature tables' rows",
    ),
) -> None:
    """Measure each feature's drift from a reference (PSI, Jensen-Shannon, KS, Wasserstein,
    chi-squared, null rates), append it to monitoring.drift_metrics, write an HTML report;
    exit 1 if any feature is past its alert threshold."""
    run_reporting_errors(
        _drift,
        start,
        end,
        reference,
        reference_start,
        reference_end,
        features,
        views,
        current_served,
    )


def _model_scores(
    scored: str, score: str, label: str | None, reference: str | None, binning: str
) -> None:
    from datetime import UTC, datetime

    from pipelines.config import settings
    from pipelines.monitoring.drift import Verdict
    from pipelines.monitoring.job import read_table
    from pipelines.monitoring.scores import score_report, write_score_report
    from pipelines.spark import get_spark
    from pipelines.steps import StepFailedError

    spark = get_spark("model-scores")
    training = None if reference is None else read_table(spark, reference)
    report = score_report(
        read_table(spark, scored),
        score=score,
        label=label,
        training_scores=training,
        binning=binning,
    )
    for line in report.lines():
        typer.echo(line)
    page = settings().reports_dir / "model_scores" / f"{datetime.now(UTC):%Y%m%dT%H%M%S}.html"
    typer.echo(f"  report: {write_score_report(page, scored, report)}")
    if report.drift is not None and report.drift.verdict is Verdict.ALERT:
        raise StepFailedError(f"the scores drifted: {'; '.join(report.drift.reasons)}")


def model_scores_command(
    scored: str = typer.Option(..., "--scored", help="A scored table (Delta directory or name)"),
    score: str = typer.Option("score", "--score", help="Its column of scores in [0, 1]"),
    label: str | None = typer.Option(None, "--label", help="Its label column, when known"),
    reference: str | None = typer.Option(
        None, "--reference", help="The training scores (same score column) to compare with"
    ),
    binning: str = typer.Option(
        "width",
        "--binning",
        help="Calibration bins: width (ten equal-width bins of [0, 1]) or quantile (ten "
        "equal-mass bins at the scores' deciles, for scores of a few percent)",
    ),
) -> None:
    """Report a model's scores: calibration (reliability diagram, expected calibration
    error) and label rate when labels are known, and the drift of the scores from the
    training scores; exit 1 if the scores drifted past the alert threshold."""
    run_reporting_errors(_model_scores, scored, score, label, reference, binning)
