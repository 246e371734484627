"""Drift of features between a reference and a current sample, measured in Spark.

A bounded number of passes, whatever the number of features (four per side):
1. approximate quantiles of every numeric feature (`approxQuantile`, relative error
   `RELATIVE_ERROR`), at every percentile;
2. row count, null counts, means and standard deviations;
3. one histogram of every feature: numeric values bucketed (Spark's `Bucketizer`, a
   binary search) on a grid made of both sides' percentiles, categorical values counted
   by category (the `MAX_CATEGORIES` most frequent in the reference, the rest as one);
4. the mean excess of every numeric feature past its grid's first and last edges.
The driver then turns the two histograms of a feature into its scores:
- PSI and Jensen-Shannon distance over ten bins cut at the reference's deciles (the
  deciles are on the grid, so the bins are unions of grid cells);
- KS statistic: the largest gap between the two CDFs at the grid's edges. Within a grid
  cell it can only be missed by the cell's mass, so the error is at most about one
  percentile plus the quantiles' relative error;
- normed Wasserstein distance: the area between the CDFs, divided by the reference's
  standard deviation (Evidently's normalisation): over the grid cell by cell, and past
  its ends from the mean excesses (`_wasserstein_area`);
- categorical features: Jensen-Shannon distance, PSI and the chi-squared test over the
  categories.
Nulls are left out of the distributions and measured by the null rates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
from pyspark.ml.feature import Bucketizer
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from scipy import stats
from scipy.spatial import distance

from features import Feature
from features.monitoring import drift_thresholds

RELATIVE_ERROR = 0.001
PERCENTILES = [i / 100 for i in range(1, 100)]
DECILES = [i / 10 for i in range(1, 10)]
MAX_CATEGORIES = 50
OTHER = "__other__"
# Frequencies of empty bins in PSI: log(0) has no value; Evidently uses the same floor.
EMPTY_BIN = 1e-4
NUMERIC_TYPES = ("int64", "float64", "date", "timestamp")


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    ALERT = "alert"


@dataclass(frozen=True)
class Histogram:
    """Frequencies of one side over shared cells: numeric grid cells or categories."""

    labels: tuple[str, ...]
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)

    def shares(self) -> np.ndarray:
        counts = np.asarray(self.counts, dtype=float)
        return counts / counts.sum() if counts.sum() else counts


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    value_type: str
    categorical: bool
    reference_rows: int
    current_rows: int
    score_name: str  # "psi" or "js_distance": what the verdict judges
    score: float | None
    psi: float | None
    js_distance: float | None
    ks_statistic: float | None = None
    wasserstein_normed: float | None = None
    chi_squared_p_value: float | None = None
    reference_null_rate: float | None = None
    current_null_rate: float | None = None
    reference_mean: float | None = None
    current_mean: float | None = None
    reference_quantiles: dict[str, float | None] = field(default_factory=dict)
    current_quantiles: dict[str, float | None] = field(default_factory=dict)
    verdict: Verdict = Verdict.OK
    reasons: tuple[str, ...] = ()
    # What the report draws: both sides over the same bins (deciles or categories).
    bins: tuple[str, ...] = ()
    reference_shares: tuple[float, ...] = ()
    current_shares: tuple[float, ...] = ()

    @property
    def null_rate_delta(self) -> float | None:
        if self.reference_null_rate is None or self.current_null_rate is None:
            return None
        return self.current_null_rate - self.reference_null_rate


def _common(feature: Feature, reference: _Side, current: _Side) -> dict[str, Any]:
    """The fields every feature's drift has, whatever its type."""
    categorical = is_categorical(feature)
    return {
        "feature": feature.name,
        "value_type": feature.value_type,
        "categorical": categorical,
        "reference_rows": reference.rows,
        "current_rows": current.rows,
        "score_name": "js_distance" if categorical else "psi",
        "reference_null_rate": _rate(reference.nulls[feature.name], reference.rows),
        "current_null_rate": _rate(current.nulls[feature.name], current.rows),
    }


def _shares(counts: np.ndarray) -> np.ndarray:
    return counts / counts.sum() if counts.sum() else counts


