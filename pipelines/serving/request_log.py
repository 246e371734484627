"""A log of served feature vectors, for replaying requests offline (log and replay).

    log = RequestLog("ctr_model", sample=0.05)       # once per serving process
    reader = OnlineReader("ctr_model", log=log)       # or get_online_features(..., log=log)
    ...
    log.close()                                       # at shutdown (also at exit)

A deterministic sample of entity rows is logged: a row is logged iff a hash of its entity
keys falls below `sample`, so the same entities are followed in every request and every
process, as Chronon samples by key. A logged row holds the request time (the reader's
`as_of`, else the clock), the entity keys, every served value and the hash of the feature
definitions it was served under. For each real-time view it also holds the instant its
served value is the sawtooth value at (`<view>__values_as_of`, set by `OnlineReader` when
the stream writes fresh values; see `pipelines.serving.direct`): the replay rebuilds that
view's features at that instant.

Logging never blocks a request: the request thread only appends to a bounded buffer (rows
beyond `max_pending` are dropped and counted in `dropped`), and a background thread
writes the buffer every `flush_seconds` as Parquet files under
`<data dir>/logs/served/<service>/request_hour=<hour>/`, one per flush and hour. The
pipeline loads those files into `monitoring.served_<service>` (Delta) before replaying them
(`pipelines.quality.replay`).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features import REGISTRY, DeclarationError, FeatureView
from pipelines.config import settings
from pipelines.errors import PlatformError
from pipelines.interval import to_unix_micros

REQUEST_TIME = "request_time"
REQUEST_ID = "request_id"
DEFINITIONS_HASH = "definitions_hash"
REQUEST_HOUR = "request_hour"
_HASH_RANGE = 1 << 32
_MICROS = 1_000_000


class RequestLogError(PlatformError):
    pass


def log_directory(service: str, root: Path | None = None) -> Path:
    return (root or settings().data_dir / "logs" / "served") / service


def sample_key(keys: Sequence[Any]) -> int:
    """The key hash that decides sampling, in [0, 2**32): the same in every process."""
    return zlib.crc32("\x1f".join(map(str, keys)).encode())


def service_columns(service: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The (name, value type) of a service's join keys (sorted) and features (in order)."""
    try:
        resolved = REGISTRY.resolve(service)
    except DeclarationError as exc:
        raise RequestLogError(f"{exc} (request logs are kept per feature service)") from None
    keys = {REGISTRY.view(v).entity.join_key: REGISTRY.view(v).entity.value_type for v in resolved}
    features = []
    for view_name, names in resolved.items():
        types = {f.name: f.value_type for f in REGISTRY.view(view_name).features}
        features += [(name, types[name]) for name in names]
    return sorted(keys.items()), features


def values_as_of_columns(service: str) -> list[tuple[str, str]]:
    """(column, view) of the instants logged with a service's real-time views' values."""
    return [
        (f"{name}__values_as_of", name)
        for name in REGISTRY.resolve(service)
        if isinstance(view := REGISTRY.view(name), FeatureView) and view.realtime
    ]


def definitions_hash(service: str) -> str:
    from pipelines.training.spec import select_features

    return select_features(REGISTRY, service).definitions_hash


