"""Model-score monitoring against numpy on the same rows: calibration per bin, the expected
calibration error, the label rate, and score drift from the training scores."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.monitoring.drift import Verdict
from pipelines.monitoring.scores import CALIBRATION_BINS, score_report, write_score_report


def _scored(spark, rng, rows: int, *, shift: float = 0.0, calibrated: bool = True):
    scores = np.clip(rng.beta(2.0, 30.0, rows) + shift, 0.0, 1.0)  # CTR-like: a few percent
    truth = scores if calibrated else scores / 2
    labels = (rng.random(rows) < truth).astype(int)
    frame = spark.createDataFrame(
        [(float(s), int(y)) for s, y in zip(scores, labels, strict=True)],
        "score double, clicked int",
    )
    return frame, scores, labels


def _ece(scores: np.ndarray, labels: np.ndarray) -> float:
    bins = np.minimum((scores * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    total = 0.0
    for b in np.unique(bins):
        inside = bins == b
        total += inside.mean() * abs(scores[inside].mean() - labels[inside].mean())
    return float(total)


@pytest.fixture(scope="module")
def samples(spark):
    rng = np.random.default_rng(11)
    return {
        "training": _scored(spark, rng, 6000),
        "same": _scored(spark, rng, 5000),
        "miscalibrated": _scored(spark, rng, 5000, calibrated=False),
        "shifted": _scored(spark, rng, 5000, shift=0.05),
    }


@pytest.mark.parametrize("name", ["same", "miscalibrated"])
def test_calibration_and_label_rate_match_numpy(samples, name):
    frame, scores, labels = samples[name]
    report = score_report(frame, label="clicked")
    assert report.rows == len(scores)
    assert report.label_rate == pytest.approx(labels.mean())
    assert report.expected_calibration_error == pytest.approx(_ece(scores, labels), abs=1e-9)
    for b in report.calibration:
        inside = (scores >= b.low) & (scores < b.high) if b.high < 1 else scores >= b.low
        assert b.rows == inside.sum()
        assert b.label_rate == pytest.approx(labels[inside].mean())


def test_equal_mass_bins_hold_a_tenth_of_the_rows_each_and_match_numpy(samples):
    frame, scores, labels = samples["miscalibrated"]
    report = score_report(frame, label="clicked", binning="quantile")
    assert len(report.calibration) == CALIBRATION_BINS
    assert "equal-mass bins" in report.lines()[1]
    # Scores of a few percent: equal-width bins would leave most of [0, 1] empty.
    assert report.calibration[-1].low < 0.2
    expected_ece = 0.0
    for b in report.calibration:
        inside = (scores >= b.low) & (scores < b.high) if b.high < 1 else scores >= b.low
        assert b.rows == inside.sum()
        assert b.rows == pytest.approx(len(scores) / CALIBRATION_BINS, rel=0.05)
        assert b.mean_score == pytest.approx(scores[inside].mean())
        assert b.label_rate == pytest.approx(labels[inside].mean())
        expected_ece += inside.mean() * abs(scores[inside].mean() - labels[inside].mean())
    assert report.expected_calibration_error == pytest.approx(expected_ece, abs=1e-9)
    # The edges are the scores' deciles (percentile_approx, relative error 1e-4).
    edges = [b.low for b in report.calibration[1:]]
    assert edges == pytest.approx(list(np.quantile(scores, np.arange(1, 10) / 10)), rel=1e-2)


def test_a_model_that_overestimates_has_the_larger_calibration_error(samples):
    calibrated = score_report(samples["same"][0], label="clicked")
    overconfident = score_report(samples["miscalibrated"][0], label="clicked")
    assert overconfident.expected_calibration_error > 3 * calibrated.expected_calibration_error


def test_score_drift_is_judged_against_the_training_scores(samples, tmp_path):
    training = samples["training"][0]
    same = score_report(samples["same"][0], label="clicked", training_scores=training)
    shifted = score_report(samples["shifted"][0], label="clicked", training_scores=training)
    assert same.drift is not None and same.drift.verdict is Verdict.OK
    assert shifted.drift is not None and shifted.drift.verdict is Verdict.ALERT
    page = write_score_report(tmp_path / "scores.html", "shifted", shifted).read_text()
    assert page.count("<circle") == len(shifted.calibration)
    assert "ALERT" in page and page.count("<svg") == 2


def test_scores_without_labels_report_drift_only(samples):
    frame = samples["shifted"][0].drop("clicked")
    report = score_report(frame, training_scores=samples["training"][0])
    assert report.label_rate is None and report.expected_calibration_error is None
    assert report.drift is not None and report.drift.verdict is Verdict.ALERT
    assert "label rate unknown" in report.lines()[0]


def test_the_command_reports_and_exits_1_when_the_scores_drifted(samples, tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    paths = {}
    for name in ("training", "same", "shifted"):
        paths[name] = str(tmp_path / name)
        samples[name][0].write.format("delta").save(paths[name])
    argv = ["model-scores", "--label", "clicked", "--reference", paths["training"]]
    calm = CliRunner().invoke(app, [*argv, "--scored", paths["same"]])
    assert calm.exit_code == 0, calm.output
    assert "expected calibration error" in calm.output and "report: " in calm.output
    drifted = CliRunner().invoke(app, [*argv, "--scored", paths["shifted"]])
    assert drifted.exit_code == 1
    assert "error: the scores drifted: psi" in drifted.output
