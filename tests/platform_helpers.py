"""Helpers the tests share (not tests): a Feast repo applied for a data directory,
feature rows written to Redis with the platform's writer, the dimensions' dumps landed in
raw for a stream, and what Redis serves checked against the brute-force sawtooth oracle."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import feature_oracle as oracle
import pyarrow as pa
import pytest

from features import REGISTRY, FeatureView
from features.catalog import database_prefix
from features.sources import DIMENSION_SOURCES
from pipelines.delta_io import ensure_database
from pipelines.generate import generate
from pipelines.redis_server import redis_client
from pipelines.serving.direct import OnlineReader
from pipelines.serving.encoding import encode_entity_keys, timestamp_micros_from_proto
from pipelines.serving.materialize import layout_for
from pipelines.serving.redis_writer import write_table
from pipelines.serving.store import feast_environment, feature_store, repo_settings
from pipelines.tables import raw_table


@contextmanager
def feast_repo_applied(redis_url: str, data_dir: Path) -> Iterator[None]:
    """The platform's Feast repo applied, with this data dir and Redis in the environment."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEATURE_PLATFORM_DATA_DIR", str(data_dir))
        patch.setenv("REDIS_URL", redis_url)
        for name, value in feast_environment().items():
            patch.setenv(name, value)
        from pipelines.feast_repo import feast_objects

        feature_store().apply(list(feast_objects().values()))
        yield


def write_rows(url: str, view_name: str, rows: list[dict]) -> None:
    view = REGISTRY.view(view_name)
    arrow_types = {
        "int64": pa.int64(),
        "float64": pa.float64(),
        "string": pa.string(),
        "date": pa.date32(),
    }
    times = pa.array([r["event_timestamp"] for r in rows], pa.timestamp("us", "UTC"))
    columns = {
        view.entity.join_key: pa.array([r[view.entity.join_key] for r in rows], pa.int64()),
        "event_timestamp": times,
        "created_timestamp": times,
    }
    for feature in view.features:
        columns[feature.name] = pa.array(
            [r.get(feature.name) for r in rows], arrow_types[feature.value_type]
        )
    layout = layout_for(view, repo_settings().project)
    assert write_table(url, layout, pa.table(columns)) == (len(rows), 0)


def land_dimension_dumps(spark: Any, start: datetime, scale: float) -> None:
    """The dimensions' daily dumps in raw, as files land before any event streams: a
    scratch generation's (they depend only on seed and scale)."""
    scratch = f"{database_prefix()}dimensions"
    generate(spark, start=start, end=start + timedelta(minutes=1), scale=scale, database=scratch)
    ensure_database(spark, raw_table(DIMENSION_SOURCES[0]).split(".")[0])
    for dimension in DIMENSION_SOURCES:
        dump = spark.table(f"{scratch}.{dimension.name}")
        dump.write.format("delta").mode("overwrite").saveAsTable(raw_table(dimension))


# An entity no generated event names: it must be served nothing.
UNSEEN_ENTITY = 987_654_321


def served_values(url: str, view: FeatureView, entities: list[Any]) -> list[dict[str, Any]]:
    """What `OnlineReader` serves for each entity, with the event time stored with it."""
    names = [f.name for f in view.features]
    key = view.entity.join_key
    with OnlineReader([f"{view.name}:{n}" for n in names], redis_url=url) as reader:
        values = reader.get([{key: e} for e in entities])
    layout = layout_for(view, repo_settings().project)
    client = redis_client(url)
    try:
        stored = [
            client.hget(k, layout.ts_field)
            for k in encode_entity_keys(layout, pa.array(entities, pa.int64())).to_pylist()
        ]
    finally:
        client.close()
    served = []
    for i, entity in enumerate(entities):
        micros = timestamp_micros_from_proto(stored[i])
        written = None if micros is None else datetime(1970, 1, 1) + timedelta(microseconds=micros)
        served.append({key: entity, "written_at": written, **{n: values[n][i] for n in names}})
    return served


def same_value(got: Any, want: Any) -> bool:
    if isinstance(want, float) and got is not None:
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    return got == want


def assert_served_sawtooth_values(
    url: str,
    views: list[FeatureView],
    events: dict[str, list[dict[str, Any]]],
    instant: datetime,
) -> dict[str, list[dict[str, Any]]]:
    """Every entity of `events` in each of `views` (and one never seen) is served its
    sawtooth value at `instant` (`events`: clean rows per source); returns what was served."""
    moment = instant.replace(tzinfo=None)
    served_by_view = {}
    for view in views:
        key = view.entity.join_key
        entities = sorted(
            {r[key] for s in view.sources for r in events[s.name] if r[key] is not None}
        )
        served = served_values(url, view, [*entities, UNSEEN_ENTITY])
        names = [f.name for f in view.features]
        for row in served:
            want = oracle.sawtooth_values(view, events, row[key], moment)
            if want is None:
                assert row["written_at"] is None and all(row[n] is None for n in names), row
                continue
            assert row["written_at"] is not None and row["written_at"] <= moment, row
            for name in names:
                assert same_value(row[name], want[name]), (view.name, row[key], name, row)
        served_by_view[view.name] = served
    return served_by_view
