"""CTR labels: one row per clean impression, clicked = a click within 30 minutes after it."""

from __future__ import annotations

from datetime import datetime, timedelta

from pyspark.sql import Row
from pyspark.testing import assertDataFrameEqual

from pipelines.interval import Interval
from pipelines.tables import CLEAN_EVENTS
from pipelines.training import click_labels

AD_IMPRESSIONS = CLEAN_EVENTS["ad_impressions"]
CLEAN_AD_CLICKS = CLEAN_EVENTS["ad_clicks"]

B = datetime(2026, 3, 2)


def at(minutes: float) -> datetime:
    return B + timedelta(minutes=minutes)


def impression(n: int, when: datetime, member: int = 1, ad: int = 10) -> tuple:
    return (f"i{n}", member, ad, "home", when, when, when.date())


def click(n: int, when: datetime, arrived: datetime | None = None) -> tuple:
    return (f"i{n}", 1, 10, when, arrived or when, when.date())


def test_click_window_is_thirty_minutes_inclusive(spark):
    impressions = spark.createDataFrame(
        [
            impression(1, at(0)),  # click exactly 30 min later: clicked
            impression(2, at(10)),  # click 31 min later: not clicked
            impression(3, at(20)),  # click 1 min before the impression: not clicked
            impression(4, at(30), member=2),  # two clicks: still one row
            impression(5, at(40)),  # no click
            impression(6, at(23 * 60 + 50)),  # last minutes of the interval, click after its end
            impression(7, at(24 * 60)),  # outside the interval
            impression(8, at(-1)),  # outside the interval
            impression(9, at(50)),  # its click arrives just before the labels mature
            impression(11, at(60)),  # its click arrives as they mature: too late to count
        ],
        AD_IMPRESSIONS,
    )
    clicks = spark.createDataFrame(
        [
            click(1, at(30)),
            click(2, at(41)),
            click(3, at(19)),
            click(4, at(31)),
            click(4, at(35)),
            click(6, at(24 * 60 + 5)),
            click(7, at(24 * 60 + 1)),
            click(8, at(0)),
            # Mature at the end of the day + 14 hours (30 minutes + 13 hours, whole hours).
            click(9, at(55), arrived=at(38 * 60) - timedelta(microseconds=1)),
            click(11, at(61), arrived=at(38 * 60)),
        ],
        CLEAN_AD_CLICKS,
    )
    labels = click_labels(impressions, clicks, Interval.parse("2026-03-02", "2026-03-03"))
    assert labels.columns == [
        "member_id",
        "ad_id",
        "impression_id",
        "placement",
        "event_timestamp",
        "clicked",
    ]

    def row(n: int, minutes: float, clicked: int, member: int = 1) -> Row:
        return Row(
            member_id=member,
            ad_id=10,
            impression_id=f"i{n}",
            placement="home",
            event_timestamp=at(minutes),
            clicked=clicked,
        )

    assertDataFrameEqual(
        labels,
        [
            row(1, 0, 1),
            row(2, 10, 0),
            row(3, 20, 0),
            row(4, 30, 1, member=2),
            row(5, 40, 0),
            row(6, 23 * 60 + 50, 1),
            row(9, 50, 1),
            row(11, 60, 0),
        ],
    )


def test_labels_are_refused_until_mature(spark, tmp_path):
    import pytest

    from features.labels import ctr
    from pipelines.delta_io import ensure_database
    from pipelines.training.labels import LabelsNotMatureError, ctr_labels

    assert ctr.maturity == timedelta(hours=14)
    day = datetime(2026, 3, 2, 0, 0)
    impressions = spark.createDataFrame([impression(1, at(5))], AD_IMPRESSIONS)
    clicks = spark.createDataFrame([click(1, at(6), arrived=at(13 * 60))], CLEAN_AD_CLICKS)
    for rows, source in ((impressions, ctr.impressions), (clicks, ctr.clicks)):
        ensure_database(spark, source.table.split(".")[0])
        rows.write.format("delta").mode("overwrite").option("overwriteSchema", "true").saveAsTable(
            source.table
        )
    with pytest.raises(LabelsNotMatureError, match="final once clicks ingested until"):
        ctr_labels(spark, start=day, end=day + timedelta(days=1))
    early = ctr_labels(spark, start=day, end=day + timedelta(days=1), allow_immature=True)
    assert [r["clicked"] for r in early.collect()] == [1]
