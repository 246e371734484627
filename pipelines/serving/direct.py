"""Low-latency online reads straight from Feast's Redis layout.

    from pipelines.serving.direct import OnlineReader
    reader = OnlineReader("ctr_model")          # once per serving process
    values = reader.get([{"member_id": 1, "ad_id": 2}])

Returns what `online.get_online_features` returns for the same Redis (same columns,
order, types and nulls; `as_of` hides values older than the view's TTL in the same
way), and the tests compare the two on the same data. It skips Feast's per-request
machinery: the request plan (Redis keys' prefix, hash fields, decoders, TTLs) is
built once, each entity hash is read with one HMGET for all the views keyed by that
entity (Feast sends one per view and row), repeated entities in a request are read
once, and values are decoded straight from the protobuf wire format. That Python machinery, not
Redis, is most of Feast's latency for batches of entity rows (bench/online_latency.py).

Feast's `FeatureStore.get_online_features` and `feast serve` remain the reference
path (the consistency check reads through them); this reader is for model servers
that call it in their request path.

With a request log, the reader also reads the instant the stream last finished writing
fresh values as of (`pipelines.streaming.fresh`), before the values in the same round
trip, and logs for each real-time view the instant its served value is as of: that one,
or the value's own event time when the micro-batch in progress wrote it since. The
replay check rebuilds the value at that instant (`pipelines.quality.replay`).

Redis: `redis_url`, else REDIS_URL, else the platform's local server if it runs.
A reader never starts a server (`RedisNotConfiguredError` instead).
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from features import REGISTRY, FeatureView
from pipelines.interval import parse_time
from pipelines.redis_server import RedisUnavailableError, redis_client, serving_redis_url
from pipelines.serving.encoding import (
    TAG_DOUBLE,
    TAG_INT64,
    TAG_STRING,
    TAG_UNIX_TIMESTAMP,
    entity_key_head,
    entity_key_value,
    fresh_instant_key,
    timestamp_micros_from_proto,
)
from pipelines.serving.materialize import layout_for
from pipelines.serving.online import OnlineLookupError, resolve_features
from pipelines.serving.request_log import RequestLog


@dataclass(frozen=True)
class _ViewSlice:
    """Where one view's requested features and event time sit in an HMGET reply."""

    names: tuple[str, ...]
    readers: tuple[Callable[[bytes | None], Any], ...]
    first: int  # index of the first requested feature in the reply
    ts_index: int
    ttl_seconds: float  # 0: no TTL
    view: str
    realtime: bool  # the stream writes fresh values of it


@dataclass(frozen=True)
class _HashRead:
    """One HMGET per entity hash: every field the request needs from that entity."""

    join_key: str
    join_key_type: str
    key_head: bytes  # serialized entity key up to the value
    key_tail: bytes  # the project name
    fields: tuple[bytes, ...]
    views: tuple[_ViewSlice, ...]

    def redis_key(self, value: Any) -> bytes:
        if self.join_key_type == "int64":
            try:
                value = operator.index(value)
            except TypeError:
                raise OnlineLookupError(
                    f"{self.join_key} must be an integer, got {value!r}"
                ) from None
        return self.key_head + entity_key_value(self.join_key_type, value) + self.key_tail


_NULL_TIMESTAMP = -(2**63)  # Feast's stand-in for a null timestamp
_DOUBLE = struct.Struct("<d")


def _decode_value(data: bytes | None) -> Any:
    """A Python value from a serialized `feast.types.Value`, as Feast's to_dict() gives it."""
    if not data:
        return None
    from feast.protos.feast.types.Value_pb2 import Value

    message = Value.FromString(data)
    kind = message.WhichOneof("val")
    if kind is None:
        return None
    value = getattr(message, kind)
    if kind == "unix_timestamp_val":
        return None if value == _NULL_TIMESTAMP else datetime.fromtimestamp(value, tz=UTC)
    return value


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


