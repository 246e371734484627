"""A brute-force point-in-time join in plain pandas, one label row at a time.

Written from the stated semantics only (Feast's get_historical_features), to check
the Spark implementation against: for each label row and view, among the view's rows
of the same entity with `event_timestamp <= t`, `event_timestamp >= t - ttl` (ttl 0
means unbounded), in mode "known" `created_timestamp <= t` and in mode "serving"
`created_timestamp + serving lag <= t`, take the one with the greatest
(event_timestamp, created_timestamp); none -> nulls.

Also holds the helpers the training tests share to write feature tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class OracleView:
    join_key: str
    ttl: timedelta
    features: list[str]
    rows: list[dict[str, Any]]  # join key, event_timestamp, created_timestamp, features
    serving_lag: timedelta = timedelta(0)


def brute_force_training_set(
    labels: list[dict[str, Any]],
    views: list[OracleView],
    *,
    timestamp_column: str = "event_timestamp",
    mode: str = "feast",
) -> list[dict[str, Any]]:
    """Label rows (dicts, in order) extended with the features of every view."""
    frames = [pd.DataFrame(view.rows, dtype=object) for view in views]
    out = []
    for label in labels:
        record = dict(label)
        for view, rows in zip(views, frames, strict=True):
            match = _best_row(label, view, rows, timestamp_column, mode)
            for feature in view.features:
                record[feature] = None if match is None else _plain(match[feature])
        out.append(record)
    return out


def _best_row(
    label: dict[str, Any],
    view: OracleView,
    rows: pd.DataFrame,
    timestamp_column: str,
    mode: str,
) -> dict[str, Any] | None:
    key, when = label[view.join_key], label[timestamp_column]
    if key is None or when is None or pd.isna(key) or pd.isna(when):
        return None
    if rows.empty:
        return None
    candidates = rows[(rows[view.join_key] == key) & (rows["event_timestamp"] <= when)]
    if view.ttl > timedelta(0):
        candidates = candidates[candidates["event_timestamp"] >= when - view.ttl]
    if mode != "feast":
        lag = view.serving_lag if mode == "serving" else timedelta(0)
        candidates = candidates[candidates["created_timestamp"] + lag <= when]
    if candidates.empty:
        return None
    newest = max(zip(candidates["event_timestamp"], candidates["created_timestamp"], strict=True))
    best = candidates[
        (candidates["event_timestamp"] == newest[0])
        & (candidates["created_timestamp"] == newest[1])
    ]
    if len(best) > 1:
        raise AssertionError(f"ambiguous test data: {len(best)} rows tie at {newest}")
    return best.iloc[0].to_dict()


def _plain(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def feature_row(view_name: str, key: Any, event: datetime, created: datetime, **values: Any):
    """One feature table row as a dict (features not given are null)."""
    from features import REGISTRY

    view = REGISTRY.view(view_name)
    row = {view.entity.join_key: key, "event_timestamp": event, "created_timestamp": created}
    for feature in view.features:
        row[feature.name] = values.pop(feature.name, None)
    if values:
        raise KeyError(f"{view_name} has no features {sorted(values)}")
    return row


def write_feature_table(spark, view_name: str, rows: list[dict[str, Any]]) -> None:
    """Replace the whole table features.<view> with `rows`, in the feature table contract."""
    from features import REGISTRY
    from pipelines.delta_io import replace_where
    from pipelines.feature_tables import feature_table_schema

    view = REGISTRY.view(view_name)
    schema = feature_table_schema(view)
    records = [
        tuple(
            {**row, "event_date": row["event_timestamp"].date()}.get(field.name)
            for field in schema.fields
        )
        for row in rows
    ]
    replace_where(
        spark.createDataFrame(records, schema),
        view.table,
        predicate="true",
        partition_by=("event_date",),
    )


def oracle_view(view_name: str, features: list[str], rows: list[dict[str, Any]]) -> OracleView:
    from features import REGISTRY

    view = REGISTRY.view(view_name)
    return OracleView(view.entity.join_key, view.effective_ttl, features, rows, view.serving_lag)


# ---------------------------------------------------------------------------------------
# Hand-made cases shared by the oracle and the Feast comparisons. They cover: label times
# equal to feature times, exactly at the TTL boundary and one microsecond past it, before
# the first feature row, unknown entities, duplicate label rows, null keys and null times,
# ties on event_timestamp broken by created_timestamp, a newest row with a null value
# (which must stay null), several views and two entities on one row, and late
# corrections (versions of a row; for the known and serving modes). Rows have the shape
# compute writes: whole-hour times, created at or after the event time.

B = datetime(2026, 3, 2)
AD_TTL = timedelta(days=8)  # ad_performance: largest window 7d + 1 day

AD_FEATURES = ["ad_impressions_count_1d", "ad_ctr_smoothed_1d"]
MEMBER_FEATURES = ["member_clicks_count_7d", "placement_last_28d"]
PROFILE_FEATURES = ["country"]
REFS = (
    [f"ad_performance:{f}" for f in AD_FEATURES]
    + [f"member_ad_history:{f}" for f in MEMBER_FEATURES]
    + [f"member_profile:{f}" for f in PROFILE_FEATURES]
)


def h(hours: float) -> datetime:
    return B + timedelta(hours=hours)


AD_ROWS = [
    feature_row(
        "ad_performance", 10, h(0), h(0), ad_impressions_count_1d=1, ad_ctr_smoothed_1d=0.1
    ),
    feature_row(
        "ad_performance", 10, h(1), h(1), ad_impressions_count_1d=2, ad_ctr_smoothed_1d=0.2
    ),
    # A late correction of the 1h row: same event time, later created time.
    feature_row(
        "ad_performance", 10, h(1), h(3), ad_impressions_count_1d=3, ad_ctr_smoothed_1d=0.3
    ),
    # The newest row has a null ratio: it must not be filled from older rows.
    feature_row(
        "ad_performance", 10, h(5), h(5), ad_impressions_count_1d=4, ad_ctr_smoothed_1d=None
    ),
    feature_row(
        "ad_performance", 11, h(2), h(2), ad_impressions_count_1d=7, ad_ctr_smoothed_1d=0.7
    ),
    feature_row(
        "ad_performance", 12, h(0), h(0), ad_impressions_count_1d=9, ad_ctr_smoothed_1d=0.9
    ),
]
MEMBER_ROWS = [
    feature_row(
        "member_ad_history", 1, h(0), h(0), member_clicks_count_7d=1, placement_last_28d="home"
    ),
    feature_row(
        "member_ad_history", 1, h(3), h(4), member_clicks_count_7d=2, placement_last_28d="row"
    ),
    feature_row("member_ad_history", 2, h(-40 * 24), h(-40 * 24), member_clicks_count_7d=5),
]
PROFILE_ROWS = [
    # Attribute versions: event time = arrival, created = the end of that hour.
    feature_row("member_profile", 1, h(-100 * 24 + 0.5), h(-100 * 24 + 1), country="NL"),
    feature_row("member_profile", 1, h(2), h(3), country="DE"),
    feature_row("member_profile", 2, h(-400 * 24 + 0.25), h(-400 * 24 + 1), country="FR"),
]


def label(n: int, member: int | None, ad: int | None, when: datetime | None) -> dict:
    return {
        "label_id": n,
        "member_id": member,
        "ad_id": ad,
        "event_timestamp": when,
        "clicked": n % 2,
    }


LABELS = [
    label(0, 1, 10, h(1)),  # equal to a feature time: the corrected 1h row
    label(1, 1, 10, h(-1)),  # before the first feature row
    label(2, 1, 10, h(2.5)),
    label(3, 999, 999, h(2)),  # unknown entities
    label(4, 1, 10, h(6)),
    label(4, 1, 10, h(6)),  # an exact duplicate
    label(5, None, 10, h(2)),  # null member key: member features null, ad features found
    label(6, 1, None, h(2)),
    label(7, 2, 12, h(0) + AD_TTL),  # exactly at the TTL boundary: still valid
    label(8, 2, 12, h(0) + AD_TTL + timedelta(microseconds=1)),  # one microsecond past it
    label(9, 2, 11, None),  # null time
    label(10, 1, 10, h(0.05)),  # 3 minutes after the 0h row was known: not served yet
    label(11, 1, 11, h(3)),  # member row at 3h is created at 4h
    label(12, 2, 10, h(30 * 24)),  # member_ad_history TTL (29 days) expired
]
LABELS_SCHEMA = (
    "label_id bigint, member_id bigint, ad_id bigint, event_timestamp timestamp, clicked bigint"
)
