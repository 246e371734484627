"""Sawtooth values of real-time views at exact label times against the brute-force oracle.

Events come with the arrival delays real producers give (most within minutes, many
hours late, days late, a few with a clock ahead), some exactly on hour boundaries; label
times fall on hour boundaries, on event times and on arrival times (ties: an event at or
arriving at the label's instant is not counted), and between. Compute writes the state
tables the way the hourly pipeline does; the head comes from the clean tables.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Any

import feature_oracle as oracle
import pytest
from pyspark.sql import types as T

from features import REGISTRY, DeclarationError, FeatureView
from features.catalog import CLEAN, database
from features.errors import PlatformError
from pipelines.compute import compute
from pipelines.compute.state import state_table_schema
from pipelines.tables import CLEAN_EVENTS, clean_table
from pipelines.training import build_training_set
from pipelines.training.asof import label_stats, point_in_time_join
from pipelines.training.reproduce import compare, reproduce
from pipelines.training.sawtooth import sawtooth_join
from pipelines.training.spec import Mode, select_features

B = datetime(2026, 7, 4, 20)  # a Saturday evening: labels cross a day boundary
HOURS = 30
COMPUTED_UNTIL = B + timedelta(hours=HOURS + 2)
REALTIME = [v for v in REGISTRY.views if isinstance(v, FeatureView) and v.realtime]


def _delay(rng: random.Random) -> timedelta:
    draw = rng.random()
    if draw < 0.6:
        return timedelta(seconds=rng.randint(1, 600))
    if draw < 0.8:
        return timedelta(minutes=rng.randint(20, 9 * 60))
    if draw < 0.9:
        return timedelta(hours=rng.randint(20, 40))
    return -timedelta(seconds=rng.randint(1, 290))  # a clock slightly ahead


def _when(rng: random.Random, n: int) -> datetime:
    when = B - timedelta(hours=30) + timedelta(minutes=rng.randint(0, (HOURS + 30) * 60 - 1))
    if n % 11 == 0:
        return when.replace(minute=0, second=0)  # on an hour boundary
    return when.replace(second=rng.randint(0, 59))


def _events(seed: int) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    plays, impressions, clicks = [], [], []
    for n in range(300):
        when = _when(rng, n)
        plays.append(
            {
                "event_id": f"p{n}",
                "member_id": rng.choice([1, 2, 3]),
                "title_id": rng.choice([10, 11, 12, 13]),
                "device": rng.choice(["tv", "web", "phone", None]),
                "event_timestamp": when,
                "watch_seconds": rng.choice([None, round(rng.uniform(1, 5000), 3)]),
                "ingestion_timestamp": when + _delay(rng),
                "event_date": when.date(),
            }
        )
    for n in range(260):
        when = _when(rng, n)
        arrived = when + _delay(rng)
        impression = {
            "impression_id": f"i{n}",
            "member_id": rng.choice([1, 2, 3]),
            "ad_id": rng.choice([100, 101]),
            "placement": rng.choice(["home", "row", "player"]),
            "event_timestamp": when,
            "ingestion_timestamp": arrived,
            "event_date": when.date(),
        }
        impressions.append(impression)
        if rng.random() < 0.4:
            click_time = when + timedelta(minutes=rng.randint(0, 20))
            clicks.append(
                {
                    "impression_id": impression["impression_id"],
                    "member_id": impression["member_id"],
                    "ad_id": impression["ad_id"],
                    "event_timestamp": click_time,
                    "ingestion_timestamp": max(arrived, click_time) + _delay(rng),
                    "event_date": click_time.date(),
                }
            )
    return {"playback_events": plays, "ad_impressions": impressions, "ad_clicks": clicks}


EVENTS = _events(seed=20261207)


def _label_times(rng: random.Random, view: FeatureView) -> list[datetime]:
    """Label instants: random ones, hour boundaries, and the event and arrival times of
    the view's own events (the ties)."""
    times = [B + timedelta(seconds=rng.randint(0, HOURS * 3600 - 1)) for _ in range(60)]
    times += [B + timedelta(hours=h) for h in range(0, HOURS, 5)]
    own = [r for s in view.sources for r in EVENTS[s.name]]
    for row in rng.sample(own, 40):
        times += [row["event_timestamp"], row["ingestion_timestamp"]]
    return [t for t in times if B <= t < B + timedelta(hours=HOURS)]


