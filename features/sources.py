"""Sources: the clean tables the features are computed from (written by `ingest`).

Each source declares what a valid row is (`Validity`); ingest quarantines rows that
break it and compute skips any that reach a clean table some other way.
"""

from __future__ import annotations

from datetime import timedelta

from features.core import (
    Carried,
    DeclarationError,
    DimensionSource,
    EventSource,
    IdDay,
    Range,
    Validity,
)

DEVICES = ("tv", "mobile", "web", "tablet", "console")
PLACEMENTS = ("preroll", "midroll", "pause_screen", "banner")
PLANS = ("ads", "basic", "standard", "premium")
# Producers name events by kind, day made and sequence (`pb-20261105-000042`); a redelivery
# keeps the name, whatever its times say.
DAY_IN_ID = IdDay(r"^[a-z]+-([0-9]{8})-")

playback_events = EventSource(
    "playback_events",
    columns={
        "event_id": "string",
        "member_id": "int64",
        "title_id": "int64",
        "device": "string",
        "watch_seconds": "float64",
    },
    description="One row per playback session.",
    id_column="event_id",
    id_day=DAY_IN_ID,
    validity=Validity(
        required=("event_id", "member_id", "title_id", "watch_seconds"),
        # A session of more than a day is not a watch: a player that never reported its end.
        ranges={"watch_seconds": Range(0.0, 86_400.0)},
        allowed={"device": DEVICES},
    ),
)
ad_impressions = EventSource(
    "ad_impressions",
    columns={
        "impression_id": "string",
        "member_id": "int64",
        "ad_id": "int64",
        "placement": "string",
    },
    description="One row per ad shown to a member.",
    id_column="impression_id",
    id_day=DAY_IN_ID,
    validity=Validity(
        required=("impression_id", "member_id", "ad_id"), allowed={"placement": PLACEMENTS}
    ),
)
ad_clicks = EventSource(
    "ad_clicks",
    columns={"impression_id": "string", "member_id": "int64", "ad_id": "int64"},
    description="One row per click, carrying its impression's member and ad.",
    # A device that uploads late uploads up to 12 hours of events; a click travels with
    # its impression, which adds a few seconds.
    max_lateness=timedelta(hours=13),
    id_column="impression_id",
    id_day=DAY_IN_ID,
    validity=Validity(required=("impression_id",)),
    # The raw click names its impression only; its member and ad come from there.
    carried=Carried("ad_impressions", on="impression_id", columns=("member_id", "ad_id")),
)

members = DimensionSource(
    "members",
    key_column="member_id",
    columns={"member_id": "int64", "country": "string", "plan": "string", "signup_date": "date"},
    validity=Validity(allowed={"plan": PLANS}),
)
titles = DimensionSource(
    "titles",
    key_column="title_id",
    columns={"title_id": "int64", "genre": "string", "release_date": "date"},
)
ads = DimensionSource(
    "ads",
    key_column="ad_id",
    columns={
        "ad_id": "int64",
        "campaign_id": "int64",
        "advertiser": "string",
        "category": "string",
        "bid_cpm": "float64",
    },
    validity=Validity(ranges={"bid_cpm": Range(0.0, 10_000.0)}),
)

DIMENSION_SOURCES = (members, titles, ads)
EVENT_SOURCES = (playback_events, ad_impressions, ad_clicks)


def _check_carried(sources: tuple[EventSource, ...]) -> None:
    """A carried column comes from an event source declared (and ingested) before."""
    earlier: dict[str, EventSource] = {}
    for source in sources:
        carried = source.carried
        if carried is not None:
            parent = earlier.get(carried.source)
            if parent is None:
                raise DeclarationError(
                    f"source {source.name} carries columns of {carried.source!r}, "
                    "which is not an event source declared before it"
                )
            for column in (carried.on, *carried.columns):
                if parent.columns.get(column) != source.columns[column]:
                    raise DeclarationError(
                        f"source {source.name}: carried column {column!r} is not a column of "
                        f"{parent.name} with the same type"
                    )
        earlier[source.name] = source


_check_carried(EVENT_SOURCES)
