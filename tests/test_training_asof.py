"""build_training_set against the brute-force oracle (tests/training_oracle.py).

On the hand-made cases of training_oracle (see there for what they cover), on random
data with a hot entity, in every mode. Feature rows have the shape `compute` writes:
whole-hour event times, each version of a row created at a whole hour at or after it.
"""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

import pandas as pd
import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual
from training_oracle import (
    AD_FEATURES,
    AD_ROWS,
    LABELS,
    LABELS_SCHEMA,
    MEMBER_FEATURES,
    MEMBER_ROWS,
    PROFILE_FEATURES,
    PROFILE_ROWS,
    REFS,
    B,
    brute_force_training_set,
    feature_row,
    h,
    oracle_view,
    write_feature_table,
)

from pipelines.training import build_training_set
from pipelines.training.asof import (
    _LABEL,
    SkewPolicy,
    _hot_keys,
    label_stats,
    point_in_time_join,
)
from pipelines.training.spec import Mode, ViewRead


@pytest.fixture(scope="module")
def feature_tables(spark):
    write_feature_table(spark, "ad_performance", AD_ROWS)
    write_feature_table(spark, "member_ad_history", MEMBER_ROWS)
    write_feature_table(spark, "member_profile", PROFILE_ROWS)


@pytest.fixture(scope="module")
def labels_df(spark):
    return spark.createDataFrame([tuple(r.values()) for r in LABELS], LABELS_SCHEMA)


def expected(mode: str = "feast") -> list[Row]:
    views = [
        oracle_view("ad_performance", AD_FEATURES, AD_ROWS),
        oracle_view("member_ad_history", MEMBER_FEATURES, MEMBER_ROWS),
        oracle_view("member_profile", PROFILE_FEATURES, PROFILE_ROWS),
    ]
    return [Row(**r) for r in brute_force_training_set(LABELS, views, mode=mode)]


def test_matches_the_oracle(spark, feature_tables, labels_df):
    result = build_training_set(spark, labels_df, REFS)
    assert result.columns == [*LABELS[0].keys(), *AD_FEATURES, *MEMBER_FEATURES, *PROFILE_FEATURES]
    rows = result.collect()
    assertDataFrameEqual(rows, expected())
    # A few of the cases spelled out, so a wrong oracle cannot hide them.
    by_id: dict[int, list[Row]] = {}
    for row in rows:
        by_id.setdefault(row.label_id, []).append(row)
    assert by_id[0][0].ad_impressions_count_1d == 3  # tie on event time: latest created wins
    assert by_id[1][0].ad_impressions_count_1d is None
    assert len(by_id[4]) == 2 and by_id[4][0].ad_ctr_smoothed_1d is None
    assert by_id[4][0].ad_impressions_count_1d == 4
    assert by_id[5][0].member_clicks_count_7d is None and by_id[5][0].ad_impressions_count_1d == 3
    assert by_id[7][0].ad_impressions_count_1d == 9
    assert by_id[8][0].ad_impressions_count_1d is None
    assert by_id[9][0].country is None
    assert by_id[12][0].member_clicks_count_7d is None and by_id[12][0].country == "FR"


def test_known_and_serving_modes_match_the_oracle(spark, feature_tables, labels_df):
    known = build_training_set(spark, labels_df, REFS, mode="known").collect()
    assertDataFrameEqual(known, expected("known"))
    by_id = {r.label_id: r for r in known}
    # The 1h row's correction was created at 3h: labels at 1h and 2.5h see the original.
    assert by_id[0].ad_impressions_count_1d == 2
    assert by_id[2].ad_impressions_count_1d == 2
    assert by_id[10].ad_impressions_count_1d == 1  # the 0h row, known at 0h
    assert by_id[11].member_clicks_count_7d == 1  # the 3h row was only known at 4h
    served = build_training_set(spark, labels_df, REFS, mode="serving").collect()
    assertDataFrameEqual(served, expected("serving"))
    by_id = {r.label_id: r for r in served}
    # Published 15 minutes after it was known: at 3 minutes past, the 0h row is not served.
    assert by_id[10].ad_impressions_count_1d is None
    assert by_id[0].ad_impressions_count_1d == 1  # at 1h, the 1h row is not served yet
    assert by_id[2].ad_impressions_count_1d == 2
    assert known != served