def is_categorical(feature: Feature) -> bool:
    return feature.value_type not in NUMERIC_TYPES


def _as_number(column: str, value_type: str) -> Column:
    """Numeric values of a column: dates as days, timestamps as seconds since the epoch."""
    if value_type == "date":
        return F.datediff(F.col(column), F.lit("1970-01-01").cast("date")).cast("double")
    if value_type == "timestamp":
        return F.unix_micros(F.col(column)).cast("double") / 1e6
    return F.col(column).cast("double")


def _numbers(df: DataFrame, features: Sequence[Feature]) -> DataFrame:
    """The numeric features as doubles, NaN made null (it is a missing value here)."""
    columns = []
    for f in features:
        value = _as_number(f.name, f.value_type)
        columns.append(F.when(~F.isnan(value), value).alias(f.name))
    return df.select(*columns)


@dataclass(frozen=True)
class _Side:
    rows: int
    nulls: dict[str, int]
    means: dict[str, float | None]
    stddevs: dict[str, float | None]
    quantiles: dict[str, list[float]]


def _profile(numbers: DataFrame, categories: DataFrame, numeric: list[str]) -> _Side:
    """Passes 1 and 2 of one side."""
    aggregates = [F.count(F.lit(1)).alias("__rows")]
    aggregates += [F.count(F.col(n)).alias(f"{n}__n") for n in numeric]
    aggregates += [F.avg(F.col(n)).alias(f"{n}__mean") for n in numeric]
    aggregates += [F.stddev_pop(F.col(n)).alias(f"{n}__std") for n in numeric]
    stats_row = numbers.agg(*aggregates).collect()[0] if numeric else None
    category_counts = (
        categories.agg(
            F.count(F.lit(1)).alias("__rows"),
            *[F.count(F.col(c)).alias(f"{c}__n") for c in categories.columns],
        ).collect()[0]
        if categories.columns
        else None
    )
    any_row = stats_row if stats_row is not None else category_counts
    rows = int(any_row["__rows"]) if any_row is not None else 0
    nulls: dict[str, int] = {}
    means: dict[str, float | None] = {}
    stddevs: dict[str, float | None] = {}
    for n in numeric:
        assert stats_row is not None
        nulls[n] = rows - int(stats_row[f"{n}__n"])
        means[n] = stats_row[f"{n}__mean"]
        stddevs[n] = stats_row[f"{n}__std"]
    for c in categories.columns:
        assert category_counts is not None
        nulls[c] = rows - int(category_counts[f"{c}__n"])
    quantiles: dict[str, list[float]] = {}
    if numeric and rows:
        found = numbers.approxQuantile(numeric, PERCENTILES, RELATIVE_ERROR)
        quantiles = dict(zip(numeric, found, strict=True))
    return _Side(rows, nulls, means, stddevs, quantiles)


def _grid(reference: list[float], current: list[float]) -> list[float]:
    """Bucket splits: both sides' percentiles, strictly increasing, open at both ends."""
    edges = sorted({float(x) for x in [*reference, *current] if x is not None})
    return [-math.inf, *edges, math.inf]


def _numeric_histograms(
    numbers: DataFrame, numeric: list[str], grids: dict[str, list[float]]
) -> dict[str, list[int]]:
    """Pass 3 for the numeric features: counts per grid cell (cell i is [s_i, s_i+1))."""
    histograms = {n: [0] * (len(grids[n]) - 1) for n in numeric}
    # A grid needs an edge: a feature without a single value has nothing to bucket.
    numeric = [n for n in numeric if len(grids[n]) > 2]
    if not numeric:
        return histograms
    bucketed = [f"{n}__bucket" for n in numeric]
    bucketizer = Bucketizer(
        splitsArray=[grids[n] for n in numeric],
        inputCols=numeric,
        outputCols=bucketed,
        handleInvalid="skip",
    )
    # `skip` drops a row with a null in any column, so each column is bucketed with
    # its nulls replaced by a value the grid holds, and those rows are not counted.
    filled = numbers.select(
        *[F.coalesce(F.col(n), F.lit(grids[n][1])).alias(n) for n in numeric],
        *[F.col(n).isNull().alias(f"{n}__null") for n in numeric],
    )
    cells = bucketizer.transform(filled)
    pairs = F.explode(
        F.array(
            *[
                F.struct(F.lit(i).alias("feature"), F.col(f"{n}__bucket").cast("int").alias("cell"))
                for i, n in enumerate(numeric)
            ]
        )
    ).alias("pair")
    nulls = F.array(*[F.col(f"{n}__null") for n in numeric])
    counted = (
        cells.select(pairs, nulls.alias("nulls"))
        .where(~F.element_at("nulls", F.col("pair.feature") + 1))
        .groupBy("pair.feature", "pair.cell")
        .count()
        .collect()
    )
    for row in counted:
        histograms[numeric[row["feature"]]][row["cell"]] += int(row["count"])
    return histograms


