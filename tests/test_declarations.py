"""Source declarations: validity rules are checked when declared, and the storage contract
(`pipelines/tables.py`) holds exactly the declared columns and types."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from features import DeclarationError, EventSource
from features.core import Range, Validity
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
        table="clean.plays",
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
        EventSource("plays", table="clean.plays", columns={"a": "string"}, id_column="nope")


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
