"""Drift of features between a reference and a current sample, measured in Spark.

Two passes per side, whatever the number of features, each one Spark aggregation:
1. row count, null counts, and per numeric feature its mean, standard deviation and
   approximate percentiles (`percentile_approx`, relative error 1/`ACCURACY`);
2. one histogram of every feature: numeric values bucketed (Spark's `Bucketizer`, a
   binary search) on a grid made of both sides' percentiles, with how far they reach
   past the grid's ends; categorical values counted by category (the `MAX_CATEGORIES`
   most frequent in the reference are compared, the rest as one).
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

ACCURACY = 1000  # percentile_approx's: a relative error of 0.001
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
    """Numeric values of a column as doubles: dates as days, timestamps as seconds since
    the epoch, NaN as null (a missing value here)."""
    if value_type == "date":
        value = F.datediff(F.col(column), F.lit("1970-01-01").cast("date")).cast("double")
    elif value_type == "timestamp":
        value = F.unix_micros(F.col(column)).cast("double") / 1e6
    else:
        value = F.col(column).cast("double")
    return F.when(~F.isnan(value), value)


@dataclass(frozen=True)
class _Side:
    rows: int
    nulls: dict[str, int]
    means: dict[str, float | None]
    stddevs: dict[str, float | None]
    quantiles: dict[str, list[float]]


def _profile(df: DataFrame, numeric: Sequence[Feature], categorical: Sequence[Feature]) -> _Side:
    """Pass 1, one aggregation: rows, null counts, and per numeric feature its mean,
    standard deviation and percentiles (`percentile_approx`, relative error 1/ACCURACY)."""
    aggregates = [F.count(F.lit(1)).alias("__rows")]
    for f in numeric:
        value = _as_number(f.name, f.value_type)
        aggregates += [
            F.count(value).alias(f"{f.name}__n"),
            F.avg(value).alias(f"{f.name}__mean"),
            F.stddev_pop(value).alias(f"{f.name}__std"),
            F.percentile_approx(value, PERCENTILES, ACCURACY).alias(f"{f.name}__q"),
        ]
    aggregates += [F.count(F.col(f.name)).alias(f"{f.name}__n") for f in categorical]
    row = df.agg(*aggregates).collect()[0]
    rows = int(row["__rows"])
    nulls = {f.name: rows - int(row[f"{f.name}__n"]) for f in [*numeric, *categorical]}
    return _Side(
        rows=rows,
        nulls=nulls,
        means={f.name: row[f"{f.name}__mean"] for f in numeric},
        stddevs={f.name: row[f"{f.name}__std"] for f in numeric},
        quantiles={f.name: [float(q) for q in row[f"{f.name}__q"] or []] for f in numeric},
    )


def _grid(reference: list[float], current: list[float]) -> list[float]:
    """Bucket splits: both sides' percentiles, strictly increasing, open at both ends."""
    edges = sorted({float(x) for x in [*reference, *current] if x is not None})
    return [-math.inf, *edges, math.inf]


@dataclass(frozen=True)
class _Counts:
    """What pass 2 found on one side."""

    cells: dict[str, list[int]]  # numeric: rows per grid cell (cell i is [s_i, s_i+1))
    excess: dict[str, tuple[float, float]]  # numeric: sum of (first - x)+ and of (x - last)+
    categories: dict[str, dict[str, int]]  # categorical: rows per category