def _tails(numbers: DataFrame, grids: dict[str, list[float]]) -> dict[str, tuple[float, float]]:
    """Pass 4: how far the values reach past the grid's first and last edges, on average
    (E[(first - x)+], E[(x - last)+]): the Wasserstein area the grid cannot see."""
    gridded = [n for n, grid in grids.items() if len(grid) > 2]
    if not gridded:
        return {}
    sums = []
    for n in gridded:
        first, last = grids[n][1], grids[n][-2]
        sums += [
            F.avg(F.greatest(F.lit(first) - F.col(n), F.lit(0.0))).alias(f"{n}__below"),
            F.avg(F.greatest(F.col(n) - F.lit(last), F.lit(0.0))).alias(f"{n}__above"),
        ]
    row = numbers.agg(*sums).collect()[0]
    return {n: (row[f"{n}__below"] or 0.0, row[f"{n}__above"] or 0.0) for n in gridded}


def _category_counts(categories: DataFrame) -> dict[str, dict[str, int]]:
    """Pass 3 for the categorical features: counts per category (nulls left out)."""
    if not categories.columns:
        return {}
    names = categories.columns
    pairs = F.explode(
        F.array(
            *[
                F.struct(F.lit(i).alias("feature"), F.col(c).alias("value"))
                for i, c in enumerate(names)
            ]
        )
    ).alias("pair")
    counted = (
        categories.select(pairs)
        .where(F.col("pair.value").isNotNull())
        .groupBy("pair.feature", "pair.value")
        .count()
        .collect()
    )
    found: dict[str, dict[str, int]] = {c: {} for c in names}
    for row in counted:
        found[names[row["feature"]]][row["value"]] = int(row["count"])
    return found


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    r = np.maximum(reference, EMPTY_BIN)
    c = np.maximum(current, EMPTY_BIN)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    if not reference.sum() or not current.sum():
        return 0.0
    return float(distance.jensenshannon(reference, current, base=2))


def _decile_cells(grid: list[float], deciles: list[float]) -> list[int]:
    """The grid cells where each decile bin starts (the deciles are grid edges)."""
    starts = [0]
    for edge in sorted(set(deciles)):
        cell = grid.index(edge)
        if cell not in starts:
            starts.append(cell)
    return starts


def _merge_cells(counts: list[int], starts: list[int]) -> np.ndarray:
    bounds = [*starts, len(counts)]
    return np.asarray(
        [sum(counts[bounds[i] : bounds[i + 1]]) for i in range(len(starts))], dtype=float
    )


def _wasserstein_area(
    grid: list[float],
    gaps: np.ndarray,
    tails: tuple[tuple[float, float], tuple[float, float]],
    discrete: bool,
) -> float:
    """The area between the two CDFs. `gaps[j]` is the CDF gap just below split j+1.
    Inside a cell a discrete feature's CDF is flat (its values sit on the edges, which
    are its quantiles): the gap at the cell's right end holds across it. A continuous
    feature's gap moves across the cell: the trapezoid of its two ends. Past the
    first and last edges, the difference of the mean excesses (exact when one CDF stays
    above the other there, as it does under a shift)."""
    widths = np.diff(np.asarray(grid[1:-1], dtype=float))
    inner = gaps[:-1]  # gaps at the finite edges
    if len(widths):
        ends = inner[1:] if discrete else (inner[1:] + inner[:-1]) / 2
        area = float(np.sum(ends * widths))
    else:
        area = 0.0
    (ref_below, ref_above), (cur_below, cur_above) = tails
    return area + abs(ref_below - cur_below) + abs(ref_above - cur_above)