def _labels(view: FeatureView) -> list[tuple[Any, datetime]]:
    rng = random.Random(view.name)
    seen = {r[view.entity.join_key] for s in view.sources for r in EVENTS[s.name]}
    entities = [*sorted(seen), 999]  # and one never seen
    labels = [(rng.choice(entities), t) for t in _label_times(rng, view)]
    labels += labels[:3]  # duplicates come out once each
    labels.append((None, B + timedelta(hours=3)))
    return labels


@pytest.fixture(scope="module")
def computed(spark) -> None:
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database(CLEAN)}")
    for name, rows in EVENTS.items():
        schema = CLEAN_EVENTS[name]
        df = spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema)
        df.write.format("delta").mode("overwrite").partitionBy("event_date").saveAsTable(
            clean_table(name)
        )
    compute(spark, start=B - timedelta(hours=30), end=COMPUTED_UNTIL, views=REALTIME)


def _label_frame(spark, view: FeatureView, labels: list[tuple[Any, datetime]]):
    key = view.entity.join_key
    schema = T.StructType(
        [T.StructField(key, T.LongType()), T.StructField("label_time", T.TimestampType())]
    )
    return spark.createDataFrame(labels, schema)


def _sawtooth(spark, view: FeatureView, labels) -> list[dict[str, Any]]:
    joined = sawtooth_join(
        _label_frame(spark, view, labels),
        view,
        state=spark.table(view.state_table),
        events={s.name: spark.table(s.table) for s in view.sources},
        timestamp_column="label_time",
    )
    return [row.asDict() for row in joined.collect()]


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and got is not None:
        return math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-9)
    return got == want


@pytest.mark.parametrize("view", REALTIME, ids=lambda v: v.name)
def test_every_label_gets_the_oracle_value_at_its_instant(spark, computed, view) -> None:
    labels = _labels(view)
    rows = _sawtooth(spark, view, labels)
    key = view.entity.join_key
    assert sorted((r[key] is None, r[key], r["label_time"]) for r in rows) == sorted(
        (k is None, k, t) for k, t in labels
    )
    names = [f.name for f in view.features]
    nulls = 0
    for row in rows:
        want = None
        if row[key] is not None:
            want = oracle.sawtooth_values(view, EVENTS, row[key], row["label_time"])
        if want is None:
            nulls += 1
            assert all(row[name] is None for name in names), row
            continue
        for name in names:
            assert _same(row[name], want[name]), (row[key], row["label_time"], name, want[name])
    assert nulls >= 2  # the unseen entity and the null key


def test_the_head_changes_values_within_the_hour(spark, computed) -> None:
    """The data exercises what it must: between hour boundaries the sawtooth value
    differs from the hourly row for many labels, late arrivals included."""
    view = REGISTRY.view("member_engagement")
    labels = _labels(view)
    changed = 0
    for entity, moment in labels:
        if entity is None or entity == 999:
            continue
        sawtooth = oracle.sawtooth_values(view, EVENTS, entity, moment)
        hourly = oracle.values_as_of(view, EVENTS, entity, moment, oracle.floor_hour(moment))
        changed += sawtooth is not None and sawtooth["plays_count_1h"] != hourly["plays_count_1h"]
    assert changed >= 20


