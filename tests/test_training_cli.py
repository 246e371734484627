"""`feature-platform labels ctr` and `feature-platform training-set`, end to end in-process."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from training_oracle import feature_row, write_feature_table
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.delta_io import replace_where
from pipelines.tables import CLEAN_EVENTS, clean_table

AD_IMPRESSIONS = CLEAN_EVENTS["ad_impressions"]
CLEAN_AD_CLICKS = CLEAN_EVENTS["ad_clicks"]

B = datetime(2026, 3, 2)


def at(minutes: float) -> datetime:
    return B + timedelta(minutes=minutes)


def write_clean_ads(spark) -> None:
    impressions = [
        (f"i{n}", member, ad, "home", at(minutes), at(minutes), at(minutes).date())
        for n, (member, ad, minutes) in enumerate([(1, 10, 5), (1, 11, 70), (2, 10, 130)])
    ]
    # The last click arrived the next afternoon: the labels of 2026-03-02 are mature.
    clicks = [
        ("i0", 1, 10, at(20), at(20), at(20).date()),
        ("i9", 3, 12, at(38 * 60 + 10), at(38 * 60 + 10), at(38 * 60 + 10).date()),
    ]
    for name, rows, schema in (
        ("ad_impressions", impressions, AD_IMPRESSIONS),
        ("ad_clicks", clicks, CLEAN_AD_CLICKS),
    ):
        replace_where(
            spark.createDataFrame(rows, schema),
            clean_table(name),
            predicate="true",
            partition_by=("event_date",),
        )


@pytest.mark.slow
def test_labels_then_training_set_then_reproduce(spark, tmp_path):
    runner = CliRunner()
    write_clean_ads(spark)
    write_feature_table(
        spark,
        "ad_performance",
        [feature_row("ad_performance", 10, B, B, ad_clicks_count_1d=3)],
    )
    labels = str(tmp_path / "ctr_labels")
    result = runner.invoke(
        app, ["labels", "ctr", "--start", "2026-03-02", "--end", "2026-03-03", "--output", labels]
    )
    assert result.exit_code == 0, result.output
    assert "3 label rows" in result.output
    later = runner.invoke(
        app, ["labels", "ctr", "--start", "2026-03-03", "--end", "2026-03-04", "--output", labels]
    )
    assert later.exit_code == 2
    assert later.output.startswith("error: click labels of [2026-03-03")

    output = str(tmp_path / "training_set")
    args = ["training-set", "--labels", labels, "--features", "ad_performance:ad_clicks_count_1d"]
    result = runner.invoke(app, [*args, "--output", output])
    assert result.exit_code == 0, result.output
    assert "3 rows, 7 columns" in result.output
    rows = spark.read.format("delta").load(output).orderBy("impression_id").collect()
    assert [(r.clicked, r.ad_clicks_count_1d) for r in rows] == [(1, 3), (0, None), (0, 3)]

    result = runner.invoke(app, ["training-set", "--reproduce", output])
    assert result.exit_code == 0, result.output
    assert "identical: 3 rows" in result.output

    result = runner.invoke(
        app, ["training-set", "--labels", labels, "--features", "nope:x", "--output", output]
    )
    assert result.exit_code == 2
    assert "error: unknown feature view 'nope'" in result.output


def test_training_set_needs_exactly_one_feature_option(tmp_path):
    result = CliRunner().invoke(
        app, ["training-set", "--labels", "x.y", "--output", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "exactly one of --feature-service and --features" in result.output