def _numeric_drift(
    feature: Feature,
    reference: _Side,
    current: _Side,
    grid: list[float],
    counts: tuple[list[int], list[int]],
    tails: tuple[tuple[float, float], tuple[float, float]],
) -> FeatureDrift:
    name = feature.name
    ref_counts, cur_counts = counts
    deciles = [reference.quantiles[name][int(q * 100) - 1] for q in DECILES]
    starts = _decile_cells(grid, deciles)
    ref_bins, cur_bins = _merge_cells(ref_counts, starts), _merge_cells(cur_counts, starts)
    ref_shares, cur_shares = _shares(ref_bins), _shares(cur_bins)
    ks = wasserstein = None
    if sum(ref_counts) and sum(cur_counts):
        ref_cdf = np.cumsum(ref_counts) / sum(ref_counts)
        cur_cdf = np.cumsum(cur_counts) / sum(cur_counts)
        gaps = np.abs(ref_cdf - cur_cdf)
        ks = float(gaps.max())
        discrete = feature.value_type in ("int64", "date")
        area = _wasserstein_area(grid, gaps, tails, discrete)
        std = reference.stddevs[name]
        wasserstein = area / std if std else (0.0 if area == 0 else math.inf)
    labels = _bin_labels(grid, starts)
    score = psi(ref_shares, cur_shares) if ref_bins.sum() and cur_bins.sum() else None
    return FeatureDrift(
        **_common(feature, reference, current),
        score=score,
        psi=score,
        js_distance=js_distance(ref_shares, cur_shares),
        ks_statistic=ks,
        wasserstein_normed=wasserstein,
        reference_mean=reference.means[name],
        current_mean=current.means[name],
        reference_quantiles=_named_quantiles(reference.quantiles.get(name)),
        current_quantiles=_named_quantiles(current.quantiles.get(name)),
        bins=labels,
        reference_shares=tuple(float(x) for x in ref_shares),
        current_shares=tuple(float(x) for x in cur_shares),
    )


def _bin_labels(grid: list[float], starts: list[int]) -> tuple[str, ...]:
    labels = []
    bounds = [*starts, len(grid) - 1]
    for i in range(len(starts)):
        low, high = grid[bounds[i]], grid[bounds[i + 1]]
        labels.append(f"[{_short(low)}, {_short(high)})")
    return tuple(labels)


def _short(value: float) -> str:
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= 10 * size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _named_quantiles(found: list[float] | None) -> dict[str, float | None]:
    if not found:
        return {"p10": None, "p50": None, "p90": None}
    return {"p10": found[9], "p50": found[49], "p90": found[89]}


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _categorical_drift(
    feature: Feature,
    reference: _Side,
    current: _Side,
    ref_counts: dict[str, int],
    cur_counts: dict[str, int],
) -> FeatureDrift:
    kept = sorted(ref_counts, key=lambda v: (-ref_counts[v], v))[:MAX_CATEGORIES]
    labels = [*kept, OTHER]

    def histogram(counts: dict[str, int]) -> np.ndarray:
        other = sum(n for v, n in counts.items() if v not in kept)
        return np.asarray([counts.get(v, 0) for v in kept] + [other], dtype=float)

    ref_hist, cur_hist = histogram(ref_counts), histogram(cur_counts)
    if not ref_hist[-1] and not cur_hist[-1]:
        labels, ref_hist, cur_hist = labels[:-1], ref_hist[:-1], cur_hist[:-1]
    ref_shares, cur_shares = _shares(ref_hist), _shares(cur_hist)
    both = ref_hist.sum() and cur_hist.sum()
    p_value = None
    if both and len(labels) > 1:
        table = np.vstack([ref_hist, cur_hist])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] > 1:
            p_value = float(stats.chi2_contingency(table, correction=False).pvalue)
    js = js_distance(ref_shares, cur_shares) if both else None
    return FeatureDrift(
        **_common(feature, reference, current),
        score=js,
        psi=psi(ref_shares, cur_shares) if both else None,
        js_distance=js,
        chi_squared_p_value=p_value,
        bins=tuple(labels),
        reference_shares=tuple(float(x) for x in ref_shares),
        current_shares=tuple(float(x) for x in cur_shares),
    )


