"""Physical names: one database per layer, so `SHOW TABLES IN <layer>` tells the story.

The only place that spells a database name. A source's clean table, a view's feature
table and every platform table are `<layer>.<name>`.
"""

from __future__ import annotations

RAW = "raw"  # rows as producers wrote them
CLEAN = "clean"  # validated rows, the quarantine, the accepted-id index
FEATURES = "features"  # one bitemporal table per feature view
MONITORING = "monitoring"  # metrics, request logs, backfill progress
LAYERS = (RAW, CLEAN, FEATURES, MONITORING)


def table_name(layer: str, name: str) -> str:
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}: one of {', '.join(LAYERS)}")
    return f"{layer}.{name}"
