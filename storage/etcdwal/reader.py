"""Reading an etcd 3.4 WAL directory the way etcd's wal.ReadAll does, without changing it.

A WAL is a sequence of files ``<seq>-<index>.wal`` (16 hex digits each). Each file is a run of frames:
an 8-byte little-endian length whose low 56 bits are the record's size; when the top bit is set, the
low 3 bits of the top byte say how many padding bytes follow (frames stay 8-byte aligned). A frame
holds a ``walpb.Record`` whose crc is the CRC-32C of every record's data so far, chained across files
by a crc record at the start of each. A zero length means preallocated space: the file ends there.

Like etcd (wal/decoder.go, wal/repair.go), a last record cut short by a crash -- too few bytes, or a
checksum failure where a 512-byte sector of it is all zeros -- is a torn write: it and what follows
are dropped, as etcd truncates them when it next opens the log. Any other damage is an error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from storage.etcdwal.records import (
    Entry,
    HardState,
    Record,
    RecordDecodeError,
    SnapshotPoint,
    decode_entry,
    decode_hard_state,
    decode_record,
    decode_snapshot_point,
)
from storage.mvcc.crc32c import extend as crc32c_extend

METADATA, ENTRY, STATE, CRC, SNAPSHOT = 1, 2, 3, 4, 5
FRAME_SIZE_BYTES = 8
MIN_SECTOR_SIZE = 512
MAX_RECORD_BYTES = 10 * 1024 * 1024  # etcd's maxWALEntrySizeLimit
WAL_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")


class WalCorruptError(ValueError):
    """The log is damaged somewhere other than a torn last record, or is not an etcd WAL."""


class _TornTail(Exception):
    """The last file ends in a record a crash cut short."""


@dataclass(slots=True)
class WalContents:
    """What etcd would read back: the log's entries (later writes of an index replace earlier ones and
    everything after them), the last hard state, the snapshot points, and whether a torn tail was dropped."""

    entries: list[Entry] = field(default_factory=list)
    hard_state: HardState = field(default_factory=HardState)
    snapshots: list[SnapshotPoint] = field(default_factory=list)
    metadata: bytes | None = None
    torn_tail_bytes: int = 0

    @property
    def first_index(self) -> int:
        return self.entries[0].index if self.entries else 0


def wal_file_names(wal_dir: str) -> list[str]:
    """The directory's WAL files in sequence order; a gap in the sequence numbers is an error."""
    named = sorted((int(m.group(1), 16), name) for name in os.listdir(wal_dir) if (m := WAL_NAME.match(name)))
    if not named:
        raise WalCorruptError(f"{wal_dir}: no WAL files")
    for (seq, name), (next_seq, next_name) in zip(named, named[1:], strict=False):
        if next_seq != seq + 1:
            raise WalCorruptError(f"{wal_dir}: WAL files {name} and {next_name} are not in sequence")
    return [name for _, name in named]


def read_wal(wal_dir: str) -> WalContents:
    """Every record of the WAL in ``wal_dir``, checked and applied in order as etcd's ReadAll does."""
    names = wal_file_names(wal_dir)
    contents = WalContents()
    crc = 0
    for number, name in enumerate(names):
        path = os.path.join(wal_dir, name)
        with open(path, "rb") as fh:
            data = fh.read()
        is_last = number == len(names) - 1
        frames = _FrameIter(data, path, is_last, contents)
        try:
            for record in frames:
                if record.type == CRC:
                    # A file opens with the CRC the previous one ended on (0 in the very first).
                    if crc != 0 and record.crc != crc:
                        raise WalCorruptError(f"{path}: wal: crc mismatch")
                    crc = record.crc
                    continue
                crc = crc32c_extend(crc, record.data)
                if record.crc != crc:
                    frames.checksum_failed()
                _apply_record(record, contents, path)
        except _TornTail:
            pass
    return contents


