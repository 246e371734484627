"""Feast's Redis layout, encoded column-wise (numpy/Arrow) instead of row by row.

The byte formats are Feast's own (`feast/infra/online_stores/redis.py`,
`feast/infra/key_encoding_utils.py`); tests compare every encoder here with
Feast's serialization byte for byte:

- hash key: `serialize_entity_key(EntityKey, version 3)` + project name;
- field: murmur3_32 of `"<view>:<feature>"`, 4 bytes little-endian;
- value: a serialized `feast.types.Value` (protobuf), `b""` for null;
- field `_ts:<view>`: a serialized `google.protobuf.Timestamp` of the row's event time;
- field `_created:<view>` (the platform's own; Feast never reads it): the same for the
  version's created_timestamp, so that of two versions of one row the newer one wins;
- key `feature_platform:fresh_instant:<project>` (the platform's own): the instant the
  stream last finished writing fresh values as of, in microseconds since the epoch.

Protobuf's wire format for these messages is a tag byte followed by a varint or
eight little-endian bytes, so a whole Arrow column encodes with a handful of
vectorized operations; building one protobuf object per value in Python is what
makes Feast's own materialization slow. One deliberate difference: Feast turns a
null timestamp/date into the sentinel `-2**63`; here it is null like every other type.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# feast.types.Value field numbers -> protobuf tag bytes (field << 3 | wire type).
TAG_STRING = 0x12  # string_val = 2, length-delimited
TAG_INT64 = 0x20  # int64_val = 4, varint
TAG_DOUBLE = 0x29  # double_val = 5, 64-bit
TAG_UNIX_TIMESTAMP = 0x40  # unix_timestamp_val = 8, varint
# google.protobuf.Timestamp: seconds = 1 (varint), nanos = 2 (varint).
_TAG_SECONDS = 0x08
_TAG_NANOS = 0x10
# feast.types.ValueType numbers used inside serialized entity keys.
_VALUE_TYPE_STRING = 2
_VALUE_TYPE_INT64 = 4

_VARINT_SHIFTS = np.arange(0, 70, 7, dtype=np.uint64)  # ten 7-bit groups cover 64 bits
_VARINT_THRESHOLDS = np.left_shift(np.uint64(1), _VARINT_SHIFTS[1:])
_MICROS = 1_000_000
_SECONDS_PER_DAY = 86_400

VALUE_TYPES = ("int64", "float64", "string", "date", "timestamp")


@dataclass(frozen=True)
class ViewLayout:
    """Everything needed to write one feature view in Feast's Redis layout (picklable)."""

    project: str
    view: str
    join_key: str
    join_key_type: str
    features: tuple[tuple[str, str], ...]  # (name, value type) in table order
    field_hashes: tuple[bytes, ...]  # Feast's _mmh3("<view>:<feature>") per feature

    @property
    def ts_field(self) -> bytes:
        return f"_ts:{self.view}".encode()

    @property
    def created_field(self) -> bytes:
        return f"_created:{self.view}".encode()

    @property
    def feature_names(self) -> list[str]:
        return [name for name, _ in self.features]


def feature_field(view: str, feature: str) -> bytes:
    """The hash field Feast uses for a feature: murmur3_32 of "view:feature", little-endian
    (Feast's `_mmh3`; computed here so that readers need not import Feast's SDK)."""
    import mmh3

    return mmh3.hash(f"{view}:{feature}", signed=False).to_bytes(4, "little")


def view_layout(
    project: str, view: str, join_key: str, join_key_type: str, features: Sequence[tuple[str, str]]
) -> ViewLayout:
    for name, value_type in features:
        if value_type not in VALUE_TYPES:
            raise ValueError(f"feature {view}:{name} has unsupported type {value_type!r}")
    if join_key_type not in ("int64", "string"):
        raise ValueError(f"join key {join_key} has unsupported type {join_key_type!r}")
    return ViewLayout(
        project=project,
        view=view,
        join_key=join_key,
        join_key_type=join_key_type,
        features=tuple(features),
        field_hashes=tuple(feature_field(view, name) for name, _ in features),
    )


# --- building blocks -------------------------------------------------------------


