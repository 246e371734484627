"""A model's scores on a scored table: how their distribution moved from the training scores,
how well calibrated they are, and the label rate.

Calibration is measured over `CALIBRATION_BINS` bins of the score (one Spark aggregation):
equal-width bins of [0, 1], the usual definition, or equal-mass bins cut at the scores'
deciles (`binning="quantile"`), which for click-through scores of a few percent keeps the
bins from all falling into the first tenth. Per bin the rows, the mean score and the
observed label rate, drawn as a reliability diagram; the expected calibration error is the
row-weighted mean gap, `sum(n_b / n * |mean score_b - label rate_b|)` (over equal-mass
bins it is known as the adaptive calibration error). Score drift is the drift of one
numeric feature, the score (`pipelines.monitoring.drift`), so it is judged as features are.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features import Feature
from pipelines.errors import PlatformError
from pipelines.monitoring.drift import FeatureDrift, Verdict, measure_drift
from pipelines.monitoring.report import VERDICT_COLOURS, distribution_svg

CALIBRATION_BINS = 10
BINNINGS = ("width", "quantile")
# percentile_approx's accuracy for the equal-mass edges: relative error 1e-4.
EDGE_ACCURACY = 10_000
SIZE, PAD = 260, 30


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    rows: int
    mean_score: float
    label_rate: float


@dataclass(frozen=True)
class ScoreReport:
    rows: int
    label_rate: float | None  # None: no labels known yet
    expected_calibration_error: float | None
    calibration: tuple[CalibrationBin, ...]
    drift: FeatureDrift | None  # None: no training scores to compare with
    binning: str = "width"

    def lines(self) -> list[str]:
        rate = "unknown" if self.label_rate is None else f"{self.label_rate:.3%}"
        out = [f"model scores: {self.rows:,} rows, label rate {rate}"]
        if self.expected_calibration_error is not None:
            out.append(
                f"  expected calibration error {self.expected_calibration_error:.4f} "
                f"over {len(self.calibration)} "
                f"{'equal-width' if self.binning == 'width' else 'equal-mass'} bins"
            )
        if self.drift is not None:
            reasons = "; ".join(self.drift.reasons) or "within thresholds"
            out.append(
                f"  score drift against the training scores: {self.drift.verdict.value} "
                f"(psi {self.drift.psi or 0:.3f}, ks {self.drift.ks_statistic or 0:.3f}; {reasons})"
            )
        return out


def _checked(scored: DataFrame, score: str, label: str | None) -> None:
    for column in [score, *([label] if label else [])]:
        if column not in scored.columns:
            raise PlatformError(f"scored table has no column {column!r} ({scored.columns})")


def score_report(
    scored: DataFrame,
    *,
    score: str = "score",
    label: str | None = None,
    training_scores: DataFrame | None = None,
    binning: str = "width",
) -> ScoreReport:
    """Calibration and label rate of `scored` (when it has labels), and the drift of its
    scores from `training_scores` (a frame with the same score column). `binning`: "width"
    (equal-width bins of [0, 1]) or "quantile" (equal-mass bins at the scores' deciles)."""
    if binning not in BINNINGS:
        raise PlatformError(f"binning must be one of {', '.join(BINNINGS)}, got {binning!r}")
    _checked(scored, score, label)
    value = F.col(score).cast("double")
    rows = scored.where(value.isNotNull())
    drift = None
    if training_scores is not None:
        _checked(training_scores, score, None)
        feature = Feature(score, "float64")
        (drift,) = measure_drift(training_scores.select(score), rows.select(score), [feature])
    if label is None:
        return ScoreReport(rows.count(), None, None, (), drift, binning)
    labelled = rows.where(F.col(label).isNotNull())
    if binning == "width":
        edges = [i / CALIBRATION_BINS for i in range(1, CALIBRATION_BINS)]
        bin_of = F.least(F.floor(value * CALIBRATION_BINS), F.lit(CALIBRATION_BINS - 1))
    else:
        deciles = [i / CALIBRATION_BINS for i in range(1, CALIBRATION_BINS)]
        found_edges = labelled.agg(
            F.percentile_approx(value, deciles, EDGE_ACCURACY).alias("edges")
        ).first()
        edges = sorted(set(found_edges["edges"] or [])) if found_edges else []
        # A bin's number is how many inner edges lie at or below the score.
        bin_of = sum((F.when(value >= edge, 1).otherwise(0) for edge in edges), F.lit(0))
    bounds = [0.0, *edges, 1.0]
    binned = labelled.select(
        bin_of.alias("bin"), value.alias("score"), F.col(label).cast("double").alias("label")
    )
    found = (
        binned.groupBy("bin")
        .agg(F.count(F.lit(1)).alias("n"), F.avg("score").alias("s"), F.avg("label").alias("y"))
        .collect()
    )
    bins = tuple(
        CalibrationBin(
            low=bounds[row["bin"]],
            high=bounds[row["bin"] + 1],
            rows=int(row["n"]),
            mean_score=float(row["s"]),
            label_rate=float(row["y"]),
        )
        for row in sorted(found, key=lambda r: r["bin"])
    )
    total = sum(b.rows for b in bins)
    if not total:
        return ScoreReport(rows.count(), None, None, (), drift, binning)
    ece = sum(b.rows / total * abs(b.mean_score - b.label_rate) for b in bins)
    rate = sum(b.rows * b.label_rate for b in bins) / total
    return ScoreReport(total, rate, ece, bins, drift, binning)


def reliability_svg(report: ScoreReport) -> str:
    """Observed label rate against mean score per bin (dots sized by rows) over the
    diagonal of perfect calibration."""
    span = SIZE - 2 * PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" role="img" '
        'aria-label="reliability diagram">',
        f'<line x1="{PAD}" y1="{SIZE - PAD}" x2="{SIZE - PAD}" y2="{PAD}" stroke="#bbb" '
        'stroke-dasharray="4 3"/>',
        f'<rect x="{PAD}" y="{PAD}" width="{span}" height="{span}" fill="none" stroke="#444"/>',
    ]
    largest = max((b.rows for b in report.calibration), default=1)
    for b in report.calibration:
        x = PAD + b.mean_score * span
        y = SIZE - PAD - b.label_rate * span
        radius = 2 + 6 * (b.rows / largest) ** 0.5
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="#e8772e">'
            f"<title>scores [{b.low:.3g}, {b.high:.3g}): {b.rows:,} rows, mean score "
            f"{b.mean_score:.3f}, label rate {b.label_rate:.3f}</title></circle>"
        )
    parts.append(
        f'<text x="{SIZE / 2}" y="{SIZE - 6}" font-size="10" text-anchor="middle">mean score</text>'
        f'<text x="10" y="{SIZE / 2}" font-size="10" text-anchor="middle" '
        f'transform="rotate(-90 10 {SIZE / 2})">label rate</text></svg>'
    )
    return "".join(parts)


def write_score_report(path: Path, title: str, report: ScoreReport) -> Path:
    verdict = report.drift.verdict if report.drift is not None else Verdict.OK
    drift_part = "" if report.drift is None else distribution_svg(report.drift)
    calibration = reliability_svg(report) if report.calibration else "<p>no labels yet</p>"
    lines = "".join(f"<li>{html.escape(line.strip())}</li>" for line in report.lines())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Model scores: {html.escape(title)}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
.verdict {{ color: white; padding: 0.1em 0.5em; border-radius: 0.3em; }}
figure {{ display: inline-block; margin: 1em 2em 1em 0; vertical-align: top; }}</style></head>
<body><h1><span class="verdict" style="background:{VERDICT_COLOURS[verdict]}">
{verdict.value.upper()}</span> model scores: {html.escape(title)}</h1><ul>{lines}</ul>
<figure>{calibration}<figcaption>reliability (dashed: perfect calibration)</figcaption></figure>
<figure>{drift_part}<figcaption>scores: training (grey) and these (orange)</figcaption></figure>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