class _FrameIter:
    """The records of one file in order; the reader reports a CRC failure back (``checksum_failed``) so
    that a torn write can be told from corruption."""

    def __init__(self, data: bytes, path: str, is_last: bool, contents: WalContents) -> None:
        self.data, self.path, self.is_last, self.contents = data, path, is_last, contents
        self.offset = 0
        self.frame = b""
        self.frame_start = 0

    def __iter__(self) -> _FrameIter:
        return self

    def __next__(self) -> Record:
        data, offset = self.data, self.offset
        if offset >= len(data):
            raise StopIteration
        if offset + FRAME_SIZE_BYTES > len(data):
            return self._torn("a frame length cut short")
        length_field = int.from_bytes(data[offset:offset + FRAME_SIZE_BYTES], "little")
        if length_field == 0:  # preallocated space
            raise StopIteration
        record_bytes = length_field & ((1 << 56) - 1)
        pad_bytes = (length_field >> 56) & 0x7 if length_field >> 63 else 0
        if record_bytes >= MAX_RECORD_BYTES - pad_bytes:
            raise WalCorruptError(f"{self.path}: wal: max entry size limit exceeded (record at offset {offset})")
        start = offset + FRAME_SIZE_BYTES
        end = start + record_bytes + pad_bytes
        if end > len(data):
            return self._torn("a record cut short")
        self.frame = data[start:end]
        try:
            record = decode_record(data[start:start + record_bytes])
        except RecordDecodeError as e:
            if self._is_torn_write(start):
                return self._torn("a torn write")
            raise WalCorruptError(f"{self.path}: record at offset {offset}: {e}") from None
        self.offset = end
        self.frame_start = start
        return record

    def _torn(self, what: str) -> Record:
        if not self.is_last:
            raise WalCorruptError(f"{self.path}: {what} at offset {self.offset} before the last WAL file")
        self.contents.torn_tail_bytes = len(self.data) - self.offset
        raise _TornTail

    def _is_torn_write(self, start: int) -> bool:
        """etcd's isTornEntry: in the last file, some 512-byte sector of the record is all zeros."""
        if not self.is_last:
            return False
        position, frame = start, self.frame
        cut = 0
        while cut < len(frame):
            chunk = min(MIN_SECTOR_SIZE - position % MIN_SECTOR_SIZE, len(frame) - cut)
            if not any(frame[cut:cut + chunk]):
                return True
            cut += chunk
            position += chunk
        return False

    def checksum_failed(self) -> None:
        """The record just read does not match the running CRC: torn if etcd would call it so."""
        start = self.frame_start
        self.offset = start - FRAME_SIZE_BYTES
        if self._is_torn_write(start):
            self._torn("a torn write")
        raise WalCorruptError(f"{self.path}: wal: crc mismatch (record at offset {self.offset})")


def _apply_record(record: Record, contents: WalContents, path: str) -> None:
    try:
        if record.type == ENTRY:
            entry = decode_entry(record.data)
            entries = contents.entries
            if entries and entry.index <= entries[-1].index:
                # A new leader overwrote the tail: drop the old entries from this index on (wal.ReadAll).
                del entries[max(0, entry.index - entries[0].index):]
            elif entries and entry.index != entries[-1].index + 1:
                raise WalCorruptError(f"{path}: entry {entry.index} follows entry {entries[-1].index}")
            entries.append(entry)
        elif record.type == STATE:
            contents.hard_state = decode_hard_state(record.data)
        elif record.type == METADATA:
            if contents.metadata is not None and contents.metadata != record.data:
                raise WalCorruptError(f"{path}: wal: conflicting metadata found")
            contents.metadata = record.data
        elif record.type == SNAPSHOT:
            contents.snapshots.append(decode_snapshot_point(record.data))
        else:
            raise WalCorruptError(f"{path}: unexpected block type {record.type}")
    except RecordDecodeError as e:
        raise WalCorruptError(f"{path}: bad record of type {record.type}: {e}") from None
