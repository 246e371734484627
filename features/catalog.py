"""Physical names: one database per layer, so `SHOW TABLES IN <layer>` tells the story.

The only place that spells a database or topic name. A source's clean table, a view's
feature table and every platform table are `<database of its layer>.<name>`; an event
source's Kafka topic is `events.<source>`.

One setting moves every database: FEATURE_PLATFORM_DATABASE_PREFIX (e.g. `staging_`
gives `staging_raw`, `staging_clean`, ..., `staging_events.<source>`), so several environments, or test modules,
share one metastore without sharing a table. It is read when a name is resolved, never
at import: the declarations stay inert data.
"""

from __future__ import annotations

import os
import re

from features.errors import DeclarationError

RAW = "raw"  # rows as producers wrote them
CLEAN = "clean"  # validated rows, the quarantine, the accepted-id index
FEATURES = "features"  # one bitemporal table per feature view
MONITORING = "monitoring"  # metrics, request logs, backfill progress
# Per real-time view, its windows' mergeable aggregates (counts, sums, sketches) before
# they are finished into feature values: what a sawtooth value merges fresh events into.
STATE = "state"
LAYERS = (RAW, CLEAN, FEATURES, MONITORING, STATE)

DATABASE_PREFIX_ENV = "FEATURE_PLATFORM_DATABASE_PREFIX"
_PREFIX = re.compile(r"[a-z][a-z0-9_]*")


def database_prefix() -> str:
    prefix = os.environ.get(DATABASE_PREFIX_ENV, "")
    if prefix and not _PREFIX.fullmatch(prefix):
        raise DeclarationError(
            f"{DATABASE_PREFIX_ENV}={prefix!r}: use lower-case letters, digits and _, "
            "starting with a letter"
        )
    return prefix


def database(layer: str) -> str:
    """The database that holds a layer's tables."""
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}: one of {', '.join(LAYERS)}")
    return f"{database_prefix()}{layer}"


def table_name(layer: str, name: str) -> str:
    return f"{database(layer)}.{name}"


EVENTS = "events"  # the Kafka topics, one per event source


def topic_name(source: str) -> str:
    """The Kafka topic of an event source: `<prefix>events.<source>`."""
    return f"{database_prefix()}{EVENTS}.{source}"
