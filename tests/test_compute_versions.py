"""Bitemporal feature tables against the brute-force oracle, on randomized late data.

Arrival delays mix the shapes real producers give: most events within minutes, many
hours late (across day and week boundaries, so tiles cross the engine's blocks),
days late, later than the largest window, and a few with a device clock slightly
ahead. Every version the engine writes must be the oracle's, and any split of the
knowledge interval must write the same table as one run.
"""

from __future__ import annotations

import itertools
import math
import random
from datetime import datetime, timedelta
from typing import Any

import feature_oracle as oracle
import pytest
from clean_events import ODD_WINDOWS
from pyspark.sql import functions as F

from features import REGISTRY, FeatureView
from features.catalog import CLEAN, database
from pipelines.compute import compute
from pipelines.tables import CLEAN_EVENTS, clean_table

B = datetime(2026, 5, 9, 18)  # a Saturday evening: the runs cross a day and a week boundary
HOURS = 60
KNOWN_FROM, KNOWN_UNTIL = B, B + timedelta(hours=HOURS + 30 * 24)
WINDOWED = [v for v in REGISTRY.views if isinstance(v, FeatureView)]


def _delay(rng: random.Random) -> timedelta:
    draw = rng.random()
    if draw < 0.55:
        return timedelta(seconds=rng.randint(1, 600))
    if draw < 0.80:
        return timedelta(minutes=rng.randint(30, 13 * 60))
    if draw < 0.90:
        return timedelta(hours=rng.randint(20, 80))
    if draw < 0.95:
        return timedelta(days=rng.randint(6, 31))  # past a week, and past 28 days
    return -timedelta(seconds=rng.randint(1, 290))  # a clock slightly ahead


def _events(seed: int) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    plays, impressions, clicks = [], [], []
    for n in range(260):
        when = B + timedelta(minutes=rng.randint(0, HOURS * 60 - 1), seconds=rng.randint(0, 59))
        if n % 13 == 0:
            when = when.replace(minute=0, second=0)  # on an hour boundary
        arrived = when + _delay(rng)
        plays.append(
            {
                "event_id": f"p{n}",
                "member_id": rng.choice([1, 2, 3, 4]),
                "title_id": rng.choice([10, 11, 12, 13, 14]),
                "device": rng.choice(["tv", "web", "phone", None]),
                "event_timestamp": when,
                "watch_seconds": rng.choice([None, round(rng.uniform(1, 5000), 3)]),
                "ingestion_timestamp": arrived,
                "event_date": when.date(),
            }
        )
    for n in range(160):
        when = B + timedelta(minutes=rng.randint(0, HOURS * 60 - 1))
        arrived = when + _delay(rng)
        row = {
            "impression_id": f"i{n}",
            "member_id": rng.choice([1, 2, 3]),
            "ad_id": rng.choice([100, 101, 102]),
            "placement": rng.choice(["home", "row", "player"]),
            "event_timestamp": when,
            "ingestion_timestamp": arrived,
            "event_date": when.date(),
        }
        impressions.append(row)
        if rng.random() < 0.4:
            click_time = when + timedelta(minutes=rng.randint(0, 20))
            clicks.append(
                {
                    "impression_id": row["impression_id"],
                    "member_id": row["member_id"],
                    "ad_id": row["ad_id"],
                    "event_timestamp": click_time,
                    "ingestion_timestamp": max(arrived, click_time) + _delay(rng),
                    "event_date": click_time.date(),
                }
            )
    return {"playback_events": plays, "ad_impressions": impressions, "ad_clicks": clicks}


EVENTS = _events(seed=20261206)


@pytest.fixture(scope="module")
def clean(spark) -> None:
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database(CLEAN)}")
    for name, rows in EVENTS.items():
        schema = CLEAN_EVENTS[name]
        df = spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema)
        df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").partitionBy(
            "event_date"
        ).saveAsTable(clean_table(name))