# Wire-format readers for the one field each type's values hold: several times faster
# than building a protobuf message per value. Anything else goes through protobuf.
def _read_double(data: bytes | None) -> Any:
    if data and data[0] == TAG_DOUBLE and len(data) == 9:
        return _DOUBLE.unpack_from(data, 1)[0]
    return _decode_value(data)


def _read_int64(data: bytes | None) -> Any:
    if data and data[0] == TAG_INT64:
        value, end = _varint(data, 1)
        if end == len(data):
            return _signed(value)
    return _decode_value(data)


def _read_string(data: bytes | None) -> Any:
    if data and data[0] == TAG_STRING:
        length, start = _varint(data, 1)
        if start + length == len(data):
            return data[start:].decode()
    return _decode_value(data)


def _read_unix_timestamp(data: bytes | None) -> Any:
    if data and data[0] == TAG_UNIX_TIMESTAMP:
        value, end = _varint(data, 1)
        if end == len(data):
            seconds = _signed(value)
            return None if seconds == _NULL_TIMESTAMP else datetime.fromtimestamp(seconds, tz=UTC)
    return _decode_value(data)


_READERS: dict[str, Callable[[bytes | None], Any]] = {
    "float64": _read_double,
    "int64": _read_int64,
    "string": _read_string,
    "date": _read_unix_timestamp,
    "timestamp": _read_unix_timestamp,
}


