"""Hand-made clean tables for the engine's tests (not tests): events on window boundaries,
entities with one event, windows that empty out, several events in one hour, ties on time
for LAST, null values, late arrivals, a view with two sources, and dimension versions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from features import REGISTRY, Aggregation, AttributeView, FeatureView, Op
from features.entities import member
from features.sources import playback_events
from pipelines.tables import CLEAN_EVENTS, DIMENSIONS, clean_table

B = datetime(2026, 3, 2)  # a Monday, naive UTC like the rows Spark returns
START, END = B, B + timedelta(days=33)  # every event's 28-day decay lands inside
WINDOWED = [v for v in REGISTRY.views if isinstance(v, FeatureView)]
ATTRIBUTES = [v for v in REGISTRY.views if isinstance(v, AttributeView)]


def at(hours: float, minutes: float = 0, seconds: float = 0) -> datetime:
    return B + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _play(n, member, title, device, when, watch, arrived=None) -> dict[str, Any]:
    return {
        "event_id": f"p{n}",
        "member_id": member,
        "title_id": title,
        "device": device,
        "event_timestamp": when,
        "watch_seconds": watch,
        "ingestion_timestamp": arrived or when + timedelta(minutes=3),
        "event_date": when.date(),
    }


def _impression(n, member, ad, placement, when, arrived=None) -> dict[str, Any]:
    return {
        "impression_id": f"i{n}",
        "member_id": member,
        "ad_id": ad,
        "placement": placement,
        "event_timestamp": when,
        "ingestion_timestamp": arrived or when + timedelta(minutes=1),
        "event_date": when.date(),
    }


def _click(n, member, ad, when, arrived=None) -> dict[str, Any]:
    return {
        "impression_id": f"i{n}",
        "member_id": member,
        "ad_id": ad,
        "event_timestamp": when,
        "ingestion_timestamp": arrived or when + timedelta(minutes=2),
        "event_date": when.date(),
    }


PLAYS = [
    # member 1: a single event
    _play(1, 1, 10, "tv", at(2, 10), 100.0),
    # member 2: several events in one hour, then a tie on time (LAST -> greatest value)
    _play(2, 2, 10, "tv", at(5), 50.0),
    _play(3, 2, 11, "phone", at(5, 30), 70.5),
    _play(4, 2, 10, "web", at(5, 59, 59), 30.0),
    _play(5, 2, 11, "tablet", at(7, 15), 20.0),
    _play(6, 2, 12, "phone", at(7, 15), 40.0),
    # member 3: events exactly on hour boundaries (window edges), one arriving 2 hours late
    _play(7, 3, 10, "tv", at(9, 30), 10.0),
    _play(8, 3, 12, "tv", at(10), 12.5, arrived=at(12)),
    _play(9, 3, 12, "web", at(34), 8.0),
    _play(10, 3, 11, "web", at(10 + 7 * 24), 1.0),
    # member 4: null values count as events but not as values
    _play(11, 4, 11, None, at(20, 45), None),
    _play(12, 4, 11, "phone", at(21, 5), 300.0),
    _play(13, 4, 12, None, at(21, 50), 60.0),
    # title 10 is popular: plays from many members over many hours
    *[_play(100 + i, 5 + i % 6, 10, "tv", at(i * 3, 17), 10.0 * (i + 1)) for i in range(20)],
    # a row without a member does not count
    _play(200, None, 12, "tv", at(3), 5.0),
]
IMPRESSIONS = [
    _impression(1, 1, 100, "home", at(1, 5)),
    _impression(2, 1, 100, "row", at(1, 40)),
    _impression(3, 2, 100, "home", at(3)),
    _impression(4, 2, 101, "player", at(3)),
    _impression(5, 3, 100, "row", at(30), arrived=at(33)),
    _impression(6, 1, 101, "home", at(26)),
]
CLICKS = [
    _click(2, 1, 100, at(1, 41)),
    _click(4, 2, 101, at(3, 1)),
    _click(5, 3, 100, at(30, 2), arrived=at(40)),
]
MEMBERS = [
    {"member_id": 1, "country": "FR", "plan": "basic", "signup_date": B.date(), "ingestion_timestamp": at(-30)},
    {"member_id": 1, "country": "FR", "plan": "premium", "signup_date": B.date(), "ingestion_timestamp": at(50)},
    {"member_id": 2, "country": "US", "plan": "basic", "signup_date": None, "ingestion_timestamp": at(0)},
    {"member_id": 3, "country": "DE", "plan": "basic", "signup_date": B.date(), "ingestion_timestamp": at(0)},
    {"member_id": 3, "country": "AT", "plan": "basic", "signup_date": B.date(), "ingestion_timestamp": at(0)},
]  # fmt: skip
TITLES = [
    {"title_id": 10, "genre": "drama", "release_date": B.date(), "ingestion_timestamp": at(0)},
    {"title_id": 11, "genre": "comedy", "release_date": None, "ingestion_timestamp": at(24 * 40)},
]
ADS = [
    {"ad_id": 100, "campaign_id": 7, "advertiser": "acme", "category": "food", "bid_cpm": 2.5, "ingestion_timestamp": at(1)},
    {"ad_id": 101, "campaign_id": 8, "advertiser": "beta", "category": "cars", "bid_cpm": 4.0, "ingestion_timestamp": at(1)},
]  # fmt: skip
EVENTS = {"playback_events": PLAYS, "ad_impressions": IMPRESSIONS, "ad_clicks": CLICKS}
DIMENSION_ROWS = {"members": MEMBERS, "titles": TITLES, "ads": ADS}
LATE_PLAY = _play(999, 1, 11, "phone", at(3, 20), 55.0, arrived=at(24 * 40))


def write_clean_tables(spark) -> None:
    for name, rows in EVENTS.items():
        _write(spark, clean_table(name), rows, CLEAN_EVENTS[name], ["event_date"])
    for name, rows in DIMENSION_ROWS.items():
        _write(spark, clean_table(name), rows, DIMENSIONS[name], [])


def _write(spark, table, rows, schema, partition_by) -> None:
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {table.split('.')[0]}")
    df = spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema)
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    writer.partitionBy(*partition_by).saveAsTable(table)


# Windows that do not all divide one another (two chains of nested blocks, three
# levels in one), with every op on each, an hour-long min, and a 3-hour window whose
# blocks are smaller than a day.
ODD_WINDOWS = FeatureView(
    "odd_windows",
    entity=member,
    aggregations=(
        Aggregation(playback_events, Op.COUNT, ("3h", "2d", "5d"), alias="plays"),
        Aggregation(playback_events, Op.SUM, ("3h", "2d"), column="watch_seconds"),
        Aggregation(playback_events, Op.AVG, ("1d", "5d"), column="watch_seconds"),
        Aggregation(playback_events, Op.MIN, ("1h", "3h", "2d"), column="watch_seconds"),
        Aggregation(playback_events, Op.MAX, ("1d", "5d"), column="watch_seconds"),
        Aggregation(playback_events, Op.APPROX_DISTINCT, ("3h", "2d", "5d"), column="title_id"),
        Aggregation(playback_events, Op.LAST, ("2d",), column="device"),
    ),
)
