"""Schemas and names of the raw and clean tables (the platform's storage contract)."""

from __future__ import annotations

from pyspark.sql import types as T

from pipelines.config import CLEAN_DB, RAW_DB

TS = T.TimestampType()
# Clean and raw event tables are partitioned by the UTC date of the event time.
EVENT_DATE = "event_date"

MEMBERS = T.StructType(
    [
        T.StructField("member_id", T.LongType()),
        T.StructField("country", T.StringType()),
        T.StructField("plan", T.StringType()),
        T.StructField("signup_date", T.DateType()),
        T.StructField("ingestion_timestamp", TS),
    ]
)
TITLES = T.StructType(
    [
        T.StructField("title_id", T.LongType()),
        T.StructField("genre", T.StringType()),
        T.StructField("release_date", T.DateType()),
        T.StructField("ingestion_timestamp", TS),
    ]
)
ADS = T.StructType(
    [
        T.StructField("ad_id", T.LongType()),
        T.StructField("campaign_id", T.LongType()),
        T.StructField("advertiser", T.StringType()),
        T.StructField("category", T.StringType()),
        T.StructField("bid_cpm", T.DoubleType()),
        T.StructField("ingestion_timestamp", TS),
    ]
)
PLAYBACK_EVENTS = T.StructType(
    [
        T.StructField("event_id", T.StringType()),
        T.StructField("member_id", T.LongType()),
        T.StructField("title_id", T.LongType()),
        T.StructField("device", T.StringType()),
        T.StructField("event_timestamp", TS),
        T.StructField("watch_seconds", T.DoubleType()),
        T.StructField("ingestion_timestamp", TS),
        T.StructField("event_date", T.DateType()),
    ]
)
AD_IMPRESSIONS = T.StructType(
    [
        T.StructField("impression_id", T.StringType()),
        T.StructField("member_id", T.LongType()),
        T.StructField("ad_id", T.LongType()),
        T.StructField("placement", T.StringType()),
        T.StructField("event_timestamp", TS),
        T.StructField("ingestion_timestamp", TS),
        T.StructField("event_date", T.DateType()),
    ]
)
RAW_AD_CLICKS = T.StructType(
    [
        T.StructField("impression_id", T.StringType()),
        T.StructField("event_timestamp", TS),
        T.StructField("ingestion_timestamp", TS),
        T.StructField("event_date", T.DateType()),
    ]
)
# Clean clicks carry the impression's member and ad, so features can key on them.
CLEAN_AD_CLICKS = T.StructType(
    [
        T.StructField("impression_id", T.StringType()),
        T.StructField("member_id", T.LongType()),
        T.StructField("ad_id", T.LongType()),
        T.StructField("event_timestamp", TS),
        T.StructField("ingestion_timestamp", TS),
        T.StructField("event_date", T.DateType()),
    ]
)
# One quarantine table for every source: the raw row kept whole as JSON.
QUARANTINE = T.StructType(
    [
        T.StructField("source_table", T.StringType()),
        T.StructField("reason", T.StringType()),
        T.StructField("record", T.StringType()),
        T.StructField("event_timestamp", TS),
        T.StructField("ingestion_timestamp", TS),
        T.StructField("ingestion_date", T.DateType()),
    ]
)

# Every event id ingest accepted: duplicates are found by identity across all runs.
ACCEPTED_IDS = T.StructType(
    [
        T.StructField("source_table", T.StringType()),
        T.StructField("id", T.StringType()),
        T.StructField("ingestion_timestamp", TS),
    ]
)

DIMENSIONS = {"members": MEMBERS, "titles": TITLES, "ads": ADS}
RAW_EVENTS = {
    "playback_events": PLAYBACK_EVENTS,
    "ad_impressions": AD_IMPRESSIONS,
    "ad_clicks": RAW_AD_CLICKS,
}
CLEAN_EVENTS = {
    "playback_events": PLAYBACK_EVENTS,
    "ad_impressions": AD_IMPRESSIONS,
    "ad_clicks": CLEAN_AD_CLICKS,
}


def raw_table(name: str) -> str:
    return f"{RAW_DB}.{name}"


def clean_table(name: str) -> str:
    return f"{CLEAN_DB}.{name}"


QUARANTINE_TABLE = clean_table("quarantine")
