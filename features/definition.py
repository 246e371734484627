"""One definition hash: what a view's features mean, kept apart from how they are described.

The *semantics* of a view (its entity, TTL, sources and, per feature, its type and how it
is computed) decide its values; its *cosmetics* (description, tags) do not. One hash of the
semantics serves every use: backfill progress (a changed meaning recomputes, a changed
description does not), training-set metadata (reproducing a set checks that its features
still mean the same) and the Feast views' tags.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from features.core import AnyView, AttributeView, FeatureView


def semantics(view: AnyView, feature_names: Sequence[str] | None = None) -> dict[str, Any]:
    """What the named features of `view` (all if None) mean, as plain data."""
    by_name = {f.name: f for f in view.features}
    names = list(by_name) if feature_names is None else list(feature_names)
    features = []
    for name in names:
        feature = by_name[name]
        described: dict[str, Any] = {"name": name, "value_type": feature.value_type}
        if feature.aggregation is not None:
            agg = feature.aggregation
            described["aggregation"] = {
                "source": agg.source.table,
                "timestamp": agg.source.timestamp_column,
                "op": agg.op.value,
                "column": agg.column,
                "window_hours": feature.window.hours if feature.window else None,
            }
        if feature.ratio is not None:
            ratio = feature.ratio
            described["ratio"] = {
                "numerator": ratio.numerator,
                "denominator": ratio.denominator,
                "prior": ratio.prior,
                "weight": ratio.weight,
            }
            # A ratio means whatever its two counts mean.
            described["inputs"] = semantics(view, [ratio.numerator, ratio.denominator])["features"]
        if feature.attribute is not None:
            described["attribute"] = feature.attribute
        features.append(described)
    definition: dict[str, Any] = {
        "view": view.name,
        "kind": "attributes" if isinstance(view, AttributeView) else "aggregations",
        "entity": {
            "name": view.entity.name,
            "join_key": view.entity.join_key,
            "value_type": view.entity.value_type,
        },
        "ttl_seconds": int(view.effective_ttl.total_seconds()),
        "features": features,
    }
    if isinstance(view, AttributeView):
        definition["source"] = view.source.table
    elif isinstance(view, FeatureView):
        definition["sources"] = [s.table for s in view.sources]
    return definition


def cosmetics(view: AnyView) -> dict[str, Any]:
    """What describes `view` without changing a value."""
    return {"description": view.description, "tags": dict(view.tags)}


def digest(value: Any) -> str:
    """SHA-256 of a JSON rendering with sorted keys: equal data, equal digest."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def definition_hash(view: AnyView, feature_names: Sequence[str] | None = None) -> str:
    """The hash of `semantics(view, feature_names)`."""
    return digest(semantics(view, feature_names))