def test_pandas_labels_with_time_zones_are_read_as_utc(spark, feature_tables):
    berlin = pd.DataFrame(
        {
            "member_id": pd.array([1, 1], dtype="Int64"),
            "ad_id": pd.array([10, 11], dtype="Int64"),
            # 03:30 and 03:00 in Berlin are 02:30 and 02:00 UTC.
            "event_timestamp": pd.to_datetime(["2026-03-02 03:30", "2026-03-02 03:00"]).tz_localize(
                "Europe/Berlin"
            ),
        }
    )
    result = build_training_set(spark, berlin, ["ad_performance:ad_impressions_count_1d"])
    assert result.schema["event_timestamp"].dataType == T.TimestampType()
    assertDataFrameEqual(
        result,
        [
            Row(member_id=1, ad_id=10, event_timestamp=h(2.5), ad_impressions_count_1d=3),
            Row(member_id=1, ad_id=11, event_timestamp=h(2), ad_impressions_count_1d=7),
        ],
    )


def test_randomized_no_value_from_the_future(spark):
    """A few hundred random labels against random rows with one hot ad; every feature
    value names the row it came from, so each can be checked against its label time."""
    rng = random.Random(20260302)
    ads = [1] * 8 + list(range(2, 12))  # ad 1 is hot

    def rows_for(view: str, feature: str, count: int, keys: list[int]) -> list[dict]:
        versions = {}
        for _ in range(count):
            event = B + timedelta(hours=rng.randrange(0, 20 * 24))
            created = event + timedelta(hours=rng.choice([0, 0, 1, 2, 3 * 24]))
            versions[(rng.choice(keys), event, created)] = None
        return [
            feature_row(view, key, event, created, **{feature: n})
            for n, (key, event, created) in enumerate(versions)
        ]

    ad_rows = rows_for("ad_performance", "ad_clicks_count_1d", 400, ads)
    member_rows = rows_for(
        "member_ad_history", "member_impressions_count_7d", 300, list(range(1, 30))
    )
    write_feature_table(spark, "ad_performance", ad_rows)
    write_feature_table(spark, "member_ad_history", member_rows)
    labels = [
        {
            "member_id": rng.choice([*range(1, 32), None]),
            "ad_id": rng.choice([*ads, 99]),
            "event_timestamp": B + timedelta(minutes=rng.randrange(-24 * 60, 24 * 24 * 60)),
        }
        for _ in range(300)
    ]
    labels += labels[:5]  # some duplicates
    labels_df = spark.createDataFrame(
        pd.DataFrame(labels).astype({"member_id": "Int64", "ad_id": "Int64"})
    )
    refs = ["ad_performance:ad_clicks_count_1d", "member_ad_history:member_impressions_count_7d"]
    views = [
        oracle_view("ad_performance", ["ad_clicks_count_1d"], ad_rows),
        oracle_view("member_ad_history", ["member_impressions_count_7d"], member_rows),
    ]
    # Split ad 1 into time buckets too: hot keys take another path (carry-in rows).
    split = SkewPolicy(min_hot_labels=10, hot_share=0.05, buckets=16)
    assert sum(label["ad_id"] == 1 for label in labels) > 0.05 * len(labels)
    for mode, skew in itertools.product(("feast", "known", "serving"), (None, split)):
        result = build_training_set(spark, labels_df, refs, mode=mode, skew=skew)
        rows = result.collect()
        assert len(rows) == len(labels)
        for row in rows:
            for source, value in (
                (ad_rows, row.ad_clicks_count_1d),
                (member_rows, row.member_impressions_count_7d),
            ):
                if value is None:
                    continue
                origin = source[value]
                assert origin["event_timestamp"] <= row.event_timestamp
                if mode != "feast":
                    assert origin["created_timestamp"] <= row.event_timestamp
        oracle = brute_force_training_set(labels, views, mode=mode)
        assertDataFrameEqual(rows, [Row(**r) for r in oracle])


def split_and_whole(labels, views, stats, split_policy, mode):
    """The join with hot keys split by `split_policy`, and with the default policy."""
    return [
        point_in_time_join(
            labels, views, timestamp_column="t", stats=stats, skew=skew, mode=mode
        ).collect()
        for skew in (split_policy, SkewPolicy())
    ]