def _binary_from_rows(matrix: np.ndarray, lengths: np.ndarray) -> pa.BinaryArray:
    """Row i of the result is `matrix[i, :lengths[i]]` (length 0 gives b"")."""
    n, width = matrix.shape
    keep = np.arange(width)[None, :] < lengths[:, None]
    data = np.ascontiguousarray(matrix[keep])  # row-major: the rows' bytes back to back
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.BinaryArray.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _tagged_varints(tag: int, values: np.ndarray, present: np.ndarray) -> pa.BinaryArray:
    """`tag` + varint(value) per row (two's complement for negatives); b"" where not present."""
    unsigned = values.astype(np.int64, copy=False).view(np.uint64)
    groups = ((unsigned[:, None] >> _VARINT_SHIFTS[None, :]) & np.uint64(0x7F)).astype(np.uint8)
    nbytes = 1 + (unsigned[:, None] >= _VARINT_THRESHOLDS[None, :]).sum(axis=1)
    groups[np.arange(10)[None, :] < (nbytes[:, None] - 1)] |= 0x80
    matrix = np.empty((len(values), 11), dtype=np.uint8)
    matrix[:, 0] = tag
    matrix[:, 1:] = groups
    return _binary_from_rows(matrix, np.where(present, nbytes + 1, 0))