def judged(drift: FeatureDrift) -> FeatureDrift:
    """The drift with its verdict and the reasons for it, by the feature's thresholds."""
    limits = drift_thresholds(drift.feature, drift.categorical)
    verdict, reasons = Verdict.OK, []
    checks = [(drift.score_name, drift.score, limits.warn, limits.alert)]
    delta = drift.null_rate_delta
    null_change = None if delta is None else abs(delta)
    checks.append(("null_rate_delta", null_change, limits.null_rate_warn, limits.null_rate_alert))
    for name, value, warn, alert in checks:
        if value is None:
            continue
        if value >= alert:
            verdict = Verdict.ALERT
            reasons.append(f"{name} {value:.3f} >= {alert:g}")
        elif value >= warn:
            verdict = verdict if verdict is Verdict.ALERT else Verdict.WARN
            reasons.append(f"{name} {value:.3f} >= {warn:g}")
    return replace(drift, verdict=verdict, reasons=tuple(reasons))


def measure_drift(
    reference: DataFrame, current: DataFrame, features: Sequence[Feature]
) -> list[FeatureDrift]:
    """The drift of each feature (a column of both frames) from reference to current,
    judged by its thresholds; four Spark passes per side (see the module docstring)."""
    numeric = [f for f in features if not is_categorical(f)]
    categorical = [f for f in features if is_categorical(f)]
    numeric_names = [f.name for f in numeric]
    sides = {}
    for label, df in (("reference", reference), ("current", current)):
        numbers = _numbers(df, numeric)
        categories = df.select(*[F.col(f.name).cast("string") for f in categorical])
        sides[label] = (numbers, categories, _profile(numbers, categories, numeric_names))
    ref_side, cur_side = sides["reference"][2], sides["current"][2]
    grids = {
        n: _grid(ref_side.quantiles.get(n, []), cur_side.quantiles.get(n, []))
        for n in numeric_names
    }
    histograms = {
        label: _numeric_histograms(numbers, numeric_names, grids)
        for label, (numbers, _, _) in sides.items()
    }
    tails = {label: _tails(numbers, grids) for label, (numbers, _, _) in sides.items()}
    categories_found = {
        label: _category_counts(categories) for label, (_, categories, _) in sides.items()
    }
    out = []
    for f in numeric:
        counts = (histograms["reference"][f.name], histograms["current"][f.name])
        if ref_side.quantiles.get(f.name):
            reaches = (tails["reference"][f.name], tails["current"][f.name])
            drift = _numeric_drift(f, ref_side, cur_side, grids[f.name], counts, reaches)
            out.append(judged(drift))
        else:
            out.append(judged(_empty(f, ref_side, cur_side)))
    for f in categorical:
        out.append(
            judged(
                _categorical_drift(
                    f,
                    ref_side,
                    cur_side,
                    categories_found["reference"][f.name],
                    categories_found["current"][f.name],
                )
            )
        )
    return sorted(out, key=_severity)


def _empty(feature: Feature, reference: _Side, current: _Side) -> FeatureDrift:
    """A numeric feature without a single reference value: nothing to compare with."""
    return FeatureDrift(
        **_common(feature, reference, current), score=None, psi=None, js_distance=None
    )


def _severity(drift: FeatureDrift) -> tuple[int, float, str]:
    """Alerts first, then warnings, each by how far the score is past its threshold."""
    order = {Verdict.ALERT: 0, Verdict.WARN: 1, Verdict.OK: 2}[drift.verdict]
    limits = drift_thresholds(drift.feature, drift.categorical)
    relative = (drift.score or 0.0) / limits.alert
    return order, -relative, drift.feature
