"""Feature services: the features each model consumes."""

from __future__ import annotations

from features.core import FeatureService

ctr_model = FeatureService(
    "ctr_model",
    features={
        "ad_performance": (),
        "member_ad_history": (),
        "ad_profile": ("category", "advertiser", "bid_cpm"),
        "member_profile": ("country", "plan"),
        "member_engagement": ("plays_count_1d", "plays_count_7d", "watch_seconds_sum_7d"),
    },
    description="Click-through model for ad ranking (labels keyed by member_id and ad_id).",
)

engagement_model = FeatureService(
    "engagement_model",
    features={
        "member_engagement": (),
        "title_popularity": (),
        "member_profile": (),
        "title_profile": (),
    },
    description="Watch-engagement model (labels keyed by member_id and title_id).",
)

SERVICES = (ctr_model, engagement_model)