def _fixed_rows(prefix: bytes, payload: np.ndarray, present: np.ndarray) -> pa.BinaryArray:
    """`prefix` + the bytes of each payload row; b"" where not present."""
    n = len(present)
    raw = payload.view(np.uint8).reshape(n, -1)
    matrix = np.empty((n, len(prefix) + raw.shape[1]), dtype=np.uint8)
    matrix[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    matrix[:, len(prefix) :] = raw
    return _binary_from_rows(matrix, np.where(present, matrix.shape[1], 0))


def _valid(column: pa.Array) -> np.ndarray:
    return np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _as_binary(column: pa.Array) -> pa.Array:
    binary = column.cast(
        pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary()
    )
    return pc.fill_null(binary, pa.scalar(b"", binary.type)).cast(pa.binary())


def _int_values(column: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(column, 0).to_numpy(zero_copy_only=False))


# --- Value protos -----------------------------------------------------------------


def encode_values(column: pa.Array, value_type: str) -> pa.BinaryArray:
    """Serialized `feast.types.Value` per row, as Feast writes it (null and NaN give b"")."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    present = _valid(column)
    if value_type == "int64":
        return _tagged_varints(TAG_INT64, _int_values(column.cast(pa.int64())), present)
    if value_type == "float64":
        doubles = np.asarray(pc.fill_null(column.cast(pa.float64()), 0.0).to_numpy(), dtype="<f8")
        return _fixed_rows(bytes([TAG_DOUBLE]), doubles, present & ~np.isnan(doubles))
    if value_type == "string":
        data = _as_binary(column)
        lengths = np.asarray(pc.binary_length(data).to_numpy(zero_copy_only=False), np.int64)
        prefix = _tagged_varints(TAG_STRING, lengths, present)
        return pc.binary_join_element_wise(prefix, data, b"")
    if value_type == "date":
        days = _int_values(column.cast(pa.int32())).astype(np.int64)
        return _tagged_varints(TAG_UNIX_TIMESTAMP, days * _SECONDS_PER_DAY, present)
    if value_type == "timestamp":
        micros = _timestamp_micros(column)
        return _tagged_varints(TAG_UNIX_TIMESTAMP, np.floor_divide(micros, _MICROS), present)
    raise ValueError(f"unsupported value type {value_type!r}")


def _timestamp_micros(column: pa.Array) -> np.ndarray:
    as_micros = column.cast(pa.timestamp("us", tz=column.type.tz)).cast(pa.int64())
    return _int_values(as_micros).astype(np.int64)


def encode_event_timestamps(column: pa.Array) -> pa.BinaryArray:
    """Serialized `google.protobuf.Timestamp` per row (Feast's `_ts:<view>` value)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise ValueError("event timestamps must not be null")
    micros = _timestamp_micros(column)
    seconds = np.floor_divide(micros, _MICROS)
    nanos = (micros - seconds * _MICROS) * 1000
    # proto3 leaves zero-valued scalar fields out.
    seconds_part = _tagged_varints(_TAG_SECONDS, seconds, seconds != 0)
    nanos_part = _tagged_varints(_TAG_NANOS, nanos, nanos != 0)
    return pc.binary_join_element_wise(seconds_part, nanos_part, b"")


def timestamp_micros_from_proto(data: bytes | None) -> int | None:
    """Decode a serialized `google.protobuf.Timestamp` to microseconds since the epoch."""
    if not data:
        return None if data is None else 0
    fields = {1: 0, 2: 0}
    pos = 0
    while pos < len(data):
        tag = data[pos]
        pos += 1
        value, shift = 0, 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if value >= 1 << 63:
            value -= 1 << 64
        fields[tag >> 3] = value
    return fields[1] * _MICROS + fields[2] // 1000


# --- entity keys ------------------------------------------------------------------


def fresh_instant_key(project: str) -> bytes:
    """The key of the instant the stream's fresh values were last completely written as of
    (`pipelines.streaming.fresh`); no entity key has this form."""
    return f"feature_platform:fresh_instant:{project}".encode()


def entity_key_head(join_key: str) -> bytes:
    """A serialized entity key (version 3) of one join key, up to its value."""
    name = join_key.encode()
    return struct.pack("<III", 1, _VALUE_TYPE_STRING, len(name)) + name


def entity_key_value(join_key_type: str, value: int | str) -> bytes:
    """The value part of a serialized entity key: value type, length and bytes."""
    if join_key_type == "int64":
        return struct.pack("<IIq", _VALUE_TYPE_INT64, 8, value)
    raw = str(value).encode()
    return struct.pack("<II", _VALUE_TYPE_STRING, len(raw)) + raw


def encode_entity_keys(layout: ViewLayout, column: pa.Array) -> pa.BinaryArray:
    """Redis hash key per row: Feast's serialized entity key (version 3) + the project name."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise ValueError(f"join key {layout.join_key} must not be null")
    head = entity_key_head(layout.join_key)
    project = layout.project.encode()
    n = len(column)
    if layout.join_key_type == "int64":
        values = np.asarray(column.cast(pa.int64()).to_numpy(), dtype="<i8")
        prefix = head + struct.pack("<II", _VALUE_TYPE_INT64, 8)
        matrix = np.empty((n, len(prefix) + 8 + len(project)), dtype=np.uint8)
        matrix[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
        matrix[:, len(prefix) : len(prefix) + 8] = values.view(np.uint8).reshape(n, 8)
        matrix[:, len(prefix) + 8 :] = np.frombuffer(project, dtype=np.uint8)
        return _binary_from_rows(matrix, np.full(n, matrix.shape[1]))
    data = _as_binary(column)
    lengths = np.asarray(pc.binary_length(data).to_numpy(zero_copy_only=False), dtype="<u4")
    type_and_length = np.empty((n, 2), dtype="<u4")
    type_and_length[:, 0] = _VALUE_TYPE_STRING
    type_and_length[:, 1] = lengths
    middle = _fixed_rows(b"", type_and_length, np.ones(n, dtype=bool))
    return pc.binary_join_element_wise(
        pa.scalar(head, pa.binary()), middle, data, pa.scalar(project, pa.binary()), b""
    )


# --- Redis protocol -----------------------------------------------------------------


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def resp_commands(args: Sequence[bytes | pa.Array]) -> pa.BinaryArray:
    """One RESP-encoded command per row; each argument is a constant or a binary column.

    The commands of consecutive rows lie back to back in the result's data buffer,
    which is exactly what a pipeline sends.
    """
    columns = [a for a in args if not isinstance(a, bytes)]
    if not columns:
        raise ValueError("resp_commands needs at least one column argument")
    n = len(columns[0])
    pieces: list[bytes | pa.Array] = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            pieces.append(_bulk(arg))
            continue
        lengths = pc.binary_length(arg).cast(pa.string()).cast(pa.binary())
        pieces += [b"$", lengths, b"\r\n", arg, b"\r\n"]
    merged: list[bytes | pa.Array] = []
    for piece in pieces:
        if isinstance(piece, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += piece
        else:
            merged.append(piece)
    scalars = [pa.scalar(p, pa.binary()) if isinstance(p, bytes) else p for p in merged]
    out = pc.binary_join_element_wise(*scalars, b"")
    if len(out) != n:
        raise ValueError("argument columns differ in length")
    return out


def packed_buffer(commands: pa.BinaryArray) -> memoryview:
    """The contiguous bytes of all commands (a pipeline), without copying."""
    offsets = np.frombuffer(commands.buffers()[1], dtype=np.int32)
    first = offsets[commands.offset]
    last = offsets[commands.offset + len(commands)]
    return memoryview(commands.buffers()[2])[first:last]
