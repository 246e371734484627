"""The raw-data generator: determinism, shape of the data, and the raw tables it writes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from sklearn.metrics import roc_auc_score

from features.catalog import database_prefix
from features.sources import PLACEMENTS
from pipelines.generate import GeneratorConfig, GeneratorConfigError, build_world, generate
from pipelines.generate.events import arrived_events, day_events
from pipelines.interval import Interval
from pipelines.tables import DIMENSIONS, RAW_EVENTS

DAY = date(2026, 3, 2)  # a Monday
HOUR_US = 3_600_000_000


def _pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas()


def _days(config: GeneratorConfig, first: date, n: int) -> dict[str, pd.DataFrame]:
    """Every event of `n` days (whenever it arrives), with the fault labels."""
    world = build_world(config)
    parts: dict[str, list[pd.DataFrame]] = {}
    for offset in range(n):
        for name, table in day_events(
            world, config, first + timedelta(days=offset), with_fault=True
        ).items():
            parts.setdefault(name, []).append(_pandas(table))
    return {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}


def _lag_seconds(df: pd.DataFrame) -> pd.Series:
    return (df["ingestion_timestamp"] - df["event_timestamp"]).dt.total_seconds()


def test_same_seed_same_rows_and_other_seed_other_rows():
    config = GeneratorConfig(scale=0.05, seed=11)
    first = day_events(build_world(config), config, DAY, with_fault=True)
    again = day_events(build_world(config), config, DAY, with_fault=True)
    other_config = GeneratorConfig(scale=0.05, seed=12)
    other = day_events(build_world(other_config), other_config, DAY)
    for name in first:
        assert first[name].num_rows > 0
        assert first[name].equals(again[name]), name
        assert not first[name].drop_columns(["fault"]).equals(other[name]), name


def test_split_intervals_give_the_same_rows_as_one_interval():
    config = GeneratorConfig(scale=0.05)
    world = build_world(config)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    middle, end = start + timedelta(hours=30), start + timedelta(days=2)
    whole = arrived_events(world, config, Interval(start, end))
    first = arrived_events(world, config, Interval(start, middle))
    second = arrived_events(world, config, Interval(middle, end))
    for name in whole:
        split = pa.concat_tables([first[name], second[name]])
        keys = [(c, "ascending") for c in whole[name].column_names]
        assert whole[name].num_rows > 0
        assert split.sort_by(keys).equals(whole[name].sort_by(keys)), name


def test_volume_follows_scale():
    per_day = {
        scale: sum(t.num_rows for t in day_events(build_world(c), c, DAY).values())
        for scale in (0.1, 1.0)
        for c in [GeneratorConfig(scale=scale)]
    }
    assert 30_000 <= per_day[1.0] <= 50_000
    assert 0.08 * per_day[1.0] <= per_day[0.1] <= 0.12 * per_day[1.0]


def test_member_activity_is_zipf_skewed():
    config = GeneratorConfig(scale=0.2)
    plays = _days(config, DAY, 3)["playback_events"].dropna(subset=["member_id"])
    per_member = plays["member_id"].value_counts()
    members = build_world(config).members
    top_share = per_member.iloc[: members // 100].sum() / len(plays)
    # 1% of the members would hold 1% of the plays without skew.
    assert top_share > 0.10, top_share
    assert per_member.iloc[0] > 20 * per_member.median()


def test_activity_follows_a_daily_cycle():
    plays = _days(GeneratorConfig(scale=0.2), DAY, 3)["playback_events"]
    per_hour = plays["event_timestamp"].dt.hour.value_counts().reindex(range(24), fill_value=0)
    evening, morning = per_hour.loc[19:23].mean(), per_hour.loc[5:9].mean()
    assert evening > 3 * morning, per_hour.to_dict()


@pytest.mark.parametrize("late_share", [0.0, 0.02, 0.08])
def test_late_arrivals_match_the_configured_share(late_share):
    events = _days(GeneratorConfig(scale=0.2, late_share=late_share), DAY, 2)
    for name in ("playback_events", "ad_impressions"):
        originals = events[name][events[name]["fault"] == ""]
        lag = _lag_seconds(originals)
        assert (lag > 0).all()
        late = lag > 3600
        assert (lag[~late] <= 600).all(), "on-time rows arrive within ten minutes"
        assert (lag[late] <= 12 * 3600).all()
        if late_share == 0:
            assert not late.any()
        else:
            assert 0.7 * late_share <= late.mean() <= 1.3 * late_share, (name, late.mean())


def test_malformed_rows_have_the_configured_share_and_their_defect():
    config = GeneratorConfig(scale=1.0, malformed_share=0.1, duplicate_share=0.02, hostile_share=0)
    events = _days(config, DAY, 2)
    for name, df in events.items():
        is_copy = df["fault"].str.startswith("duplicate:")
        originals = df[~is_copy]
        share = (originals["fault"] != "").mean()
        assert 0.7 * 0.1 <= share <= 1.3 * 0.1, (name, share)
        copies = is_copy.sum() / len(originals)
        # Only valid rows are delivered twice, and clicks are few: loose bounds.
        assert 0.3 * 0.02 <= copies <= 1.5 * 0.02, (name, copies)

    plays = events["playback_events"]
    for column in ("event_id", "member_id", "title_id"):
        nulled = plays["fault"] == f"null:{column}"
        assert nulled.any()
        assert plays.loc[nulled, column].isna().all()
        assert not plays.loc[~nulled, column].isna().any()
    negative = plays["fault"] == "out_of_range:watch_seconds"
    assert (plays.loc[negative, "watch_seconds"] < 0).all()
    assert (plays.loc[~negative, "watch_seconds"] > 0).all()
    for df in events.values():
        future = df["fault"] == "future:event_timestamp"
        assert future.any()
        assert (_lag_seconds(df[future]) < -3600).all()
        assert (_lag_seconds(df[~future]) > 0).all()

    clicks, impressions = events["ad_clicks"], events["ad_impressions"]
    shown = set(impressions.loc[impressions["fault"] == "", "impression_id"])
    orphan = clicks["fault"] == "orphan:impression_id"
    assert orphan.any()
    assert not clicks.loc[orphan, "impression_id"].isin(shown).any()
    valid = clicks[clicks["fault"].isin(["", "duplicate:impression_id"])]
    assert valid["impression_id"].isin(shown).all()

    copies = plays[plays["fault"] == "duplicate:event_id"]
    originals = plays[plays["fault"] == ""].set_index("event_id")
    assert copies["event_id"].isin(originals.index).all()
    first_arrival = originals.loc[copies["event_id"], "ingestion_timestamp"].to_numpy()
    assert (copies["ingestion_timestamp"].to_numpy() > first_arrival).all()


def test_hostile_rows_are_what_their_label_says():
    config = GeneratorConfig(scale=1.0, malformed_share=0, duplicate_share=0, hostile_share=0.1)
    events = _days(config, DAY, 2)
    plays = events["playback_events"]
    watch = plays.set_index("fault")["watch_seconds"]
    assert watch.loc[["not_finite:watch_seconds"]].map(lambda v: not np.isfinite(v)).all()
    assert (watch.loc[["not_finite:watch_seconds"]] == np.inf).any()
    assert (watch.loc[["out_of_range:watch_seconds"]] == 1e30).all()
    assert (plays.loc[plays["fault"] == "not_allowed:device", "device"] == "unknown_label").all()
    for name, df in events.items():
        fault = df["fault"]
        assert df.loc[fault == "null:event_timestamp", "event_timestamp"].isna().all()
        assert df.loc[fault == "null:event_timestamp", "event_date"].isna().all()
        assert df.loc[fault == "null:ingestion_timestamp", "ingestion_timestamp"].isna().all()
        assert (
            df.loc[fault == "out_of_range:event_timestamp", "event_timestamp"].dt.year == 1970
        ).all()
        ancient = df.loc[fault == "out_of_range:ingestion_timestamp", "ingestion_timestamp"]
        assert (ancient.dt.year == 1970).all()
        assert {
            "null:event_timestamp",
            "null:ingestion_timestamp",
            "out_of_range:event_timestamp",
            "out_of_range:ingestion_timestamp",
        } <= set(fault), name
        # Redeliveries of accepted ids, arriving later, some with the event time days back.
        key = "event_id" if name == "playback_events" else "impression_id"
        copies = df[fault.str.startswith("duplicate:")]
        originals = df[fault == ""].drop_duplicates(key).set_index(key)
        assert len(copies) > 0 and copies[key].isin(originals.index).all()
        first = originals.loc[copies[key]]
        assert (
            copies["ingestion_timestamp"].to_numpy() > first["ingestion_timestamp"].to_numpy()
        ).all()
        moved = first["event_timestamp"].to_numpy() - copies["event_timestamp"].to_numpy()
        assert (moved >= np.timedelta64(1, "D")).any()
        # Some valid rows claim another day than their event time's.
        valid = df[fault == ""]
        assert (valid["event_date"] != valid["event_timestamp"].dt.date).any()


def test_hostile_rows_leave_the_other_rows_as_they_were():
    calm = _days(GeneratorConfig(scale=0.2, hostile_share=0), DAY, 1)
    hostile = _days(GeneratorConfig(scale=0.2, hostile_share=0.05), DAY, 1)
    for name in calm:
        before = calm[name].drop(columns=["event_date"])
        after = hostile[name].drop(columns=["event_date"]).iloc[: len(before)]
        pd.testing.assert_frame_equal(before, after)
    assert len(hostile["playback_events"]) > len(calm["playback_events"])


def test_watch_seconds_look_like_viewing_sessions():
    plays = _days(GeneratorConfig(scale=0.2), DAY, 1)["playback_events"]
    watched = plays.loc[plays["fault"] == "", "watch_seconds"]
    assert 5 * 60 <= watched.median() <= 40 * 60
    assert (watched < 120).mean() > 0.1, "some sessions are abandoned quickly"
    assert watched.quantile(0.99) > 3600


def _clicks_on_impressions(events: dict[str, pd.DataFrame]) -> pd.DataFrame:
    impressions = events["ad_impressions"]
    impressions = impressions[impressions["fault"] == ""].copy()
    clicks = events["ad_clicks"]
    clicked = set(clicks.loc[clicks["fault"].isin(["", "duplicate"]), "impression_id"])
    impressions["clicked"] = impressions["impression_id"].isin(clicked)
    return impressions


def test_clicks_depend_on_member_and_ad_attributes():
    config = GeneratorConfig(scale=1.0)
    world = build_world(config)
    shown = _clicks_on_impressions(_days(config, DAY, 3))
    ctr = shown["clicked"].mean()
    assert 0.01 <= ctr <= 0.05

    ad_quality = pd.Series(world.ad_quality_logit, index=world.ad_id)
    quality_tier = pd.qcut(shown["ad_id"].map(ad_quality), 3, labels=["low", "mid", "high"])
    by_quality = shown.groupby(quality_tier, observed=True)["clicked"].mean()
    assert by_quality["high"] > 1.5 * by_quality["low"], by_quality.to_dict()

    propensity = pd.Series(world.member_click_logit, index=world.member_id)
    member_tier = pd.qcut(shown["member_id"].map(propensity), 3, labels=["low", "mid", "high"])
    by_member = shown.groupby(member_tier, observed=True)["clicked"].mean()
    assert by_member["high"] > 1.5 * by_member["low"], by_member.to_dict()

    by_placement = shown.groupby("placement")["clicked"].mean()
    assert set(by_placement.index) == set(PLACEMENTS)
    assert by_placement["pause_screen"] > 1.5 * by_placement["banner"], by_placement.to_dict()

    plan = pd.Series(np.asarray(["ads", "basic", "standard", "premium"])[world.member_plan])
    plan.index = world.member_id
    on_ads_plan = shown["member_id"].map(plan) == "ads"
    assert (
        shown.loc[on_ads_plan, "clicked"].mean() > 1.2 * shown.loc[~on_ads_plan, "clicked"].mean()
    )


def test_click_history_predicts_future_clicks():
    """Per-ad CTR and per-member click history of past days rank the next day's clicks."""
    config = GeneratorConfig(scale=1.0)
    shown = _clicks_on_impressions(_days(config, DAY, 4))
    history = shown[shown["event_timestamp"] < pd.Timestamp(DAY + timedelta(days=3), tz="UTC")]
    future = shown.drop(history.index)
    prior, weight = history["clicked"].mean(), 50.0

    def smoothed_rate(key: str) -> pd.Series:
        grouped = history.groupby(key)["clicked"].agg(["sum", "count"])
        rate = (grouped["sum"] + prior * weight) / (grouped["count"] + weight)
        return future[key].map(rate).fillna(prior)

    score = smoothed_rate("ad_id") * smoothed_rate("member_id")
    auc = roc_auc_score(future["clicked"], score)
    assert auc > 0.62, auc  # a constant predictor scores 0.5


