"""Sources: the clean tables the features are computed from (written by `ingest`)."""

from __future__ import annotations

from datetime import timedelta

from features.core import DimensionSource, EventSource

playback_events = EventSource(
    "playback_events",
    table="clean.playback_events",
    columns={
        "event_id": "string",
        "member_id": "int64",
        "title_id": "int64",
        "device": "string",
        "watch_seconds": "float64",
    },
    description="One row per playback session.",
)
ad_impressions = EventSource(
    "ad_impressions",
    table="clean.ad_impressions",
    columns={
        "impression_id": "string",
        "member_id": "int64",
        "ad_id": "int64",
        "placement": "string",
    },
    description="One row per ad shown to a member.",
)
ad_clicks = EventSource(
    "ad_clicks",
    table="clean.ad_clicks",
    columns={"impression_id": "string", "member_id": "int64", "ad_id": "int64"},
    description="One row per click, carrying its impression's member and ad.",
    # A device that uploads late uploads up to 12 hours of events; a click travels with
    # its impression, which adds a few seconds.
    max_lateness=timedelta(hours=13),
)

members = DimensionSource(
    "members",
    table="clean.members",
    key_column="member_id",
    columns={"member_id": "int64", "country": "string", "plan": "string", "signup_date": "date"},
)
titles = DimensionSource(
    "titles",
    table="clean.titles",
    key_column="title_id",
    columns={"title_id": "int64", "genre": "string", "release_date": "date"},
)
ads = DimensionSource(
    "ads",
    table="clean.ads",
    key_column="ad_id",
    columns={
        "ad_id": "int64",
        "campaign_id": "int64",
        "advertiser": "string",
        "category": "string",
        "bid_cpm": "float64",
    },
)
