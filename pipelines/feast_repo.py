"""The Feast objects of the platform, built from the declarations (`features.REGISTRY`).

`feature_repo/definitions.py` only calls `feast_objects()`, so the declarations stay
the one place a feature is defined. Each feature view reads its Delta feature table
`features.<view>` through the Spark offline store; its TTL is the declaration's
`effective_ttl` (0 = no TTL, for attribute views).
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Any

from features import REGISTRY, AnyView, Registry
from features import Entity as DeclaredEntity
from features import FeatureService as DeclaredService
from features.definition import definition_hash
from pipelines.feature_tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP, PARTITION_COLUMN

with warnings.catch_warnings():
    # SparkSource warns on import and use that its API is experimental.
    warnings.simplefilter("ignore", RuntimeWarning)
    from feast import Entity, FeatureService, FeatureView, Field, ValueType
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
    from feast.types import FeastType, Float64, Int64, String, UnixTimestamp

# Feast has no date type; its Spark type mapping turns dates into Unix timestamps too.
FEAST_TYPES: dict[str, FeastType] = {
    "int64": Int64,
    "float64": Float64,
    "string": String,
    "date": UnixTimestamp,
    "timestamp": UnixTimestamp,
}
ENTITY_VALUE_TYPES = {"int64": ValueType.INT64, "string": ValueType.STRING}
OWNER_TAG = "feature-platform"
# What the view's features mean (`features.definition`), so a Feast user sees a change.
DEFINITION_TAG = "definition_hash"


def feast_entity(entity: DeclaredEntity) -> Entity:
    return Entity(
        name=entity.name,
        join_keys=[entity.join_key],
        value_type=ENTITY_VALUE_TYPES[entity.value_type],
        description=entity.description,
    )


def feast_source(view: AnyView) -> SparkSource:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return SparkSource(
            name=f"{view.name}_source",
            table=view.table,
            # Empty, not None: that is what the registry gives back, and SparkSource
            # equality compares them, so None made every `feast plan` an update.
            query="",
            path="",
            timestamp_field=EVENT_TIMESTAMP,
            created_timestamp_column=CREATED_TIMESTAMP,
            date_partition_column=PARTITION_COLUMN,
            description=f"Delta feature table {view.table}",
        )


def feast_view(view: AnyView, entity: Entity | None = None) -> FeatureView:
    entity = entity or feast_entity(view.entity)
    key = view.entity.join_key
    schema = [Field(name=key, dtype=FEAST_TYPES[view.entity.value_type])]
    schema += [Field(name=f.name, dtype=FEAST_TYPES[f.value_type]) for f in view.features]
    ttl: timedelta = view.effective_ttl
    return FeatureView(
        name=view.name,
        entities=[entity],
        ttl=ttl,
        schema=schema,
        source=feast_source(view),
        online=True,
        description=view.description,
        tags={**view.tags, "managed_by": OWNER_TAG, DEFINITION_TAG: definition_hash(view)},
    )


def feast_service(service: DeclaredService, views: dict[str, FeatureView]) -> FeatureService:
    projections: list[Any] = [
        views[name][list(names)] if names else views[name]
        for name, names in service.features.items()
    ]
    return FeatureService(name=service.name, features=projections, description=service.description)


def feast_objects(registry: Registry = REGISTRY) -> dict[str, Any]:
    """Every Feast object of the repo by a unique Python name (entities, views, services)."""
    entities = {e.name: feast_entity(e) for e in registry.entities}
    views = {v.name: feast_view(v, entities[v.entity.name]) for v in registry.views}
    services = {s.name: feast_service(s, views) for s in registry.services}
    objects: dict[str, Any] = {}
    objects.update({f"{name}_entity": obj for name, obj in entities.items()})
    objects.update({f"{name}_view": obj for name, obj in views.items()})
    objects.update({f"{name}_service": obj for name, obj in services.items()})
    return objects
