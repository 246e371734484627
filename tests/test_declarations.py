"""Declarations, without Spark: they are checked when declared, and everything derived from
them (table schemas, database names, the definition hash) follows them."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from features import DeclarationError, EventSource, IdDay
from features.core import Carried, Range, Validity
from features.sources import DIMENSION_SOURCES, EVENT_SOURCES
from pipelines.tables import CLEAN_EVENTS, DIMENSIONS

SPARK_TYPES = {
    "int64": "LongType",
    "float64": "DoubleType",
    "string": "StringType",
    "date": "DateType",
    "timestamp": "TimestampType",
}


def _source(**validity) -> EventSource:
    return EventSource(
        "plays",
        columns={"play_id": "string", "seconds": "float64", "device": "string"},
        id_column="play_id",
        validity=Validity(**validity),
    )


@pytest.mark.parametrize(
    ("validity", "message"),
    [
        ({"required": ("nope",)}, "unknown column 'nope'"),
        ({"ranges": {"device": Range(0, 1)}}, "range on non-numeric column device"),
        ({"allowed": {"seconds": ("a",)}}, "allowed values need a string column"),
        ({"allowed": {"device": ()}}, "at least one value"),
        ({"clock_skew": timedelta(minutes=-1)}, "clock_skew must not be negative"),
        ({"earliest": datetime(2000, 1, 1)}, "earliest must be timezone-aware"),
    ],
)
def test_bad_validity_is_refused_naming_the_source(validity, message):
    with pytest.raises(DeclarationError, match=message) as raised:
        _source(**validity)
    assert "plays" in str(raised.value)


def test_ranges_and_identity_are_checked():
    with pytest.raises(DeclarationError, match="empty range"):
        Range(5, 1)
    with pytest.raises(DeclarationError, match="id column 'nope' is unknown"):
        EventSource("plays", columns={"a": "string"}, id_column="nope")
    with pytest.raises(DeclarationError, match="has no group for the day"):
        IdDay(r"^pb-[0-9]{8}-")
    with pytest.raises(DeclarationError, match="id day pattern '\\('"):
        IdDay("(")
    with pytest.raises(DeclarationError, match="plays: id_day needs an id_column"):
        EventSource("plays", columns={"a": "string"}, id_day=IdDay("^([0-9]{8})"))


def test_every_event_source_declares_its_identity_and_validity():
    for source in EVENT_SOURCES:
        assert source.id_column in source.columns, source.name
        assert source.id_column in source.validity.required, source.name


def test_clean_tables_hold_exactly_the_declared_columns():
    contracts = {**CLEAN_EVENTS, **DIMENSIONS}
    for source in (*EVENT_SOURCES, *DIMENSION_SOURCES):
        schema = contracts[source.name]
        declared = {c: SPARK_TYPES[t] for c, t in source.columns.items()}
        stored = {f.name: type(f.dataType).__name__ for f in schema.fields}
        times = {source.ingestion_column}
        if isinstance(source, EventSource):
            times |= {source.timestamp_column, "event_date"}
        assert {c: t for c, t in stored.items() if c not in times} == declared, source.name
        assert times <= set(stored), source.name


def test_a_column_added_to_a_source_reaches_raw_and_clean_tables():
    from dataclasses import replace

    from features.sources import playback_events
    from pipelines.tables import clean_schema, raw_schema

    widened = replace(
        playback_events,
        columns={**playback_events.columns, "bitrate_kbps": "int64", "title_id": "string"},
    )
    for schema in (raw_schema(widened), clean_schema(widened)):
        types = {f.name: type(f.dataType).__name__ for f in schema.fields}
        assert types["bitrate_kbps"] == "LongType"
        assert types["title_id"] == "StringType"
        assert schema.fieldNames()[-3:] == ["event_timestamp", "ingestion_timestamp", "event_date"]


def test_carried_columns_are_in_the_clean_table_only():
    from features.sources import ad_clicks
    from pipelines.tables import RAW_EVENTS

    assert ad_clicks.carried is not None
    raw, clean = RAW_EVENTS["ad_clicks"].fieldNames(), CLEAN_EVENTS["ad_clicks"].fieldNames()
    assert set(clean) - set(raw) == set(ad_clicks.carried.columns) == {"member_id", "ad_id"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"carried": Carried("plays", on="play_id", columns=("nope",))}, "carried column 'nope'"),
        ({"carried": Carried("plays", on="play_id", columns=("play_id",))}, "carried and matched"),
        ({"partition_column": "device"}, "'device' is a time column"),
        ({"timestamp_column": "ingestion_timestamp"}, "time columns must differ"),
    ],
)
def test_bad_carried_or_time_columns_are_refused(change, message):
    from dataclasses import replace

    with pytest.raises(DeclarationError, match=message):
        replace(_source(), **change)


def test_only_the_catalog_spells_a_database_name():
    import re
    from pathlib import Path

    from features.catalog import LAYERS

    root = Path(__file__).resolve().parents[1]
    spelled = re.compile(rf"[\"'](?:{'|'.join(LAYERS)})\.[a-z_{{]")
    found = [
        f"{path.relative_to(root)}:{number}"
        for folder in ("features", "pipelines", "dags", "feature_repo")
        for path in sorted((root / folder).rglob("*.py"))
        if path.name != "catalog.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if spelled.search(line)
    ]
    assert found == []


def test_one_definition_hash_ignores_cosmetics_and_follows_meaning():
    from dataclasses import replace

    from features import REGISTRY, Aggregation, FeatureView
    from features.definition import cosmetics, definition_hash
    from pipelines.compute.backfill import fingerprint

    view = REGISTRY.view("member_engagement")
    assert isinstance(view, FeatureView)
    described = replace(view, description="rewritten", tags={"team": "ads"})
    assert cosmetics(described) != cosmetics(view)
    assert definition_hash(described) == definition_hash(view)
    assert fingerprint(described) == fingerprint(view), "a new description must keep progress"

    first = view.aggregations[0]
    widened = replace(first, window_specs=[*first.windows, "2h"])
    changed = replace(view, aggregations=(widened, *view.aggregations[1:]))
    assert isinstance(widened, Aggregation)
    assert definition_hash(changed) != definition_hash(view)
    assert fingerprint(changed) != fingerprint(view)
    shorter = replace(view, ttl=view.effective_ttl / 2)
    assert definition_hash(shorter) != definition_hash(view)


def test_declaration_errors_name_the_culprit() -> None:
    from features import Aggregation, FeatureView, Op, SmoothedRatio, Window
    from features.entities import member
    from features.sources import playback_events

    plays = Aggregation(playback_events, Op.COUNT, ("1d",), alias="plays")
    with pytest.raises(DeclarationError, match="'Bad-Name'"):
        FeatureView("Bad-Name", member, (plays,))
    with pytest.raises(DeclarationError, match="duplicate feature name 'plays_count_1d'"):
        FeatureView("twice", member, (plays, plays))
    for window in ("90m", "1.5h", "0h", "1w"):
        with pytest.raises(DeclarationError, match="window"):
            Aggregation(playback_events, Op.COUNT, (window,), alias="plays")
    with pytest.raises(DeclarationError):
        Window(0)
    with pytest.raises(DeclarationError, match="no column 'nope'"):
        Aggregation(playback_events, Op.MAX, ("1d",), column="nope")
    with pytest.raises(DeclarationError, match="not numeric"):
        Aggregation(playback_events, Op.SUM, ("1d",), column="device")
    ratio = SmoothedRatio("odd_ratio", "plays_count_1d", "watch_seconds_sum_1d", 0.1, 5.0)
    sums = Aggregation(playback_events, Op.SUM, ("1d",), column="watch_seconds")
    with pytest.raises(DeclarationError, match="not a count feature"):
        FeatureView("ratios", member, (plays, sums), ratios=(ratio,))


def test_one_setting_moves_every_database(monkeypatch):
    from features import REGISTRY
    from features.catalog import DATABASE_PREFIX_ENV, LAYERS, database
    from features.sources import members, playback_events
    from pipelines.compute.backfill import progress_table
    from pipelines.tables import quarantine_table, raw_table

    monkeypatch.setenv(DATABASE_PREFIX_ENV, "staging_")
    assert [database(layer) for layer in LAYERS] == [f"staging_{layer}" for layer in LAYERS]
    assert playback_events.table == "staging_clean.playback_events"
    assert members.table == "staging_clean.members"
    assert raw_table(playback_events) == "staging_raw.playback_events"
    assert quarantine_table() == "staging_clean.quarantine"
    assert progress_table() == "staging_monitoring.backfill_progress"
    assert {v.table.split(".")[0] for v in REGISTRY.views} == {"staging_features"}

    monkeypatch.setenv(DATABASE_PREFIX_ENV, "Prod-1")
    with pytest.raises(DeclarationError, match="FEATURE_PLATFORM_DATABASE_PREFIX='Prod-1'"):
        database("raw")