def test_config_is_checked():
    with pytest.raises(GeneratorConfigError, match="scale"):
        GeneratorConfig(scale=0)
    with pytest.raises(GeneratorConfigError, match="late_share"):
        GeneratorConfig(late_share=0.7)
    with pytest.raises(GeneratorConfigError, match="seed"):
        GeneratorConfig(seed=-1)


# --- the Spark job ------------------------------------------------------------------

START, MIDDLE, END = "2026-03-02", "2026-03-03", "2026-03-04"
SCALE = 0.05
# Enough hostile rows that both runs write some without a usable ingestion time.
HOSTILE = 0.02


def _db(kind: str) -> str:
    """This module's raw databases: `split` (two runs) and `whole` (one run)."""
    return f"{database_prefix()}{kind}"


@pytest.fixture(scope="module")
def split_run(spark):
    """The same two days generated in two runs (database `split`) and in one (`whole`)."""
    shares = {"scale": SCALE, "hostile_share": HOSTILE}
    first = generate(spark, start=START, end=MIDDLE, database=_db("split"), **shares)
    second = generate(spark, start=MIDDLE, end=END, database=_db("split"), **shares)
    whole = generate(spark, start=START, end=END, database=_db("whole"), **shares)
    return first, second, whole


def test_generate_writes_catalog_tables_with_the_contract_schemas(spark, split_run):
    first, second, _ = split_run
    for name, schema in {**DIMENSIONS, **RAW_EVENTS}.items():
        table = f"{_db('split')}.{name}"
        assert spark.catalog.tableExists(table)
        actual = [(f.name, f.dataType) for f in spark.table(table).schema]
        assert actual == [(f.name, f.dataType) for f in schema], name
        detail = spark.sql(f"DESCRIBE DETAIL {table}").first()
        assert detail["format"] == "delta"
        expected_partitions = ["event_date"] if name in RAW_EVENTS else []
        assert list(detail["partitionColumns"]) == expected_partitions, name
    assert set(first) == {*DIMENSIONS, *RAW_EVENTS}
    assert all(first[name] > 0 for name in first)

    members = spark.table(f"{_db('split')}.members")
    stamps = members.select(F.date_format("ingestion_timestamp", "yyyy-MM-dd HH:mm:ss.SSSSSS"))
    assert [row[0] for row in stamps.distinct().collect()] == ["2026-03-02 00:00:00.000000"]
    assert members.count() == first["members"]

    plays = spark.table(f"{_db('split')}.playback_events")
    # Only the rows a broken producer writes (hostile_share) carry another day.
    lying = plays.where(F.col("event_date") != F.to_date("event_timestamp")).count()
    assert lying <= 2 * HOSTILE * plays.count()
    # Every row written once, those without a usable ingestion time included.
    assert plays.count() == first["playback_events"] + second["playback_events"]


