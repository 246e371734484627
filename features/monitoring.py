"""How far a feature may drift from its reference before the platform warns or alerts.

Every feature is judged by one score chosen by its type (`pipelines.monitoring.drift`):
- numeric (int64, float64, date, timestamp): the population stability index (PSI) over
  ten bins cut at the reference's deciles;
- categorical (string): the Jensen-Shannon distance (base 2, in [0, 1]) between the
  category frequencies.
Its null rate is judged too, by the absolute change from the reference.

The defaults follow practice: PSI 0.1 (watch) and 0.25 (act), the convention since Lewis
(1994); Jensen-Shannon 0.1, Evidently's threshold for categorical drift, and 0.2 to act.
They assume thousands of rows on each side: with a few hundred, PSI's sampling noise
alone approaches 0.05. Override a feature's thresholds in `OVERRIDES`, by feature name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from features.errors import DeclarationError


@dataclass(frozen=True)
class DriftThresholds:
    """Scores at and above `warn` warn; at and above `alert` fail the drift gate."""

    warn: float
    alert: float
    null_rate_warn: float = 0.05
    null_rate_alert: float = 0.10

    def __post_init__(self) -> None:
        for low, high in ((self.warn, self.alert), (self.null_rate_warn, self.null_rate_alert)):
            if not 0 < low <= high:
                raise DeclarationError(
                    f"drift thresholds need 0 < warn <= alert, got {low} and {high}"
                )


NUMERIC_DEFAULT = DriftThresholds(warn=0.10, alert=0.25)  # PSI
CATEGORICAL_DEFAULT = DriftThresholds(warn=0.10, alert=0.20)  # Jensen-Shannon distance

# Features whose normal variation differs from the defaults' assumption.
OVERRIDES: dict[str, DriftThresholds] = {
    # An hour's count swings with the time of day far more than a week's does.
    "plays_count_1h": DriftThresholds(warn=0.25, alert=0.50),
    "title_plays_count_1h": DriftThresholds(warn=0.25, alert=0.50),
}


def drift_thresholds(feature: str, categorical: bool) -> DriftThresholds:
    if feature in OVERRIDES:
        return OVERRIDES[feature]
    return CATEGORICAL_DEFAULT if categorical else NUMERIC_DEFAULT


# How far the streaming ingest may fall behind its topics (the age of the oldest message
# it has not landed) before the hourly pipeline, which runs on what the stream landed,
# stops instead of ingesting an hour the stream has not finished landing.
STREAM_LAG_ALERT = timedelta(minutes=10)