class OnlineReader:
    """Reads a feature service (or "view:feature" references) from Feast's Redis layout."""

    def __init__(
        self,
        features: str | Sequence[str],
        *,
        redis_url: str | None = None,
        project: str | None = None,
        log: RequestLog | None = None,
    ) -> None:
        """`log`: a `RequestLog` of the same feature service, to log a sample of what is
        served (for replaying it offline)."""
        from pipelines.serving.store import repo_settings

        if log is not None and log.service != features:
            raise OnlineLookupError(f"the request log is of {log.service!r}, not of {features!r}")
        self._log = log

        self._views = resolve_features(features)
        self._project = project or repo_settings().project
        self._url = redis_url or serving_redis_url()
        self._client = redis_client(self._url)
        self._reads = self._plan()
        self._join_keys = sorted(read.join_key for read in self._reads)
        self._columns = [name for names in self._views.values() for name in names]

    def _plan(self) -> tuple[_HashRead, ...]:
        by_key: dict[str, list[str]] = {}
        for view_name in self._views:
            by_key.setdefault(REGISTRY.view(view_name).entity.join_key, []).append(view_name)
        reads = []
        for join_key, view_names in by_key.items():
            fields: list[bytes] = []
            slices = []
            for view_name in view_names:
                view = REGISTRY.view(view_name)
                layout = layout_for(view, self._project)
                wanted = self._views[view_name]
                hashes = dict(zip(layout.feature_names, layout.field_hashes, strict=True))
                first = len(fields)
                fields += [hashes[name] for name in wanted]
                fields.append(layout.ts_field)
                types = dict(layout.features)
                slices.append(
                    _ViewSlice(
                        names=tuple(wanted),
                        readers=tuple(_READERS[types[name]] for name in wanted),
                        first=first,
                        ts_index=len(fields) - 1,
                        ttl_seconds=view.effective_ttl.total_seconds(),
                        view=view_name,
                        realtime=isinstance(view, FeatureView) and view.realtime,
                    )
                )
            view = REGISTRY.view(view_names[0])
            reads.append(
                _HashRead(
                    join_key=join_key,
                    join_key_type=view.entity.value_type,
                    key_head=entity_key_head(join_key),
                    key_tail=self._project.encode(),
                    fields=tuple(fields),
                    views=tuple(slices),
                )
            )
        return tuple(reads)

    @property
    def join_keys(self) -> list[str]:
        return list(self._join_keys)

    def get(
        self, entity_rows: Sequence[Mapping[str, Any]], *, as_of: datetime | None = None
    ) -> dict[str, list[Any]]:
        """Feature values for `entity_rows`, column by column (entity keys first, sorted).

        Entities never materialized give None; with `as_of`, so do values of a view
        with a TTL whose event time is older than `as_of - ttl`.
        """
        import redis

        if not entity_rows:
            raise OnlineLookupError("no entity rows given")
        keys_per_read: list[list[bytes]] = []
        unique: list[dict[bytes, int]] = []
        pipe = self._client.pipeline(transaction=False)
        # Read before the values: every value read after it is at least as fresh.
        logs_instants = self._log is not None and self._log.realtime_views
        if logs_instants:
            pipe.get(fresh_instant_key(self._project))
        for read in self._reads:
            row_keys = []
            positions: dict[bytes, int] = {}
            for i, row in enumerate(entity_rows):
                value = row.get(read.join_key)
                if value is None:
                    raise OnlineLookupError(
                        f"entity row {i} lacks {read.join_key} "
                        f"(these features need {', '.join(self._join_keys)})"
                    )
                key = read.redis_key(value)
                if key not in positions:
                    positions[key] = len(positions)
                    pipe.hmget(key, list(read.fields))  # type: ignore[arg-type]
                row_keys.append(key)
            keys_per_read.append(row_keys)
            unique.append(positions)
        try:
            replies = pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise RedisUnavailableError(f"cannot read from Redis: {exc}") from None
        finally:
            pipe.reset()

        oldest_us = None if as_of is None else parse_time(as_of).timestamp() * 1e6
        out: dict[str, list[Any]] = {
            key: [row[key] for row in entity_rows] for key in self._join_keys
        }
        values: dict[str, list[Any]] = {name: [] for name in self._columns}
        offset = 0
        values_as_of: dict[str, list[int | None]] = {}
        if logs_instants:
            fresh_us = None if replies[0] is None else int(replies[0])
            offset = 1
            values_as_of = self._values_as_of(keys_per_read, unique, replies[offset:], fresh_us)
        for read, row_keys, positions in zip(self._reads, keys_per_read, unique, strict=True):
            decoded = [
                self._decode_hash(read, reply, oldest_us)
                for reply in replies[offset : offset + len(positions)]
            ]
            offset += len(positions)
            for key in row_keys:
                for name, value in decoded[positions[key]]:
                    values[name].append(value)
        out.update(values)
        if self._log is not None:
            self._log.record(entity_rows, out, as_of, values_as_of)
        return out

    def _values_as_of(
        self,
        keys_per_read: list[list[bytes]],
        unique: list[dict[bytes, int]],
        replies: list[Any],
        fresh_us: int | None,
    ) -> dict[str, list[int | None]]:
        """Per real-time view and entity row: the instant (epoch microseconds) the served
        value is the sawtooth value at. The stream had written every value as of
        `fresh_us` when the values were read; a value stored with a later event time was
        written by the micro-batch in progress, as of that time. None: no stream has
        written values (they are the hourly ones)."""
        instants: dict[str, list[int | None]] = {}
        offset = 0
        for read, row_keys, positions in zip(self._reads, keys_per_read, unique, strict=True):
            hashes = replies[offset : offset + len(positions)]
            offset += len(positions)
            for part in read.views:
                if not part.realtime:
                    continue
                stored = [timestamp_micros_from_proto(reply[part.ts_index]) for reply in hashes]
                instants[part.view] = [
                    None if fresh_us is None else max(stored[positions[key]] or 0, fresh_us)
                    for key in row_keys
                ]
        return instants

    def _decode_hash(
        self, read: _HashRead, reply: list[bytes | None], oldest_us: float | None
    ) -> list[tuple[str, Any]]:
        decoded: list[tuple[str, Any]] = []
        for part in read.views:
            hidden = False
            if oldest_us is not None and part.ttl_seconds > 0:
                event_us = timestamp_micros_from_proto(reply[part.ts_index]) or 0
                hidden = event_us != 0 and event_us < oldest_us - part.ttl_seconds * 1e6
            for j, (name, decode) in enumerate(zip(part.names, part.readers, strict=True)):
                decoded.append((name, None if hidden else decode(reply[part.first + j])))
        return decoded

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OnlineReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