def versions(spark, view) -> dict[tuple[Any, datetime, datetime], dict[str, Any]]:
    """The versions of this module's knowledge interval (other modules write other years)."""
    key = view.entity.join_key
    out = {}
    known = (F.col("created_timestamp") > KNOWN_FROM) & (F.col("created_timestamp") <= KNOWN_UNTIL)
    for row in spark.table(view.table).where(known).collect():
        values = row.asDict()
        values.pop("event_date")
        out[(values.pop(key), values.pop("event_timestamp"), values.pop("created_timestamp"))] = (
            values
        )
    return out


def assert_versions_match(actual: dict, expected: dict, where: str) -> None:
    assert sorted(actual) == sorted(expected), where
    for version, want in expected.items():
        for name, value in want.items():
            got = actual[version][name]
            if isinstance(value, float) and got is not None:
                assert math.isclose(got, value, rel_tol=1e-12, abs_tol=1e-9), (where, version, name)
            else:
                assert got == value, (where, version, name, got, value)


@pytest.fixture(scope="module")
def one_run(spark, clean) -> dict[str, dict]:
    views = [*WINDOWED, ODD_WINDOWS]
    compute(spark, start=KNOWN_FROM, end=KNOWN_UNTIL, views=views)
    return {view.name: versions(spark, view) for view in views}


@pytest.mark.parametrize("view", [*WINDOWED, ODD_WINDOWS], ids=lambda v: v.name)
def test_every_version_matches_the_oracle(one_run, view) -> None:
    expected = oracle.windowed_rows(view, EVENTS, KNOWN_FROM, KNOWN_UNTIL)
    assert len(expected) > 200
    assert_versions_match(one_run[view.name], expected, view.name)


def test_late_data_gives_rows_many_versions(one_run) -> None:
    """The data exercises what it must: corrections hours and weeks after a row."""
    table = one_run["member_engagement"]
    per_row: dict[tuple, int] = {}
    for entity, moment, _ in table:
        per_row[(entity, moment)] = per_row.get((entity, moment), 0) + 1
    assert max(per_row.values()) >= 4
    gaps = [known - moment for _, moment, known in table]
    assert max(gaps) > timedelta(days=28) and min(gaps) == timedelta(0)


@pytest.mark.parametrize(
    "cuts",
    [
        [7, 31, 32, 59],  # hour by hour across a day's boundary, and uneven chunks
        [24 * 12],
    ],
    ids=["uneven", "halves"],
)
def test_any_split_of_the_knowledge_interval_writes_the_same_table(spark, one_run, cuts) -> None:
    views = [REGISTRY.view("member_engagement"), ODD_WINDOWS]
    for view in views:
        spark.sql(
            f"DELETE FROM {view.table} WHERE created_timestamp > TIMESTAMP '{KNOWN_FROM}' "
            f"AND created_timestamp <= TIMESTAMP '{KNOWN_UNTIL}'"
        )
    bounds = [KNOWN_FROM, *[B + timedelta(hours=h) for h in cuts], KNOWN_UNTIL]
    for start, end in itertools.pairwise(bounds):
        compute(spark, start=start, end=end, views=views)
    for view in views:
        assert versions(spark, view) == one_run[view.name], view.name


def test_a_run_writes_exactly_the_versions_it_learned(spark, one_run) -> None:
    view = REGISTRY.view("title_popularity")
    hour = (B + timedelta(hours=40), B + timedelta(hours=41))
    compute(spark, start=hour[0], end=hour[1], views=[view])
    expected = oracle.windowed_rows(view, EVENTS, *hour)
    assert expected and all(hour[0] < known <= hour[1] for (_, _, known) in expected)
    written = {k: v for k, v in versions(spark, view).items() if hour[0] < k[2] <= hour[1]}
    assert_versions_match(written, expected, "one hour")
    assert versions(spark, view) == one_run[view.name]  # a rerun replaced exactly those