def test_split_runs_equal_one_run_and_reruns_change_nothing(spark, split_run):
    first, second, whole = split_run
    for name in RAW_EVENTS:
        assert first[name] + second[name] == whole[name], name
    for name in {**DIMENSIONS, **RAW_EVENTS}:
        assertDataFrameEqual(
            spark.table(f"{_db('split')}.{name}"), spark.table(f"{_db('whole')}.{name}")
        )

    without_time = spark.table(f"{_db('split')}.ad_impressions").where(
        "ingestion_timestamp IS NULL OR year(ingestion_timestamp) = 1970"
    )
    assert without_time.count() > 0
    before = spark.table(f"{_db('split')}.ad_impressions").toPandas()
    generate(
        spark, start=MIDDLE, end=END, scale=SCALE, hostile_share=HOSTILE, database=_db("split")
    )
    after = spark.table(f"{_db('split')}.ad_impressions").toPandas()
    key = ["impression_id", "ingestion_timestamp", "event_timestamp"]
    pd.testing.assert_frame_equal(
        before.sort_values(key, ignore_index=True), after.sort_values(key, ignore_index=True)
    )


def test_rows_reach_spark_by_column_name_and_unmodelled_columns_are_null(spark):
    """A column added to a source's declaration needs no generator change to be written."""
    from pyspark.sql import types as T

    from pipelines.generate.job import _to_spark

    schema = T.StructType(
        [
            T.StructField("event_id", T.StringType()),
            T.StructField("bitrate_kbps", T.LongType()),
            T.StructField("watch_seconds", T.DoubleType()),
        ]
    )
    built = pa.table({"watch_seconds": [1.5, 2.5], "event_id": ["a", "b"]})
    rows = _to_spark(spark, built, schema).orderBy("event_id").collect()
    assert [tuple(r) for r in rows] == [("a", None, 1.5), ("b", None, 2.5)]
