"""Why a raw row is quarantined. Each row gets exactly one reason: the first that applies."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    NULL_KEY = "null_key"  # a key, the event time or another required value is null
    FUTURE_TIMESTAMP = "future_timestamp"  # event time well after its arrival
    NEGATIVE_DURATION = "negative_duration"  # watch_seconds below zero
    ORPHAN_CLICK = "orphan_click"  # no clean impression with that id has arrived
    DUPLICATE = "duplicate"  # the row's id was already accepted


# Content problems first (they make a row unusable whatever else holds), and
# duplicates last, so a valid row is never dropped in favour of a broken copy.
PRECEDENCE: tuple[Reason, ...] = (
    Reason.NULL_KEY,
    Reason.FUTURE_TIMESTAMP,
    Reason.NEGATIVE_DURATION,
    Reason.ORPHAN_CLICK,
    Reason.DUPLICATE,
)

# How far an event time may lie after its ingestion time (clock skew of devices).
FUTURE_TOLERANCE_SECONDS = 5 * 60
