"""What a training set reads: the resolved feature views, pinned to Delta versions.

A `ViewRead` is everything the point-in-time join needs to know about one feature
view, copied out of the declarations, so a recorded training set can be rebuilt
from its metadata alone even after the declarations have changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from features import Registry
from features.definition import definition_hash, digest
from pipelines.feature_tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP


class Mode(StrEnum):
    """Which feature values a training row for a label at time t gets.

    FEAST: the latest row with event_timestamp <= t, its latest version (Feast's
    `get_historical_features`): values as finally known, late data included.
    KNOWN: only versions known at t (created_timestamp <= t): no later correction leaks in.
    SERVING: only versions the online store served at t (created_timestamp + the view's
    serving lag <= t): the row equals what serving returned at the label's time.
    REALTIME: real-time views at the exact instant t, with sawtooth windows (the state
    row known at floor_hour(t) merged with the events since: `pipelines.training.sawtooth`),
    what the streaming path serves; the other views as SERVING.
    """

    FEAST = "feast"
    KNOWN = "known"
    SERVING = "serving"
    REALTIME = "realtime"


@dataclass(frozen=True)
class ViewRead:
    """One feature view as read by a training set: table, key, TTL, features, Delta version."""

    name: str
    table: str
    join_key: str
    key_type: str
    ttl_seconds: int  # 0 = unbounded lookback, as in Feast
    features: tuple[str, ...]
    definition_hash: str
    version: int | None = None
    serving_lag_seconds: int = 0
    # Mode.REALTIME, a real-time view: (table, Delta version) of its state table, then of
    # each source's clean table, in declaration order (the sawtooth join reads these).
    sawtooth_tables: tuple[tuple[str, int], ...] = ()

    def visible_after_seconds(self, mode: Mode) -> int | None:
        """How long after created_timestamp a version counts (None: by event time alone)."""
        if mode is Mode.FEAST:
            return None
        return self.serving_lag_seconds if mode in (Mode.SERVING, Mode.REALTIME) else 0

    def columns(self) -> list[str]:
        return [self.join_key, EVENT_TIMESTAMP, CREATED_TIMESTAMP, *self.features]

    def at_version(self, version: int) -> ViewRead:
        return replace(self, version=version)

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["features"] = list(self.features)
        record["sawtooth_tables"] = [list(pair) for pair in self.sawtooth_tables]
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> ViewRead:
        pairs = tuple((str(t), int(v)) for t, v in record.get("sawtooth_tables", ()))
        return cls(**{**record, "features": tuple(record["features"]), "sawtooth_tables": pairs})


@dataclass(frozen=True)
class FeatureSelection:
    """The requested features, resolved against the declarations, in output order."""

    request: str | list[str]
    views: tuple[ViewRead, ...] = field(default_factory=tuple)

    @property
    def refs(self) -> list[str]:
        return [f"{v.name}:{f}" for v in self.views for f in v.features]

    @property
    def feature_names(self) -> list[str]:
        return [f for v in self.views for f in v.features]

    @property
    def definitions_hash(self) -> str:
        """One hash over the definitions of every feature read, in output order."""
        return digest([v.definition_hash for v in self.views])


def select_features(registry: Registry, features: str | list[str]) -> FeatureSelection:
    """Resolve a feature service name or `view:feature` references (errors name the culprit)."""
    resolved = registry.resolve(features)
    views = []
    for view_name, feature_names in resolved.items():
        view = registry.view(view_name)
        views.append(
            ViewRead(
                name=view.name,
                table=view.table,
                join_key=view.entity.join_key,
                key_type=view.entity.value_type,
                ttl_seconds=int(view.effective_ttl.total_seconds()),
                features=tuple(feature_names),
                definition_hash=definition_hash(view, feature_names),
                serving_lag_seconds=int(view.serving_lag.total_seconds()),
            )
        )
    return FeatureSelection(request=features, views=tuple(views))
