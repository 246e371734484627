"""Write Arrow batches of one feature view to Redis in Feast's layout, from Spark executors.

Per chunk of rows, like Feast's own writer: first the stored `_ts:<view>` and
`_created:<view>` of every key (HMGET), then one HSET per row whose (event time,
created time) is not older than the stored one; consecutive chunks overlap
(`write_chunks`). The commands are built column-wise straight into the Redis protocol
(`encoding.resp_commands`), so no Python object is created per value. A newer stored
value is never replaced by an older row, nor a newer version of a row by an older one
(a rerun of an earlier hour); the same version is rewritten with the same bytes. A value
written by Feast has no `_created`: any version of its row may replace it. A Lua
compare-and-set script would make the check atomic but measured
0.5-0.75x the throughput of this read-then-write; the window it leaves only
matters for two writers of the same view and entity at once, which the scheduler
does not run.

On a Redis Cluster, each chunk is split by the node that owns each key's slot, and
every part goes through the same pipelined HMGET/HSET exchange on a connection to its
node. A slot that moves while a task writes makes the node answer MOVED: the task
fails and Spark retries it with a fresh slot map (rewriting the same values).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np
import pyarrow as pa
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from pipelines.serving.encoding import (
    ViewLayout,
    encode_entity_keys,
    encode_event_timestamps,
    encode_values,
    packed_buffer,
    resp_commands,
    timestamp_micros_from_proto,
)

EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"
RESULT_SCHEMA = "rows long, written long, skipped long"
_COUNTS = pa.schema([("rows", pa.int64()), ("written", pa.int64()), ("skipped", pa.int64())])
DEFAULT_CHUNK_ROWS = 5000


def _event_micros(column: pa.Array) -> np.ndarray:
    as_micros = column.cast(pa.timestamp("us", tz=column.type.tz)).cast(pa.int64())
    return np.asarray(as_micros.to_numpy(zero_copy_only=False), dtype=np.int64)


def _send(conn: redis.connection.Connection, commands: pa.BinaryArray) -> int:
    conn.send_packed_command([packed_buffer(commands)])
    return len(commands)


def _replies(conn: redis.connection.Connection, count: int) -> list[object]:
    return [conn.read_response() for _ in range(count)]


def _hset_commands(layout: ViewLayout, chunk: pa.RecordBatch, keys: pa.Array) -> pa.BinaryArray:
    args: list[bytes | pa.Array] = [b"HSET", keys, layout.ts_field]
    args.append(encode_event_timestamps(chunk.column(EVENT_TIMESTAMP)))
    args += [layout.created_field, encode_event_timestamps(chunk.column(CREATED_TIMESTAMP))]
    for (name, value_type), field in zip(layout.features, layout.field_hashes, strict=True):
        args += [field, encode_values(chunk.column(name), value_type)]
    return resp_commands(args)


@dataclass(frozen=True)
class _Chunk:
    """A chunk whose HMGETs of the stored times are sent, with its HSETs encoded."""

    rows: pa.RecordBatch
    keys: pa.Array
    hsets: pa.BinaryArray


def _start_chunk(
    conn: redis.connection.Connection,
    layout: ViewLayout,
    rows: pa.RecordBatch,
    keys: pa.Array | None = None,
) -> _Chunk:
    """Send the rows' HMGETs and encode their HSETs; `keys` if already encoded."""
    if keys is None:
        keys = encode_entity_keys(layout, rows.column(layout.join_key))
    _send(conn, resp_commands([b"HMGET", keys, layout.ts_field, layout.created_field]))
    # Encoded while Redis answers (and finishes the previous chunk's HSETs).
    return _Chunk(rows, keys, _hset_commands(layout, rows, keys))


def write_chunks(
    conn: redis.connection.Connection, layout: ViewLayout, chunks: Iterator[pa.RecordBatch]
) -> Iterator[tuple[int, int]]:
    """Write chunks of unique entities; yield (rows written, rows skipped as older) per chunk.

    Pipelined over chunks: the next chunk's HMGETs are sent, and its HSETs encoded,
    before this chunk's HSET replies are read, so the client encodes while Redis
    writes. Redis runs a connection's commands in order, and a partition's chunks
    hold distinct entities, so each chunk's HMGETs see every earlier chunk written.
    """
    pending = (rows for rows in chunks if rows.num_rows)
    first = next(pending, None)
    current = None if first is None else _start_chunk(conn, layout, first)
    while current is not None:
        sent, kept, skipped = _send_newer(conn, layout, current)
        following = next(pending, None)
        current = None if following is None else _start_chunk(conn, layout, following)
        _replies(conn, sent)
        yield kept, skipped


