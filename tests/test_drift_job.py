"""`drift` on feature tables the pipeline computed from generated days: no alarm between two
ordinary days, the generator's device-mix shift caught and named, the trend in Delta, the
report on disk, a training-set reference, and the command's exit codes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.compute import compute
from pipelines.generate import generate
from pipelines.ingest import ingest
from pipelines.interval import Interval
from pipelines.monitoring.drift import Verdict
from pipelines.monitoring.job import drift, feature_values, metrics_table

DAY0 = datetime(2026, 5, 5, tzinfo=UTC)  # a Tuesday: four weekdays of equal traffic
DAYS = [Interval(DAY0 + timedelta(days=i), DAY0 + timedelta(days=i + 1)) for i in range(4)]
SHIFT_FROM = DAYS[3].start
# Features whose windows are full after the first day of history; the longer windows
# are still filling up over these days, which is a drift of its own.
FEATURES = [
    "member_engagement:plays_count_1h",
    "member_engagement:plays_count_1d",
    "member_engagement:watch_seconds_sum_1d",
    "member_engagement:device_last_28d",
]


@pytest.fixture(scope="module")
def computed(spark):
    generate(
        spark,
        start=DAYS[0].start,
        end=DAYS[3].end,
        scale=0.3,
        shift="device_mix",
        shift_from=SHIFT_FROM,
    )
    ingest(spark, start=DAYS[0].start, end=DAYS[3].end)
    compute(spark, start=DAYS[0].start, end=DAYS[3].end, views=["member_engagement"])


@pytest.fixture(scope="module")
def ordinary(spark, computed):
    return drift(spark, current=DAYS[2], reference=DAYS[1], features=FEATURES)


@pytest.fixture(scope="module")
def shifted(spark, computed, ordinary):
    return drift(spark, current=DAYS[3], reference=DAYS[2], features=FEATURES)


def _verdicts(report) -> dict[str, Verdict]:
    return {drift.feature: drift.verdict for _, drift in report.features}


def test_two_ordinary_days_raise_no_alarm(ordinary):
    assert _verdicts(ordinary) == dict.fromkeys([f.split(":")[1] for f in FEATURES], Verdict.OK)
    assert ordinary.verdict is Verdict.OK


def test_the_device_mix_shift_is_caught_and_named(shifted):
    verdicts = _verdicts(shifted)
    assert verdicts.pop("device_last_28d") is Verdict.ALERT
    assert set(verdicts.values()) == {Verdict.OK}  # counts and watch time did not move
    assert shifted.named(Verdict.ALERT) == ["device_last_28d"]
    assert any("ALERT" in line for line in shifted.lines())


def test_every_run_appends_its_metrics_for_the_trend(spark, ordinary, shifted):
    trend = spark.sql(
        f"SELECT run_id, score, verdict FROM {metrics_table()} "
        "WHERE feature = 'device_last_28d' ORDER BY measured_at"
    ).collect()
    assert [row["run_id"] for row in trend] == [ordinary.run_id, shifted.run_id]
    assert trend[0]["score"] < 0.1 <= 0.2 <= trend[1]["score"]
    runs = spark.table(metrics_table()).groupBy("run_id").count().collect()
    assert {row["count"] for row in runs} == {len(FEATURES)}


def test_the_report_draws_every_feature_most_drifted_first(shifted):
    page = shifted.report_path.read_text()
    assert shifted.report_path.parent.name == "drift"
    assert "<title>Feature drift: alert</title>" in page
    assert page.count("<svg") == len(FEATURES)
    headings = re.findall(r"</span> member_engagement:(\w+)</h2>", page)
    assert headings[0] == "device_last_28d" and len(headings) == len(FEATURES)
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_a_training_set_reference_gives_the_same_scores(spark, tmp_path, computed, shifted):
    from features import REGISTRY

    view = REGISTRY.view("member_engagement")
    reference = tmp_path / "training_set"
    feature_values(spark, view, DAYS[2]).write.format("delta").save(str(reference))
    again = drift(spark, current=DAYS[3], reference=str(reference), features=FEATURES)
    scores = {d.feature: d.score for _, d in again.features}
    assert scores == pytest.approx({d.feature: d.score for _, d in shifted.features})


def test_the_command_exits_1_on_an_alert_and_names_the_feature(computed):
    argv = ["drift", "--start", "2026-05-08", "--end", "2026-05-09"]
    argv += ["--reference-start", "2026-05-07", "--reference-end", "2026-05-08"]
    argv += ["--features", ",".join(FEATURES)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1, result.output
    assert "alert member_engagement:device_last_28d" in result.output
    assert "report: " in result.output


def test_the_command_needs_a_reference():
    result = CliRunner().invoke(app, ["drift", "--start", "2026-05-07", "--end", "2026-05-08"])
    assert result.exit_code == 2
    assert result.output.startswith("error: no reference")


def test_the_daily_check_is_skipped_without_a_training_set_to_compare(computed):
    from pipelines import tasks

    result = tasks.run("drift", DAYS[3].start, DAYS[3].end)
    assert "training set" in result["skipped"]


def test_the_daily_check_fails_naming_the_features_past_alert(
    spark, computed, tmp_path, monkeypatch, capsys
):
    from features import REGISTRY
    from pipelines import tasks
    from pipelines.config import DRIFT_REFERENCE_ENV, settings
    from pipelines.steps import StepFailedError

    view = REGISTRY.view("member_engagement")
    names = [f.split(":")[1] for f in FEATURES]
    model = tmp_path / "model_training_set"
    feature_values(spark, view, DAYS[2]).select(*names).write.format("delta").save(str(model))
    today = settings().ctr_training_set(DAYS[3].start.date())
    feature_values(spark, view, DAYS[3]).select(*names).write.format("delta").save(str(today))
    monkeypatch.setenv(DRIFT_REFERENCE_ENV, str(model))
    with pytest.raises(
        StepFailedError, match=r"drift past the alert threshold in device_last_28d$"
    ):
        tasks.run("drift", DAYS[3].start, DAYS[3].end)
    assert "no request of ctr_model was logged in" in capsys.readouterr().out

    # Once the service's requests of the day are logged, what it served is checked too.
    _serve(None, DAYS[3].start + timedelta(hours=12), _plays_of(spark, DAYS[3]))
    with pytest.raises(StepFailedError, match=r"device_last_28d$"):
        tasks.run("drift", DAYS[3].start, DAYS[3].end)
    printed = capsys.readouterr().out
    assert f"against {model}: OK" in printed.replace("\n", " ").split("served by ctr_model")[1]


def _plays_of(spark, day: Interval) -> list:
    from features import REGISTRY

    rows = feature_values(spark, REGISTRY.view("member_engagement"), day).collect()
    return [row["plays_count_1d"] for row in rows]


def _serve(root, when: datetime, plays: list) -> None:
    """Log one ctr_model request at `when` serving `plays` (one entity row each), written
    by the request logger the online readers use, under `root` (default: the data dir's)."""
    from pipelines.serving.request_log import RequestLog, log_directory

    with RequestLog("ctr_model", sample=1.0, directory=log_directory("ctr_model", root)) as log:
        members = list(range(len(plays)))
        served = {name: [None] * len(plays) for name, _ in log.features}
        served.update(member_id=members, ad_id=[1] * len(plays), plays_count_1d=plays)
        log.record([{"member_id": m, "ad_id": 1} for m in members], served, when)


def test_what_was_served_is_measured_like_the_feature_tables(spark, tmp_path, computed, shifted):
    from pipelines.monitoring.job import ServedLog

    plays = _plays_of(spark, DAYS[3])
    _serve(tmp_path, DAYS[3].start + timedelta(hours=12), plays)
    # Requests outside the interval (its end is excluded) are not part of it.
    _serve(tmp_path, DAYS[2].end - timedelta(seconds=1), [10**6] * 50)
    _serve(tmp_path, DAYS[3].end, [10**6] * 50)
    served = drift(
        spark,
        current=ServedLog("ctr_model", DAYS[3], tmp_path),
        reference=DAYS[2],
        features=["member_engagement:plays_count_1d"],
    )
    [(view, measured)] = served.features
    [expected] = [d for _, d in shifted.features if d.feature == "plays_count_1d"]
    assert (view, measured.current_rows) == ("member_engagement", len(plays))
    assert measured.psi == pytest.approx(expected.psi)
    assert measured.ks_statistic == pytest.approx(expected.ks_statistic)
    assert measured.current_mean == pytest.approx(expected.current_mean)
    assert "served by ctr_model" in served.current


def test_the_command_compares_what_a_service_served(computed):
    argv = ["drift", "--start", "2026-05-01", "--end", "2026-05-02", "--current-served"]
    argv += ["ctr_model", "--reference-start", "2026-05-07", "--reference-end", "2026-05-08"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: no request of ctr_model was logged in [2026-05-01")
