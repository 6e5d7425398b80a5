"""The protobuf messages an etcd WAL holds, decoded field by field (proto2, all scalars or bytes).

``walpb.Record``   type (1), crc (2, the running CRC-32C after this record), data (3)
``walpb.Snapshot`` index (1), term (2): a snapshot point the log was cut at
``raftpb.Entry``   type (1: 0 normal, 1 conf change, 2 conf change v2), term (2), index (3), data (4)
``raftpb.HardState`` term (1), vote (2), commit (3)

(wal/walpb/record.proto, raft/raftpb/raft.proto.) Only varints and length-delimited fields occur, so a
few lines of wire decoding replace generated code for messages the rest of pyetcd never sends.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RecordDecodeError(ValueError):
    """Bytes that are not the protobuf message they should be."""


class EntryType(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1
    CONF_CHANGE_V2 = 2


@dataclass(frozen=True, slots=True)
class Record:
    type: int
    crc: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class HardState:
    term: int = 0
    vote: int = 0
    commit: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotPoint:
    index: int
    term: int


VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(buf) and shift < 70:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise RecordDecodeError("truncated varint")


def fields(buf: bytes) -> dict[int, int | bytes]:
    """The message's fields by number (the last occurrence wins, as proto2 scalars merge)."""
    out: dict[int, int | bytes] = {}
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise RecordDecodeError("field number 0")
        if wire_type == VARINT:
            out[number], pos = _varint(buf, pos)
        elif wire_type == LENGTH_DELIMITED:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise RecordDecodeError("truncated length-delimited field")
            out[number], pos = buf[pos:pos + size], pos + size
        elif wire_type in (FIXED64, FIXED32):
            width = 8 if wire_type == FIXED64 else 4
            if pos + width > len(buf):
                raise RecordDecodeError("truncated fixed field")
            out[number], pos = int.from_bytes(buf[pos:pos + width], "little"), pos + width
        else:
            raise RecordDecodeError(f"unexpected wire type {wire_type}")
    return out


def _int(f: dict[int, int | bytes], number: int) -> int:
    value = f.get(number, 0)
    if not isinstance(value, int):
        raise RecordDecodeError(f"field {number} is not a number")
    return value


def _bytes(f: dict[int, int | bytes], number: int) -> bytes:
    value = f.get(number, b"")
    if not isinstance(value, bytes):
        raise RecordDecodeError(f"field {number} is not bytes")
    return value


def decode_record(buf: bytes) -> Record:
    f = fields(buf)
    record_type = _int(f, 1)
    if record_type >= 1 << 63:  # int64 on the wire as a 64-bit two's complement varint
        record_type -= 1 << 64
    return Record(record_type, _int(f, 2), _bytes(f, 3))


def decode_entry(buf: bytes) -> Entry:
    f = fields(buf)
    return Entry(term=_int(f, 2), index=_int(f, 3), type=_int(f, 1), data=_bytes(f, 4))


def decode_hard_state(buf: bytes) -> HardState:
    f = fields(buf)
    return HardState(term=_int(f, 1), vote=_int(f, 2), commit=_int(f, 3))


def decode_snapshot_point(buf: bytes) -> SnapshotPoint:
    f = fields(buf)
    return SnapshotPoint(index=_int(f, 1), term=_int(f, 2))