def _send_newer(
    conn: redis.connection.Connection, layout: ViewLayout, chunk: _Chunk
) -> tuple[int, int, int]:
    """Read the chunk's stored event times and send the HSETs of the rows not older than
    them; returns (HSETs sent, rows kept, rows skipped). Their replies are still pending."""
    total = chunk.rows.num_rows
    stored = _replies(conn, total)
    new_event = _event_micros(chunk.rows.column(EVENT_TIMESTAMP))
    new_created = _event_micros(chunk.rows.column(CREATED_TIMESTAMP))
    keep = np.ones(total, dtype=bool)
    for i, reply in enumerate(stored):
        event_bytes, created_bytes = cast(list[bytes | None], reply)
        stored_event = timestamp_micros_from_proto(event_bytes)
        if stored_event is not None:
            stored_created = timestamp_micros_from_proto(created_bytes) if created_bytes else None
            keep[i] = stored_event < new_event[i] or (
                stored_event == new_event[i]
                and (stored_created is None or stored_created <= new_created[i])
            )
    kept = int(keep.sum())
    hsets = chunk.hsets
    if 0 < kept < total:
        mask = pa.array(keep)
        hsets = _hset_commands(layout, chunk.rows.filter(mask), chunk.keys.filter(mask))
    sent = _send(conn, hsets) if kept else 0
    return sent, kept, total - kept


@dataclass(frozen=True)
class PartitionWriter:
    """The function Spark runs per partition (`mapInArrow`); yields one count row per chunk
    (per node's part of a chunk on a Redis Cluster)."""

    layout: ViewLayout
    redis_url: str
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    def _chunks(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for start in range(0, batch.num_rows, self.chunk_rows):
                yield batch.slice(start, self.chunk_rows)

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pipelines.redis_server import redis_client

        client = redis_client(self.redis_url)
        if isinstance(client, RedisCluster):
            counts = self._write_to_cluster(client, self._chunks(batches))
            yield from (_counts_batch(written, skipped) for written, skipped in counts)
            return
        conn = client.connection_pool.get_connection()
        try:
            for written, skipped in write_chunks(conn, self.layout, self._chunks(batches)):
                yield _counts_batch(written, skipped)
        except BaseException:
            conn.disconnect()  # replies may be pending: never reuse this connection
            raise
        finally:
            client.connection_pool.release(conn)
            client.close()

    def _write_to_cluster(
        self, client: RedisCluster, chunks: Iterator[pa.RecordBatch]
    ) -> Iterator[tuple[int, int]]:
        """Per chunk, the rows of each node written on a connection to it: every node's
        HMGETs are sent before any reply is read, and then every node's HSETs, so the
        nodes work at the same time."""
        # Primary per slot, looked up once per task instead of per key.
        owner = {slot: nodes[0] for slot, nodes in client.nodes_manager.slots_cache.items()}
        pools: dict[str, redis.ConnectionPool] = {}
        conns: dict[str, redis.connection.Connection] = {}
        try:
            for chunk in chunks:
                keys = encode_entity_keys(self.layout, chunk.column(self.layout.join_key))
                rows_of: dict[str, list[int]] = {}
                for i, key in enumerate(keys.to_pylist()):
                    node = owner[key_slot(key)]
                    if node.name not in conns:
                        pool = client.get_redis_connection(node).connection_pool
                        pools[node.name], conns[node.name] = pool, pool.get_connection()
                    rows_of.setdefault(node.name, []).append(i)
                started = {}
                for name, rows in rows_of.items():
                    taken = pa.array(rows, pa.int64())
                    started[name] = _start_chunk(
                        conns[name], self.layout, chunk.take(taken), keys.take(taken)
                    )
                sent = {
                    name: _send_newer(conns[name], self.layout, part)
                    for name, part in started.items()
                }
                for name, (hsets, kept, skipped) in sent.items():
                    _replies(conns[name], hsets)
                    yield kept, skipped
        except BaseException:
            for conn in conns.values():
                conn.disconnect()  # replies may be pending: never reuse these connections
            raise
        finally:
            for name, conn in conns.items():
                pools[name].release(conn)
            client.close()


def _counts_batch(written: int, skipped: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"rows": [written + skipped], "written": [written], "skipped": [skipped]},
        schema=_COUNTS,
    )


def write_table(
    redis_url: str, layout: ViewLayout, table: pa.Table, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> tuple[int, int]:
    """Write an in-memory table of latest rows (one per entity) from this process."""
    totals = [0, 0]
    writer = PartitionWriter(layout, redis_url, chunk_rows)
    for counts in writer(iter(table.to_batches())):
        totals[0] += counts.column("written")[0].as_py()
        totals[1] += counts.column("skipped")[0].as_py()
    return totals[0], totals[1]
