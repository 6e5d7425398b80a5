"""The records of the durable Raft log and their framing on disk.

Every record is framed as ``length (u32) | crc32 (u32) | kind (u8) | payload``; the
checksum covers the kind byte and the payload, so a torn or garbled tail written by
a crash is detected when the log is opened instead of being misread as data.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from raft.core.types import ConfState, Entry, EntryType, HardState, SnapshotMetadata

FRAME = struct.Struct(">IIB")
"""Payload length, crc32 of (kind + payload), record kind."""

MAX_RECORD_BYTES = 1 << 31
"""Anything longer cannot have been written by us: treat the length as garbage."""

_ENTRY = struct.Struct(">QQB")
_HARD_STATE = struct.Struct(">QQQ")
_SNAPSHOT = struct.Struct(">QQIQII")  # index, term, data crc32, data length, #voters, #learners
_LOG_START = struct.Struct(">QQB")
_ID = struct.Struct(">Q")


class RecordKind(enum.IntEnum):
    """What a record means when the log is replayed."""

    ENTRY = 1  # a log entry; one at or below the tail replaces the tail from its index (§5.3)
    HARD_STATE = 2  # term, vote, commit (Figure 2 "persistent state")
    SNAPSHOT = 3  # metadata of the newest snapshot (§7)
    LOG_START = 4  # the log now begins after (index, term): compaction or an installed snapshot
    CHECKPOINT = 5  # first record of every segment: the state older segments would otherwise hold
    BATCH = 6  # the records of one save, framed inside one record so a save is all-or-nothing


class CorruptLogError(Exception):
    """The log is damaged somewhere other than a torn tail: refuse to guess."""


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """Snapshot metadata plus the checksum and length of its (optional) data file."""

    metadata: SnapshotMetadata
    data_crc: int = 0
    data_len: int = 0


@dataclass(frozen=True, slots=True)
class LogStart:
    """Entries at or below `index` are gone; `term` is the term of the entry at `index`.

    `discard_all` drops every held entry (an installed snapshot replaces the whole log).
    """

    index: int
    term: int
    discard_all: bool = False


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """All non-entry state at the moment a segment was started."""

    hard_state: HardState
    snapshot: SnapshotRecord
    log_start: LogStart


Record = Entry | HardState | SnapshotRecord | LogStart | Checkpoint


def frame(kind: RecordKind, payload: bytes) -> bytes:
    """Length-prefix and checksum one record."""
    return FRAME.pack(len(payload), _checksum(kind, payload), kind) + payload


def _checksum(kind: int, payload: bytes) -> int:
    """crc32 of the kind byte and the payload, as each frame carries it."""
    return zlib.crc32(payload, zlib.crc32(bytes((kind,))))


def encode(record: Record) -> bytes:
    """The framed bytes of `record`."""
    if isinstance(record, Entry):
        return frame(RecordKind.ENTRY, _ENTRY.pack(record.term, record.index, record.type) + record.data)
    if isinstance(record, HardState):
        return frame(RecordKind.HARD_STATE, _encode_hard_state(record))
    if isinstance(record, SnapshotRecord):
        return frame(RecordKind.SNAPSHOT, _encode_snapshot(record))
    if isinstance(record, LogStart):
        return frame(RecordKind.LOG_START, _encode_log_start(record))
    payload = (_encode_hard_state(record.hard_state) + _encode_log_start(record.log_start)
               + _encode_snapshot(record.snapshot))
    return frame(RecordKind.CHECKPOINT, payload)


def encode_batch(records: list[Record]) -> tuple[bytes, list[int]]:
    """One record holding `records` (a torn write loses the whole batch, never half a Ready), and where
    each record's own frame starts in it, so the log can find an entry's bytes on disk again."""
    if len(records) == 1:
        return encode(records[0]), [0]
    parts = [encode(r) for r in records]
    starts = []
    position = FRAME.size
    for part in parts:
        starts.append(position)
        position += len(part)
    return frame(RecordKind.BATCH, b"".join(parts)), starts


def decode(kind: int, payload: bytes) -> Record:
    """The record a checksummed payload holds; raises CorruptLogError on an unknown kind or bad size."""
    try:
        if kind == RecordKind.ENTRY:
            term, index, entry_type = _ENTRY.unpack_from(payload)
            return Entry(term=term, index=index, type=EntryType(entry_type), data=payload[_ENTRY.size:])
        if kind == RecordKind.HARD_STATE:
            return _decode_hard_state(payload)
        if kind == RecordKind.SNAPSHOT:
            return _decode_snapshot(payload)
        if kind == RecordKind.LOG_START:
            return _decode_log_start(payload)
        if kind == RecordKind.CHECKPOINT:
            hard_state = _decode_hard_state(payload)
            log_start = _decode_log_start(payload[_HARD_STATE.size:])
            snapshot = _decode_snapshot(payload[_HARD_STATE.size + _LOG_START.size:])
            return Checkpoint(hard_state=hard_state, snapshot=snapshot, log_start=log_start)
    except (struct.error, ValueError) as err:
        raise CorruptLogError(f"malformed record of kind {kind}: {err}") from err
    raise CorruptLogError(f"unknown record kind {kind}")


def scan(buf: bytes) -> tuple[list[Record], int]:
    """Decode records from the start of `buf`; stop at the first incomplete or garbled one.

    Returns the records and the length of the valid prefix; a caller finding that shorter than `buf`
    has met a torn tail (or corruption, if more segments follow).
    """
    records: list[Record] = []
    valid = scan_into(buf, lambda record, _start: records.append(record))
    return records, valid


def scan_into(buf: bytes, emit: Callable[[Record, int], None], base: int = 0) -> int:
    """`scan`, handing each record and its frame's start to `emit` as it is decoded instead of keeping
    them all: replaying a segment then holds one record at a time, not the segment's every entry."""
    pos = 0
    end = len(buf)
    while pos + FRAME.size <= end:
        length, crc, kind = FRAME.unpack_from(buf, pos)
        body_start = pos + FRAME.size
        if length >= MAX_RECORD_BYTES or body_start + length > end:
            break
        payload = buf[body_start:body_start + length]
        if _checksum(kind, payload) != crc:
            break
        if kind == RecordKind.BATCH:
            if scan_into(payload, emit, base + body_start) != len(payload):
                raise CorruptLogError("a batch with a valid checksum holds a damaged record")
        else:
            emit(decode(kind, payload), base + pos)
        pos = body_start + length
    return pos


