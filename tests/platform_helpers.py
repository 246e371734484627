"""Helpers the tests share (not tests): a Feast repo applied for a data directory, and
feature rows written to Redis with the platform's writer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pytest

from features import REGISTRY
from pipelines.serving.materialize import layout_for
from pipelines.serving.redis_writer import write_table
from pipelines.serving.store import feast_environment, feature_store, repo_settings


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