class RequestLog:
    """The served vectors of one feature service, sampled, buffered and written in the
    background (see the module docstring)."""

    def __init__(
        self,
        service: str,
        *,
        sample: float = 0.01,
        directory: Path | None = None,
        flush_seconds: float = 5.0,
        max_pending: int = 200_000,
    ) -> None:
        if not 0.0 <= sample <= 1.0:
            raise RequestLogError(f"sample must lie in [0, 1], got {sample}")
        self.service = service
        self.keys, self.features = service_columns(service)
        self.values_as_of = values_as_of_columns(service)
        self.realtime_views = [view for _, view in self.values_as_of]
        self.definitions_hash = definitions_hash(service)
        self.directory = directory or log_directory(service)
        self._threshold = round(sample * _HASH_RANGE)
        self._flush_seconds = flush_seconds
        self._max_pending = max_pending
        self._pending: deque[tuple[Any, ...]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._files = 0
        self._prefix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.dropped = 0
        self.logged = 0
        self._writer = threading.Thread(
            target=self._run, name=f"request-log-{service}", daemon=True
        )
        self._writer.start()
        atexit.register(self.close)

    def sampled(self, keys: Sequence[Any]) -> bool:
        return sample_key(keys) < self._threshold

    def record(
        self,
        entity_rows: Sequence[Mapping[str, Any]],
        values: Mapping[str, Sequence[Any]],
        as_of: datetime | None,
        values_as_of: Mapping[str, Sequence[int | None]] | None = None,
    ) -> None:
        """Buffer the sampled rows of one served request (`values` as the readers return
        them: a column per key and feature; `values_as_of`, per real-time view, the instant
        in epoch microseconds each row's value is as of). Called on the request path:
        appends only."""
        if self._threshold == 0 or self._closed:
            return
        micros = int(time.time() * _MICROS) if as_of is None else to_unix_micros(as_of)
        key_names = [name for name, _ in self.keys]
        columns = [values[name] for name, _ in self.features]
        unknown = [None] * len(entity_rows)
        columns += [(values_as_of or {}).get(view, unknown) for view in self.realtime_views]
        request = uuid.uuid4().hex
        for i, row in enumerate(entity_rows):
            keys = [row[name] for name in key_names]
            if sample_key(keys) >= self._threshold:
                continue
            if len(self._pending) >= self._max_pending:
                self.dropped += 1
                continue
            self._pending.append((f"{request}:{i}", micros, *keys, *[c[i] for c in columns]))

    def flush(self) -> None:
        """Write everything buffered so far (blocks until written)."""
        with self._lock:
            rows = [self._pending.popleft() for _ in range(len(self._pending))]
            if rows:
                self._write(rows)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._writer.join(timeout=30)
        self.flush()

    def __enter__(self) -> RequestLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._flush_seconds)
            try:
                self.flush()
            except Exception as exc:  # never let a full disk take the serving process down
                self.dropped += len(self._pending)
                self._pending.clear()
                print(f"request log of {self.service}: write failed: {exc}")

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        names = [
            REQUEST_ID,
            REQUEST_TIME,
            *[k for k, _ in self.keys],
            *[f for f, _ in self.features],
            *[column for column, _ in self.values_as_of],
        ]
        types = [pa.string(), pa.timestamp("us", tz="UTC")]
        types += [arrow_type(t) for _, t in [*self.keys, *self.features]]
        types += [pa.timestamp("us", tz="UTC")] * len(self.values_as_of)
        columns = list(zip(*rows, strict=True))
        arrays = [
            pa.array(_plain(column, data_type), data_type)
            for column, data_type in zip(columns, types, strict=True)
        ]
        table = pa.table(arrays, names=names).append_column(
            DEFINITIONS_HASH, pa.array([self.definitions_hash] * len(rows), pa.string())
        )
        hours = pc.floor_temporal(table.column(REQUEST_TIME), unit="hour")
        for hour in pc.unique(hours).to_pylist():
            part = table.filter(pc.equal(hours, pa.scalar(hour, hours.type)))
            folder = self.directory / f"{REQUEST_HOUR}={hour:%Y-%m-%dT%H}"
            folder.mkdir(parents=True, exist_ok=True)
            self._files += 1
            name = f"part-{self._prefix}-{self._files:06d}.parquet"
            # Written under a hidden name, renamed when complete: readers never see half a file.
            temporary = folder / f".{name}.tmp"
            pq.write_table(part, temporary)
            temporary.rename(folder / name)
        self.logged += len(rows)


def arrow_type(value_type: str) -> pa.DataType:
    return {
        "int64": pa.int64(),
        "float64": pa.float64(),
        "string": pa.string(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }[value_type]


def _plain(column: Sequence[Any], data_type: pa.DataType) -> Sequence[Any]:
    if pa.types.is_date32(data_type):
        # The readers return dates as UTC midnights (Feast has no date type).
        return [v.date() if isinstance(v, datetime) else v for v in column]
    return column