def _count(
    df: DataFrame,
    numeric: Sequence[Feature],
    categorical: Sequence[Feature],
    grids: dict[str, list[float]],
) -> _Counts:
    """Pass 2, one aggregation over every feature at once: each row is exploded into one
    (feature, cell or category) pair per non-null value, and the pairs are counted. Numeric
    values are bucketed on their grid by Spark's `Bucketizer` (a binary search); the pairs
    also carry how far a value lies past the grid's first and last edges."""
    gridded = [f for f in numeric if len(grids[f.name]) > 2]  # a grid needs an edge
    numbers = df.select(
        *[_as_number(f.name, f.value_type).alias(f.name) for f in gridded],
        *[F.col(f.name).cast("string").alias(f.name) for f in categorical],
    )
    # `keep`: a null stays null (no cell) instead of dropping its row. (`skip` filters on
    # every input column, and the optimizer's constraint sets over a filter that wide
    # grow without bound.) NaN, the invalid value `keep` buckets, was made null.
    cells = (
        Bucketizer(
            splitsArray=[grids[f.name] for f in gridded],
            inputCols=[f.name for f in gridded],
            outputCols=[f"{f.name}__cell" for f in gridded],
            handleInvalid="keep",
        ).transform(numbers)
        if gridded
        else numbers
    )
    pairs = []
    for i, f in enumerate(gridded):
        value, grid = F.col(f.name), grids[f.name]
        pairs.append(
            F.struct(
                F.lit(i).alias("feature"),
                F.col(f"{f.name}__cell").cast("int").alias("cell"),
                F.lit(None).cast("string").alias("category"),
                F.greatest(F.lit(grid[1]) - value, F.lit(0.0)).alias("below"),
                F.greatest(value - F.lit(grid[-2]), F.lit(0.0)).alias("above"),
            )
        )
    for i, f in enumerate(categorical, start=len(gridded)):
        pairs.append(
            F.struct(
                F.lit(i).alias("feature"),
                F.lit(None).cast("int").alias("cell"),
                F.col(f.name).alias("category"),
                F.lit(None).cast("double").alias("below"),
                F.lit(None).cast("double").alias("above"),
            )
        )
    if not pairs:
        return _Counts({f.name: [0] for f in numeric}, {}, {})
    found = (
        cells.select(F.explode(F.array(*pairs)).alias("pair"))
        .select("pair.*")
        .where(F.col("cell").isNotNull() | F.col("category").isNotNull())
        .groupBy("feature", "cell", "category")
        .agg(F.count(F.lit(1)).alias("n"), F.sum("below").alias("b"), F.sum("above").alias("a"))
        .collect()
    )
    names = [f.name for f in [*gridded, *categorical]]
    counted = _Counts(
        cells={f.name: [0] * (len(grids[f.name]) - 1) for f in numeric},
        excess={f.name: (0.0, 0.0) for f in gridded},
        categories={f.name: {} for f in categorical},
    )
    for row in found:
        name = names[row["feature"]]
        if row["category"] is not None:
            counted.categories[name][row["category"]] = int(row["n"])
        else:
            counted.cells[name][row["cell"]] += int(row["n"])
            below, above = counted.excess[name]
            counted.excess[name] = (below + (row["b"] or 0.0), above + (row["a"] or 0.0))
    return counted


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
    judged by its thresholds; two Spark passes per side (see the module docstring)."""
    numeric = [f for f in features if not is_categorical(f)]
    categorical = [f for f in features if is_categorical(f)]
    frames = {"reference": reference, "current": current}
    sides = {label: _profile(df, numeric, categorical) for label, df in frames.items()}
    ref_side, cur_side = sides["reference"], sides["current"]
    grids = {f.name: _grid(ref_side.quantiles[f.name], cur_side.quantiles[f.name]) for f in numeric}
    counts = {label: _count(df, numeric, categorical, grids) for label, df in frames.items()}
    ref_counts, cur_counts = counts["reference"], counts["current"]
    out = []
    for f in numeric:
        if not ref_side.quantiles[f.name]:
            out.append(judged(_empty(f, ref_side, cur_side)))
            continue
        reaches = (
            _mean_excess(ref_counts, ref_side, f.name),
            _mean_excess(cur_counts, cur_side, f.name),
        )
        cells = (ref_counts.cells[f.name], cur_counts.cells[f.name])
        drift = _numeric_drift(f, ref_side, cur_side, grids[f.name], cells, reaches)
        out.append(judged(drift))
    for f in categorical:
        ref_found, cur_found = ref_counts.categories[f.name], cur_counts.categories[f.name]
        out.append(judged(_categorical_drift(f, ref_side, cur_side, ref_found, cur_found)))
    return sorted(out, key=_severity)


def _mean_excess(counts: _Counts, side: _Side, name: str) -> tuple[float, float]:
    """E[(first - x)+] and E[(x - last)+] over the side's non-null values."""
    present = side.rows - side.nulls[name]
    below, above = counts.excess.get(name, (0.0, 0.0))
    return (below / present, above / present) if present else (0.0, 0.0)


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
