"""The request log: a deterministic sample by entity keys, bounded, written in the background."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from pipelines.serving.request_log import (
    DEFINITIONS_HASH,
    REQUEST_TIME,
    RequestLog,
    RequestLogError,
    definitions_hash,
    sample_key,
    service_columns,
)

T = datetime(2031, 2, 3, 10, 58, tzinfo=UTC)


def served(members: list[int], ad: int = 7) -> tuple[list[dict], dict[str, list]]:
    """Entity rows and a reply shaped as the readers return it (a column per key/feature)."""
    keys, features = service_columns("ctr_model")
    rows = [{"member_id": m, "ad_id": ad} for m in members]
    values: dict[str, list] = {"ad_id": [ad] * len(rows), "member_id": members}
    for name, kind in features:
        values[name] = [
            {
                "int64": m,
                "float64": m / 2,
                "string": f"s{m}",
                "date": datetime(2020, 1, 1, tzinfo=UTC),
            }[kind]
            for m in members
        ]
    assert [k for k, _ in keys] == ["ad_id", "member_id"]
    return rows, values


def test_the_sample_is_the_same_entities_in_every_process_at_the_requested_share(tmp_path):
    members = list(range(10_000))
    first = RequestLog("ctr_model", sample=0.3, directory=tmp_path / "a", flush_seconds=3600)
    second = RequestLog("ctr_model", sample=0.3, directory=tmp_path / "b", flush_seconds=3600)
    try:
        picked = [m for m in members if first.sampled([7, m])]
        assert picked == [m for m in members if second.sampled([7, m])]
        assert 0.28 < len(picked) / len(members) < 0.32
        assert sample_key([7, 5]) == sample_key([7, 5]) != sample_key([5, 7])
    finally:
        first.close()
        second.close()


def test_rows_are_written_by_hour_with_their_values_and_definitions(tmp_path):
    log = RequestLog("ctr_model", sample=1.0, directory=tmp_path, flush_seconds=3600)
    rows, values = served([1, 2, 3])
    log.record(rows, values, as_of=T)
    rows, values = served([4])
    log.record(rows, values, as_of=T + timedelta(minutes=5))  # the next hour
    log.close()
    assert log.logged == 4 and log.dropped == 0
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == ["request_hour=2031-02-03T10", "request_hour=2031-02-03T11"]
    table = pq.read_table(tmp_path / folders[0]).to_pylist()
    assert [r["member_id"] for r in table] == [1, 2, 3]
    assert {r[REQUEST_TIME] for r in table} == {T}
    assert {r[DEFINITIONS_HASH] for r in table} == {definitions_hash("ctr_model")}
    assert table[1]["plays_count_1d"] == 2 and table[1]["country"] == "s2"
    schema = pq.read_schema(next((tmp_path / folders[0]).glob("*.parquet")))
    assert {f.name: str(f.type) for f in schema}["plays_count_1d"] == "int64"
    assert len({r["request_id"] for r in table}) == 3
    assert not list(tmp_path.rglob(".*.tmp"))  # no half-written files left


def test_recording_never_blocks_and_memory_is_bounded(tmp_path):
    log = RequestLog(
        "ctr_model", sample=1.0, directory=tmp_path, flush_seconds=3600, max_pending=10
    )
    rows, values = served(list(range(100)))
    began = time.perf_counter()
    log.record(rows, values, as_of=T)
    assert time.perf_counter() - began < 0.5
    assert log.dropped == 90
    log.close()
    assert log.logged == 10


def test_the_background_thread_flushes_without_being_asked(tmp_path):
    with RequestLog("ctr_model", sample=1.0, directory=tmp_path, flush_seconds=0.05) as log:
        rows, values = served([5])
        log.record(rows, values, as_of=T)
        deadline = time.monotonic() + 10
        while log.logged == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.logged == 1
        assert list(tmp_path.rglob("*.parquet"))


def test_logs_are_kept_per_feature_service(tmp_path):
    with pytest.raises(RequestLogError, match="unknown feature service 'nope'"):
        RequestLog("nope", directory=tmp_path)
    with pytest.raises(RequestLogError, match=r"sample must lie in \[0, 1\]"):
        RequestLog("ctr_model", sample=1.5, directory=tmp_path)