def test_on_the_hour_the_value_is_the_hourly_row_known_then(spark, computed) -> None:
    """At t = T the head is empty: the sawtooth value is the feature table's row at T as
    known at T, so the stream and the hourly table agree at every hour boundary."""
    view = REGISTRY.view("ad_performance")
    labels = [(ad, B + timedelta(hours=h)) for ad in (100, 101) for h in range(1, HOURS)]
    sawtooth = {(r["ad_id"], r["label_time"]): r for r in _sawtooth(spark, view, labels)}
    selection = select_features(REGISTRY, [f"ad_performance:{f.name}" for f in view.features])
    frame = _label_frame(spark, view, labels)
    hourly = point_in_time_join(
        frame,
        [(selection.views[0], spark.table(view.table))],
        timestamp_column="label_time",
        stats=label_stats(frame, "label_time"),
        mode=Mode.KNOWN,
    ).collect()
    assert len(hourly) == len(labels)
    for row in hourly:
        mine = sawtooth[(row["ad_id"], row["label_time"])]
        for feature in view.features:
            assert _same(mine[feature.name], row[feature.name]), (row, feature.name)


def test_state_tables_hold_the_feature_rows_unfinished(spark, computed) -> None:
    for view in REALTIME:
        state = spark.table(view.state_table)
        assert state.schema == state_table_schema(view)
        keys = [view.entity.join_key, "event_timestamp", "created_timestamp"]
        assert state.select(*keys).exceptAll(spark.table(view.table).select(*keys)).count() == 0
        assert spark.table(view.table).select(*keys).exceptAll(state.select(*keys)).count() == 0


def test_only_real_time_views_with_their_events_have_sawtooth_values(spark) -> None:
    labels = spark.createDataFrame([(1, B)], "member_id long, label_time timestamp")
    with pytest.raises(DeclarationError, match="title_popularity is not declared realtime"):
        sawtooth_join(
            labels, REGISTRY.view("title_popularity"), state=labels, events={},
            timestamp_column="label_time",
        )  # fmt: skip
    with pytest.raises(PlatformError, match=r"need the events of .*playback_events"):
        sawtooth_join(
            labels, REGISTRY.view("member_engagement"), state=labels, events={},
            timestamp_column="label_time",
        )  # fmt: skip


def test_a_realtime_training_set_is_the_sawtooth_values_and_reproduces(
    spark, computed, tmp_path
) -> None:
    """CTR-shaped labels (member, ad, impression time) through the training-set API in
    realtime mode: every value is the oracle's at the label's instant, and the set
    rebuilds identically from the table versions it recorded."""
    impressions = [
        (r["member_id"], r["ad_id"], r["event_timestamp"])
        for r in EVENTS["ad_impressions"]
        if B <= r["event_timestamp"] < B + timedelta(hours=HOURS)
    ]
    labels = spark.createDataFrame(impressions, "member_id long, ad_id long, label_time timestamp")
    requested = {
        "member_ad_history": ["member_clicks_count_1d", "placement_last_28d",
                              "member_ctr_smoothed_28d"],
        "ad_performance": ["ad_impressions_count_1h", "ad_reach_approx_distinct_1d"],
    }  # fmt: skip
    output = str(tmp_path / "ctr_realtime")
    built = build_training_set(
        spark,
        labels,
        [f"{view}:{f}" for view, names in requested.items() for f in names],
        timestamp_column="label_time",
        output=output,
        mode="realtime",
    )
    assert built.columns == [
        "member_id", "ad_id", "label_time", *[f for names in requested.values() for f in names]
    ]  # fmt: skip
    rows = built.collect()
    assert len(rows) == len(impressions) > 50
    for row in rows:
        for view_name, names in requested.items():
            view = REGISTRY.view(view_name)
            key = view.entity.join_key
            want = oracle.sawtooth_values(view, EVENTS, row[key], row["label_time"])
            for name in names:
                assert _same(row[name], None if want is None else want[name]), (row, name)
    assert compare(built, reproduce(spark, output)).identical
