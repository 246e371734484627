"""Feature views over the streaming and ads data.

Names follow `{column}_{op}_{window}`, e.g. `watch_seconds_sum_7d`.
"""

from __future__ import annotations

from features.core import Aggregation, AttributeView, FeatureView, Op, SmoothedRatio
from features.entities import ad, member, title
from features.sources import ad_clicks, ad_impressions, ads, members, playback_events, titles

member_engagement = FeatureView(
    "member_engagement",
    entity=member,
    aggregations=(
        Aggregation(playback_events, Op.COUNT, ("1h", "1d", "7d", "28d"), alias="plays"),
        Aggregation(playback_events, Op.SUM, ("1d", "7d", "28d"), column="watch_seconds"),
        Aggregation(playback_events, Op.AVG, ("7d", "28d"), column="watch_seconds"),
        Aggregation(playback_events, Op.MAX, ("7d",), column="watch_seconds"),
        Aggregation(
            playback_events, Op.APPROX_DISTINCT, ("7d", "28d"), column="title_id", alias="titles"
        ),
        Aggregation(
            playback_events, Op.APPROX_DISTINCT, ("28d",), column="device", alias="devices"
        ),
        Aggregation(playback_events, Op.LAST, ("28d",), column="device"),
        Aggregation(playback_events, Op.LAST, ("7d",), column="title_id"),
    ),
    description="How much and how a member watches.",
    tags={"team": "personalization"},
    realtime=True,
)

title_popularity = FeatureView(
    "title_popularity",
    entity=title,
    aggregations=(
        Aggregation(playback_events, Op.COUNT, ("1h", "1d", "7d"), alias="title_plays"),
        Aggregation(
            playback_events,
            Op.SUM,
            ("1d", "7d"),
            column="watch_seconds",
            alias="title_watch_seconds",
        ),
        Aggregation(
            playback_events, Op.AVG, ("7d",), column="watch_seconds", alias="title_watch_seconds"
        ),
        Aggregation(
            playback_events, Op.MIN, ("1d",), column="watch_seconds", alias="title_watch_seconds"
        ),
        Aggregation(
            playback_events,
            Op.APPROX_DISTINCT,
            ("1d", "7d"),
            column="member_id",
            alias="title_viewers",
        ),
    ),
    description="How popular a title is right now.",
    tags={"team": "personalization"},
)

ad_performance = FeatureView(
    "ad_performance",
    entity=ad,
    aggregations=(
        Aggregation(ad_impressions, Op.COUNT, ("1h", "1d", "7d"), alias="ad_impressions"),
        Aggregation(ad_clicks, Op.COUNT, ("1h", "1d", "7d"), alias="ad_clicks"),
        Aggregation(
            ad_impressions, Op.APPROX_DISTINCT, ("1d", "7d"), column="member_id", alias="ad_reach"
        ),
    ),
    ratios=(
        SmoothedRatio(
            "ad_ctr_smoothed_1d",
            "ad_clicks_count_1d",
            "ad_impressions_count_1d",
            prior=0.02,
            weight=100.0,
        ),
        SmoothedRatio(
            "ad_ctr_smoothed_7d",
            "ad_clicks_count_7d",
            "ad_impressions_count_7d",
            prior=0.02,
            weight=100.0,
        ),
    ),
    description="Delivery and click-through of an ad.",
    tags={"team": "ads"},
    realtime=True,
)

member_ad_history = FeatureView(
    "member_ad_history",
    entity=member,
    aggregations=(
        Aggregation(ad_impressions, Op.COUNT, ("1d", "7d", "28d"), alias="member_impressions"),
        Aggregation(ad_clicks, Op.COUNT, ("1d", "7d", "28d"), alias="member_clicks"),
        Aggregation(
            ad_impressions, Op.APPROX_DISTINCT, ("7d",), column="ad_id", alias="member_ads_seen"
        ),
        Aggregation(ad_impressions, Op.LAST, ("28d",), column="placement"),
    ),
    ratios=(
        SmoothedRatio(
            "member_ctr_smoothed_28d",
            "member_clicks_count_28d",
            "member_impressions_count_28d",
            prior=0.02,
            weight=20.0,
        ),
    ),
    description="A member's history with ads.",
    tags={"team": "ads"},
    realtime=True,
)

member_profile = AttributeView(
    "member_profile",
    entity=member,
    source=members,
    attributes=("country", "plan", "signup_date"),
    description="Who the member is.",
)

title_profile = AttributeView(
    "title_profile",
    entity=title,
    source=titles,
    attributes=("genre", "release_date"),
    description="What the title is.",
)

ad_profile = AttributeView(
    "ad_profile",
    entity=ad,
    source=ads,
    attributes=("campaign_id", "advertiser", "category", "bid_cpm"),
    description="What the ad is and what it bids.",
)

VIEWS = (
    member_engagement,
    title_popularity,
    ad_performance,
    member_ad_history,
    member_profile,
    title_profile,
    ad_profile,
)