def versioned_rows(rng: random.Random, keys: list, count: int) -> list[tuple]:
    """(key, event, created, n): whole hours, created at or after the event, one per
    (key, event, created), as compute writes them."""
    versions = {}
    for n in range(count):
        event = B + timedelta(hours=n // 2)
        versions[(rng.choice(keys), event, event + timedelta(hours=rng.choice([0, 0, 1, 3])))] = n
    return [(*version, n) for version, n in versions.items()]


def test_hot_key_buckets_do_not_change_the_result(spark):
    """Every key hot, split into many narrow time buckets (carry-ins everywhere), gives
    the same rows as no key hot; with and without as-known-at."""
    rng = random.Random(7)
    features = spark.createDataFrame(
        versioned_rows(rng, [1, 1, 1, 2, 3], 200),
        "k long, event_timestamp timestamp, created_timestamp timestamp, v long",
    )
    labels = spark.createDataFrame(
        [
            (rng.choice([1, 1, 2, 4, None]), B + timedelta(hours=rng.uniform(-5, 150)))
            for _ in range(150)
        ],
        "k long, t timestamp",
    )
    view = ViewRead("v", "unused", "k", "int64", 20 * 3600, ("v",), "hash", 0, 900)
    stats = label_stats(labels, "t")
    all_hot = SkewPolicy(min_hot_labels=0, hot_share=0.0, buckets=100)
    for mode in Mode:
        split, whole = split_and_whole(labels, [(view, features)], stats, all_hot, mode)
        assertDataFrameEqual(split, whole)
        assert sum(r.v is not None for r in split) > 30


def test_pruning_feature_rows_to_label_keys_does_not_change_the_result(spark):
    """Feature rows of keys without labels (key 3) are dropped before the sort when
    pruning is on, which is the default for small label sets; the rows are the same."""
    rng = random.Random(11)
    features = spark.createDataFrame(
        versioned_rows(rng, [1, 2, 3, 3], 120),
        "k long, event_timestamp timestamp, created_timestamp timestamp, v long",
    )
    labels = spark.createDataFrame(
        [
            (rng.choice([1, 2, 4, None]), B + timedelta(hours=rng.uniform(-5, 90)))
            for _ in range(80)
        ],
        "k long, t timestamp",
    )
    view = ViewRead("v", "unused", "k", "int64", 20 * 3600, ("v",), "hash", 0, 900)
    stats = label_stats(labels, "t")

    def join(mode: Mode, prune: bool | None):
        return point_in_time_join(
            labels, [(view, features)], timestamp_column="t", stats=stats,
            mode=mode, prune_keys=prune,
        )  # fmt: skip

    def semi_joins(df) -> int:
        return df._jdf.queryExecution().executedPlan().toString().count("LeftSemi")

    for mode in Mode:
        pruned, full = join(mode, True), join(mode, False)
        assert semi_joins(pruned) == 1 and semi_joins(full) == 0
        assert semi_joins(join(mode, None)) == 1  # 80 label rows: on by default
        rows = pruned.collect()
        assertDataFrameEqual(rows, full.collect())
        assert sum(r.v is not None for r in rows) > 20


def test_hot_keys_are_found_for_every_join_key_in_one_pass(spark):
    """Two join keys of different types: each gets its own hot keys (null keys never
    count), and splitting both into buckets leaves the training set unchanged."""
    labels = spark.createDataFrame(
        [(1, "a", B + timedelta(hours=n)) for n in range(6)]
        + [(2, "a", B + timedelta(hours=n)) for n in range(3)]
        + [(3, "b", B + timedelta(hours=n)) for n in range(2)]
        + [(None, "c", B + timedelta(hours=n)) for n in range(7)],
        "m long, ad string, t timestamp",
    )
    member = ViewRead("member", "unused", "m", "int64", 0, ("mv",), "hash", 0)
    ad = ViewRead("ad", "unused", "ad", "string", 5 * 3600, ("av",), "hash", 0)
    stats = label_stats(labels, "t")
    rows = labels.select(F.struct("m", "ad", "t").alias(_LABEL))
    policy = SkewPolicy(min_hot_labels=3, hot_share=0.0)
    assert _hot_keys(rows, [member, ad], stats, policy) == [[1, 2], ["a", "c"]]
    assert _hot_keys(rows, [member, ad], stats, SkewPolicy()) == [[], []]

    member_rows = spark.createDataFrame(
        [(k, B + timedelta(hours=n // 2), B + timedelta(hours=n), k * 100 + n)
         for k in (1, 2, 3) for n in range(12)],
        "m long, event_timestamp timestamp, created_timestamp timestamp, mv long",
    )  # fmt: skip
    ad_rows = spark.createDataFrame(
        [(k, B + timedelta(hours=n // 2), B + timedelta(hours=n), n)
         for k in ("a", "b", "c") for n in range(10)],
        "ad string, event_timestamp timestamp, created_timestamp timestamp, av long",
    )  # fmt: skip
    split_policy = SkewPolicy(
        min_hot_labels=3, hot_share=0.0, buckets=4, min_bucket_width=timedelta(0)
    )
    for mode in Mode:
        views = [(member, member_rows), (ad, ad_rows)]
        split, whole = split_and_whole(labels, views, stats, split_policy, mode)
        assertDataFrameEqual(split, whole)
        assert (
            sum(r.mv is not None for r in whole) >= 8 and sum(r.av is not None for r in whole) >= 8
        )
