"""Feature declarations: inert data, defined once.

`REGISTRY` holds every entity, feature view and feature service. The Spark jobs
(`pipelines.compute`), the Feast repo (`feature_repo/`) and the quality checks are
all built from it.
"""

from __future__ import annotations

from features.core import (
    DEFAULT_SERVING_LAG,
    Aggregation,
    AnyView,
    AttributeView,
    Carried,
    ClickLabels,
    DeclarationError,
    DimensionSource,
    Entity,
    EventSource,
    Feature,
    FeatureService,
    FeatureView,
    IdDay,
    Op,
    Registry,
    SmoothedRatio,
    Window,
)
from features.entities import ENTITIES
from features.services import SERVICES
from features.views import VIEWS

REGISTRY = Registry(entities=ENTITIES, views=VIEWS, services=SERVICES)

__all__ = [
    "DEFAULT_SERVING_LAG",
    "REGISTRY",
    "Aggregation",
    "AnyView",
    "AttributeView",
    "Carried",
    "ClickLabels",
    "DeclarationError",
    "DimensionSource",
    "Entity",
    "EventSource",
    "Feature",
    "FeatureService",
    "FeatureView",
    "IdDay",
    "Op",
    "Registry",
    "SmoothedRatio",
    "Window",
]
