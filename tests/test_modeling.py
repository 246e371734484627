from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.modeling import train_logistic_baseline


def _frame(spark, seed: int, informative: bool):
    rng = np.random.default_rng(seed)
    n = 600
    ctr = rng.uniform(0, 0.2, n)
    plan = rng.choice(["basic", "premium"], n)
    signal = ctr * 10 + (plan == "premium") * 1.0 - 1.5
    p = 1 / (1 + np.exp(-signal)) if informative else np.full(n, 0.4)
    clicked = (rng.uniform(0, 1, n) < p).astype("int64")
    pdf = pd.DataFrame({"ctr": ctr, "plan": plan, "clicked": clicked})
    pdf.loc[::17, "ctr"] = np.nan  # missing features must not break training
    return spark.createDataFrame(pdf)


def test_baseline_finds_signal_and_reports_chance_without_it(spark):
    kwargs = {"label": "clicked", "features": ["ctr", "plan"]}
    with_signal = train_logistic_baseline(_frame(spark, 1, True), _frame(spark, 2, True), **kwargs)
    without = train_logistic_baseline(_frame(spark, 3, False), _frame(spark, 4, False), **kwargs)
    assert with_signal.test_rows == 600
    assert with_signal.auc > 0.65
    assert abs(without.auc - 0.5) < 0.1
    scores = with_signal.test_scores.collect()
    assert len(scores) == 600 and all(0.0 <= row["score"] <= 1.0 for row in scores)
    # A logistic regression is calibrated on its own training data: mean score = label rate.
    train = with_signal.train_scores.agg({"score": "avg", "label": "avg"}).collect()[0]
    assert train["avg(score)"] == pytest.approx(train["avg(label)"], abs=0.02)
