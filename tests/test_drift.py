"""Drift measured in Spark against a brute-force numpy/scipy computation on the same rows,
no false alarm between samples of one population, and a shift named where it happened."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from features import REGISTRY
from pipelines.monitoring.drift import Verdict, measure_drift

# Columns shaped as the feature tables hold them: counts with many ties and zeros, a
# long-tailed sum, an average that is null for empty windows, a last category.
FEATURES = {
    f.name: f
    for f in REGISTRY.view("member_engagement").features
    if f.name
    in ("plays_count_7d", "watch_seconds_sum_7d", "watch_seconds_avg_7d", "device_last_28d")
}
DEVICES = ["tv", "mobile", "web", "tablet"]


def _sample(rng: np.random.Generator, rows: int, *, shift_watch: float = 1.0) -> pd.DataFrame:
    plays = rng.poisson(3.0, rows)
    watch = np.where(plays > 0, rng.lognormal(7.0, 1.0, rows) * plays * shift_watch, 0.0)
    avg = np.where(plays > 0, watch / np.maximum(plays, 1), np.nan)
    device = rng.choice(DEVICES, rows, p=[0.5, 0.3, 0.15, 0.05]).astype(object)
    device[rng.random(rows) < 0.03] = None
    return pd.DataFrame(
        {
            "plays_count_7d": plays.astype("int64"),
            "watch_seconds_sum_7d": watch,
            "watch_seconds_avg_7d": avg,
            "device_last_28d": device,
        }
    )


def _frame(spark, df: pd.DataFrame):
    schema = (
        "plays_count_7d bigint, watch_seconds_sum_7d double, watch_seconds_avg_7d double, "
        "device_last_28d string"
    )
    rows = [
        tuple(None if isinstance(v, float) and np.isnan(v) else v for v in row)
        for row in df.itertuples(index=False)
    ]
    return spark.createDataFrame(rows, schema)


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(7)
    return {
        "reference": _sample(rng, 6000),
        "same": _sample(rng, 5000),
        "shifted": _sample(rng, 5000, shift_watch=2.5),
    }


@pytest.fixture(scope="module")
def measured(spark, samples):
    frames = {name: _frame(spark, df) for name, df in samples.items()}
    features = list(FEATURES.values())
    return {
        name: {d.feature: d for d in measure_drift(frames["reference"], frames[name], features)}
        for name in ("same", "shifted")
    }


def _psi(reference: np.ndarray, current: np.ndarray) -> float:
    r, c = np.maximum(reference, 1e-4), np.maximum(current, 1e-4)
    return float(np.sum((c - r) * np.log(c / r)))


def _decile_shares(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.unique(np.quantile(reference, np.arange(1, 10) / 10, method="inverted_cdf"))
    bins = [-np.inf, *edges, np.inf]
    ref = np.histogram(reference, bins)[0] / len(reference)
    cur = np.histogram(current, bins)[0] / len(current)
    return ref, cur


@pytest.mark.parametrize("current", ["same", "shifted"])
@pytest.mark.parametrize("name", ["plays_count_7d", "watch_seconds_sum_7d", "watch_seconds_avg_7d"])
def test_numeric_metrics_match_scipy(samples, measured, current, name):
    reference = samples["reference"][name].dropna().to_numpy(dtype=float)
    values = samples[current][name].dropna().to_numpy(dtype=float)
    found = measured[current][name]
    ref_shares, cur_shares = _decile_shares(reference, values)
    # Decile edges from approximate quantiles (relative error 0.001) move a few rows.
    assert found.psi == pytest.approx(_psi(ref_shares, cur_shares), abs=0.01, rel=0.1)
    assert found.js_distance == pytest.approx(
        distance.jensenshannon(ref_shares, cur_shares, base=2), abs=0.02
    )
    assert found.ks_statistic == pytest.approx(
        stats.ks_2samp(reference, values).statistic, abs=0.02
    )
    wasserstein = stats.wasserstein_distance(reference, values) / reference.std()
    assert found.wasserstein_normed == pytest.approx(wasserstein, abs=0.01, rel=0.05)
    assert found.reference_mean == pytest.approx(reference.mean())
    assert found.current_mean == pytest.approx(values.mean())
    frame = samples[current]
    assert found.current_null_rate == pytest.approx(frame[name].isna().mean())
    assert found.current_rows == len(frame)


@pytest.mark.parametrize("current", ["same", "shifted"])
def test_categorical_metrics_match_scipy(samples, measured, current):
    name = "device_last_28d"
    ref = samples["reference"][name].value_counts()
    cur = samples[current][name].value_counts()
    categories = sorted(set(ref.index) | set(cur.index))
    table = np.vstack([[ref.get(c, 0) for c in categories], [cur.get(c, 0) for c in categories]])
    found = measured[current][name]
    assert found.chi_squared_p_value == pytest.approx(
        stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9
    )
    shares = table / table.sum(axis=1, keepdims=True)
    assert found.js_distance == pytest.approx(
        distance.jensenshannon(shares[0], shares[1], base=2), abs=1e-12
    )
    assert found.current_null_rate == pytest.approx(samples[current][name].isna().mean())


def test_samples_of_one_population_raise_no_alarm(measured):
    assert {d.feature: d.verdict for d in measured["same"].values()} == dict.fromkeys(
        FEATURES, Verdict.OK
    )


def test_a_shift_is_named_where_it_happened(measured):
    verdicts = {d.feature: d.verdict for d in measured["shifted"].values()}
    assert verdicts["watch_seconds_sum_7d"] is Verdict.ALERT
    assert verdicts["watch_seconds_avg_7d"] is Verdict.ALERT
    assert verdicts["plays_count_7d"] is Verdict.OK
    assert verdicts["device_last_28d"] is Verdict.OK
    assert "psi" in measured["shifted"]["watch_seconds_sum_7d"].reasons[0]