def read_entry(segment: BinaryIO, start: int) -> Entry:
    """The entry whose frame starts at byte `start` of an open segment file, checksum checked."""
    segment.seek(start)
    head = segment.read(FRAME.size)
    if len(head) != FRAME.size:
        raise CorruptLogError(f"{segment.name}: no entry at byte {start}")
    length, crc, kind = FRAME.unpack(head)
    payload = segment.read(length) if length < MAX_RECORD_BYTES else b""
    if (kind != RecordKind.ENTRY or len(payload) != length
            or _checksum(kind, payload) != crc):
        raise CorruptLogError(f"{segment.name}: the entry at byte {start} is damaged")
    entry = decode(kind, payload)
    assert isinstance(entry, Entry)
    return entry


def _encode_hard_state(hs: HardState) -> bytes:
    return _HARD_STATE.pack(hs.term, hs.vote, hs.commit)


def _decode_hard_state(payload: bytes) -> HardState:
    term, vote, commit = _HARD_STATE.unpack_from(payload)
    return HardState(term=term, vote=vote, commit=commit)


def _encode_log_start(start: LogStart) -> bytes:
    return _LOG_START.pack(start.index, start.term, int(start.discard_all))


def _decode_log_start(payload: bytes) -> LogStart:
    index, term, discard_all = _LOG_START.unpack_from(payload)
    return LogStart(index=index, term=term, discard_all=bool(discard_all))


def _encode_snapshot(rec: SnapshotRecord) -> bytes:
    meta = rec.metadata
    voters, learners = meta.conf_state.voters, meta.conf_state.learners
    head = _SNAPSHOT.pack(meta.index, meta.term, rec.data_crc, rec.data_len, len(voters), len(learners))
    return head + b"".join(_ID.pack(i) for i in (*voters, *learners))


def _decode_snapshot(payload: bytes) -> SnapshotRecord:
    index, term, data_crc, data_len, n_voters, n_learners = _SNAPSHOT.unpack_from(payload)
    ids = [_ID.unpack_from(payload, _SNAPSHOT.size + i * _ID.size)[0] for i in range(n_voters + n_learners)]
    conf_state = ConfState(voters=tuple(ids[:n_voters]), learners=tuple(ids[n_voters:]))
    metadata = SnapshotMetadata(index=index, term=term, conf_state=conf_state)
    return SnapshotRecord(metadata=metadata, data_crc=data_crc, data_len=data_len)
