"""Online retrieval through Feast's FeatureStore (the same read path as `feast serve`).

    from pipelines.serving.online import get_online_features
    values = get_online_features("ctr_model", [{"member_id": 1, "ad_id": 2}])
    # {"member_id": [1], "ad_id": [2], "ad_impressions_count_1h": [3], ...}

`features` is a feature service name or a list of "view:feature" references;
`entity_rows` is a list of `{join_key: value}` dicts (keys the features do not use
are ignored). Entities that were never materialized come back as None. Dates and
timestamps come back as UTC datetimes (Feast has no date type).

TTL: Feast's Redis read path returns whatever is stored, whatever its age (its TTL
check exists only for pre-computed feature-service vectors). Materialization never
writes a value already expired at the end of its interval; to also hide values that
expired since, pass `as_of` (usually the request time): a feature of a view with a
TTL whose stored event time is older than `as_of - ttl` is returned as None, as
Feast's point-in-time join would return it for a label at `as_of`.

Redis: as `pipelines.serving.direct.OnlineReader` finds it; reads never start a server.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from features import REGISTRY, DeclarationError
from pipelines.config import settings
from pipelines.errors import PlatformError
from pipelines.interval import parse_time
from pipelines.redis_server import RedisUnavailableError, serving_redis_url

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

    from pipelines.serving.request_log import RequestLog

_stores: dict[tuple[str, str | None], FeatureStore] = {}
_stores_lock = threading.Lock()


class OnlineLookupError(PlatformError):
    pass


def online_store(redis_url: str | None = None) -> FeatureStore:
    """A FeatureStore for the current data directory and Redis, kept for reuse by later calls."""
    key = (str(settings().data_dir), redis_url or settings().redis_url)
    with _stores_lock:
        if key not in _stores:
            from pipelines.serving.store import feature_store

            _stores[key] = feature_store(redis_url or serving_redis_url())
        return _stores[key]


_services: dict[tuple[int, str], tuple[Any, Any]] = {}


def _feature_service(store: FeatureStore, name: str) -> Any:
    """The FeatureService object, rebuilt only when Feast reloads its registry.

    Building it from the registry proto costs milliseconds per call (it rebuilds
    every projected view's source), far more than the read itself.
    """

    def version() -> tuple[int, bytes] | None:
        # Feast replaces the cached proto when it reloads (every read refreshes it
        # once its TTL is up) and bumps last_updated when it changes it in place.
        proto = getattr(store.registry, "cached_registry_proto", None)
        return None if proto is None else (id(proto), proto.last_updated.SerializeToString())

    cached = _services.get((id(store), name))
    if cached is None or cached[0] is None or cached[0] != version():
        built = store.get_feature_service(name, allow_cache=True)
        cached = (version(), built)
        _services[(id(store), name)] = cached
    return cached[1]


def resolve_features(features: str | Sequence[str]) -> dict[str, list[str]]:
    """`{view: [feature, ...]}` for a service name or "view:feature" references."""
    try:
        return REGISTRY.resolve(features if isinstance(features, str) else list(features))
    except DeclarationError as exc:
        raise OnlineLookupError(str(exc)) from None


def _entity_columns(
    views: Sequence[str], entity_rows: Sequence[Mapping[str, Any]]
) -> dict[str, list[Any]]:
    keys = sorted({REGISTRY.view(v).entity.join_key for v in views})
    if not entity_rows:
        raise OnlineLookupError("no entity rows given")
    columns: dict[str, list[Any]] = {key: [] for key in keys}
    for i, row in enumerate(entity_rows):
        missing = [key for key in keys if row.get(key) is None]
        if missing:
            raise OnlineLookupError(
                f"entity row {i} lacks {', '.join(missing)} (these features need {', '.join(keys)})"
            )
        for key in keys:
            columns[key].append(row[key])
    return columns


def _expired_features(
    response: Any, views: dict[str, list[str]], as_of: datetime
) -> dict[str, list[bool]]:
    """Per feature, which rows hold a value older than its view's TTL as of `as_of`."""
    as_of_s = parse_time(as_of).timestamp()
    view_of = {name: view for view, names in views.items() for name in names}
    expired: dict[str, list[bool]] = {}
    for name, vector in zip(
        response.proto.metadata.feature_names.val, response.proto.results, strict=True
    ):
        if name not in view_of:
            continue  # an entity key column
        ttl = REGISTRY.view(view_of[name]).effective_ttl.total_seconds()
        if ttl <= 0:
            continue
        expired[name] = [
            (ts.seconds or ts.nanos) != 0 and ts.seconds + ts.nanos / 1e9 < as_of_s - ttl
            for ts in vector.event_timestamps
        ]
    return expired


def get_online_features(
    features: str | Sequence[str],
    entity_rows: Sequence[Mapping[str, Any]],
    *,
    as_of: datetime | None = None,
    store: FeatureStore | None = None,
    redis_url: str | None = None,
    log: RequestLog | None = None,
) -> dict[str, list[Any]]:
    """Feature values for `entity_rows`, column by column (entity keys first).

    `store` defaults to `online_store(redis_url)`. See the module doc for TTL and `as_of`.
    `log`: a `RequestLog` of the same feature service, to log a sample of what is served.
    """
    if log is not None and log.service != features:
        raise OnlineLookupError(f"the request log is of {log.service!r}, not of {features!r}")
    views = resolve_features(features)
    columns = _entity_columns(list(views), entity_rows)
    store = store or online_store(redis_url)
    import redis
    from feast.errors import FeastObjectNotFoundException

    if isinstance(features, str):
        try:
            requested: Any = _feature_service(store, features)
        except FeastObjectNotFoundException as exc:
            raise OnlineLookupError(
                f"{exc} (register the features first: `feature-platform feast apply`)"
            ) from None
    else:
        requested = [f"{view}:{name}" for view, names in views.items() for name in names]
    try:
        response = store.get_online_features(features=requested, entity_rows=columns)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisUnavailableError(f"cannot read from Redis: {exc}") from None
    except FeastObjectNotFoundException as exc:
        raise OnlineLookupError(
            f"{exc} (register the features first: `feature-platform feast apply`)"
        ) from None
    values: dict[str, list[Any]] = response.to_dict()
    if as_of is not None:
        for name, flags in _expired_features(response, views, as_of).items():
            values[name] = [None if old else v for v, old in zip(values[name], flags, strict=True)]
    ordered = {key: values[key] for key in columns}
    ordered.update({name: values[name] for names in views.values() for name in names})
    if log is not None:
        log.record(entity_rows, ordered, as_of)
    return ordered


def freeze_startup_objects() -> None:
    """For a long-running serving process: call once after start-up (store loaded, warm).

    Collects garbage, then moves every surviving object out of the cyclic garbage
    collector's reach (`gc.freeze`), so its full collections stop rescanning the
    objects of Feast, pyspark and pandas. Those collections are the long tail of
    request latency: measured with 100 entity rows of ctr_model, p99 ~150 ms before,
    ~30-40 ms after (bench/online_latency.py).
    """
    gc.collect()
    gc.freeze()


def get_online_features_df(
    features: str | Sequence[str],
    entity_rows: Sequence[Mapping[str, Any]],
    **kwargs: Any,
) -> pd.DataFrame:
    """`get_online_features` as a pandas DataFrame (one row per entity row)."""
    import pandas as pd

    return pd.DataFrame(get_online_features(features, entity_rows, **kwargs))
