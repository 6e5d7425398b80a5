"""DurableLog: the Raft log, hard state and snapshot metadata on disk (a raft LogStore).

Writes are append-only records in segment files with one fsync per `save` (a whole
Ready batch: group commit). The newest entries are also kept in memory, up to
`resident_bytes` of their data, so the core reads the entries it sends and applies
without touching the disk; older ones keep only their term and where they lie on disk,
and are read back from their segment when asked for (a follower far behind). etcd holds
every entry since the last snapshot in memory instead; here a large backlog costs disk,
not heap. Replay on open and live writes go through the same `_apply`, so what a
reopened log holds is exactly what the running one held.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple, cast

from raft.core.limits import ENTRY_OVERHEAD, entry_size, limit_size
from raft.core.types import (
    CompactedError,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
    UnavailableError,
)
from storage.raftlog.records import (
    Checkpoint,
    CorruptLogError,
    LogStart,
    Record,
    SnapshotRecord,
    encode,
    encode_batch,
    read_entry,
    scan_into,
)
from storage.raftlog.segments import (
    SegmentInfo,
    SegmentWriter,
    fsync_dir,
    list_segments,
    segment_path,
    sync_fd,
)

DEFAULT_SEGMENT_BYTES = 64 << 20
"""Start a new segment file once the current one grows past this (etcd's WAL uses 64 MB too)."""

DEFAULT_RESIDENT_BYTES = 8 << 20
"""Entry data held in memory, newest first; enough for the entries in flight to followers and to the applier."""

_UNKNOWN_TERM = -1
"""The term of the entry before the held ones is unknown mid-replay, after a deleted segment."""

_SNAPSHOT_DATA_SUFFIX = ".snapdata"


class StoredEntry(NamedTuple):
    """An entry whose data the log no longer holds in memory: its term, and where its frame lies on disk."""

    term: int
    log_index: int
    data_len: int
    segment: int  # the segment file's sequence number
    start: int  # byte offset of the entry's frame in that file


def _held_size(entry: Entry | StoredEntry) -> int:
    """What an entry counts for in a `max_bytes` limit, held in memory or not (raft.core.limits' measure)."""
    return entry_size(entry) if isinstance(entry, Entry) else entry.data_len + ENTRY_OVERHEAD


class DurableLog:
    """A crash-safe LogStore; make one with `DurableLog.open(directory)`.

    Thread-safety: `save`/`compact`/`create_snapshot` may run in a worker thread while
    the event loop reads through the Storage methods; a lock keeps each read consistent.
    """

    def __init__(self, directory: Path, segment_bytes: int, resident_bytes: int) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.resident_bytes = resident_bytes
        self.fsync_count = 0
        self.fsync_observer: Callable[[float], None] | None = None
        """Called with each fsync's duration in seconds (etcd_disk_wal_fsync_duration_seconds)."""
        self._lock = threading.RLock()
        self._hard_state = HardState()
        self._snapshot = SnapshotRecord(metadata=SnapshotMetadata())
        self._offset = 0  # index of the entry before self._entries[0] (the compacted prefix)
        self._offset_term = 0
        self._entries: list[Entry | StoredEntry] = []
        """The held entries after the compacted prefix: StoredEntry ones first (oldest), then whole ones."""
        self._resident: deque[StoredEntry] = deque()
        """Where each whole entry in `_entries` lies on disk, oldest first, for when it is evicted."""
        self._resident_data = 0
        """Bytes of entry data the whole entries hold."""
        self._segments: list[SegmentInfo] = []
        self._writer: SegmentWriter | None = None
        self._closed = False
        self._failed: OSError | None = None

    # ---------------------------------------------------------------- opening

    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
             resident_bytes: int = DEFAULT_RESIDENT_BYTES) -> DurableLog:
        """Open (creating if needed) the log in `directory`, dropping a torn tail left by a crash."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        log = cls(path, segment_bytes, resident_bytes)
        log._replay()
        return log

    def _replay(self) -> None:
        found = list_segments(self.directory)
        for position, (seq, path) in enumerate(found):
            is_last = position == len(found) - 1
            info = SegmentInfo(seq=seq, path=path)

            def replay(record: Record, start: int, seq: int = seq, info: SegmentInfo = info) -> None:
                self._apply(record, seq, start)
                if isinstance(record, Entry):
                    info.max_entry_index = max(info.max_entry_index, record.index)

            buf = path.read_bytes()
            valid = scan_into(buf, replay)
            if valid < len(buf):
                if not is_last:
                    raise CorruptLogError(f"{path}: damaged record at byte {valid} before the last segment")
                # A crash tore the last write: it was never acknowledged, so dropping it is safe.
                with open(path, "r+b") as f:
                    f.truncate(valid)
                    sync_fd(f.fileno())
            del buf
            self._segments.append(info)
        if self._offset_term == _UNKNOWN_TERM:
            raise CorruptLogError(f"{self.directory}: entries missing between segments")
        if self._segments:
            tail = self._segments[-1]
            self._writer = SegmentWriter(tail.path)
            if self._writer.size == 0:
                # The tail lost even its checkpoint: write one so older segments stay deletable.
                self._writer.write(encode(self._checkpoint()))
                self._sync()
        else:
            self._start_segment(seq=1)
        self._remove_stale_snapshot_data()

    # ---------------------------------------------------------- Storage reads

    def initial_state(self) -> tuple[HardState, ConfState]:
        with self._lock:
            return self._hard_state, self._snapshot.metadata.conf_state

    @property
    def hard_state(self) -> HardState:
        with self._lock:
            return self._hard_state

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        with self._lock:
            if lo <= self._offset:
                raise CompactedError(f"index {lo} is compacted (log starts after {self._offset})")
            if hi > self._last_index() + 1:
                raise UnavailableError(f"index {hi - 1} is beyond the last index {self._last_index()}")
            if lo > hi:
                raise ValueError(f"invalid range [{lo}, {hi})")
            selected = self._entries[lo - self._offset - 1:hi - self._offset - 1]
            selected = limit_size(selected, max_bytes, _held_size)
            if selected and isinstance(selected[0], StoredEntry):
                # Read under the lock: compaction deletes a segment only after dropping its entries.
                with contextlib.ExitStack() as files:
                    opened: dict[int, BinaryIO] = {}
                    return [self._read_back(entry, opened, files) for entry in selected]
        return cast("list[Entry]", selected)  # whole entries only: evicted ones come first, as checked

    def _read_back(self, entry: Entry | StoredEntry, opened: dict[int, BinaryIO],
                   files: contextlib.ExitStack) -> Entry:
        """`entry` itself, or read back from its segment (each segment opened once per read)."""
        if isinstance(entry, Entry):
            return entry
        segment = opened.get(entry.segment)
        if segment is None:
            segment = files.enter_context(open(segment_path(self.directory, entry.segment), "rb"))  # noqa: SIM115 - the ExitStack closes it
            opened[entry.segment] = segment
        found = read_entry(segment, entry.start)
        if found.index != entry.log_index or found.term != entry.term:
            raise CorruptLogError(f"segment {entry.segment} holds entry {found.index}@{found.term} at byte "
                                  f"{entry.start}, not {entry.log_index}@{entry.term}")
        return found

    def term(self, index: int) -> int:
        with self._lock:
            if index < self._offset:
                raise CompactedError(f"index {index} is compacted (log starts after {self._offset})")
            if index == self._offset:
                return self._offset_term
            if index > self._last_index():
                raise UnavailableError(f"index {index} is beyond the last index {self._last_index()}")
            return self._entries[index - self._offset - 1].term

    def first_index(self) -> int:
        with self._lock:
            return self._offset + 1

    def last_index(self) -> int:
        with self._lock:
            return self._last_index()

    def first_resident_index(self) -> int:
        """The oldest entry whose data is held in memory (the ones before it are read from disk)."""
        with self._lock:
            return self._resident[0].log_index if self._resident else self._last_index() + 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            record = self._snapshot
        data = self._read_snapshot_data(record) if record.data_len else b""
        return Snapshot(metadata=record.metadata, data=data)

    def _last_index(self) -> int:
        return self._offset + len(self._entries)

    # ----------------------------------------------------------------- writes

    def save(self, hard_state: HardState | None, entries: Sequence[Entry], snapshot: Snapshot | None,
             sync: bool = True) -> None:
        """Persist a Ready's snapshot, entries and hard state: all or nothing, one fsync (when `sync`)."""
        records: list[Record] = []
        with self._lock:
            held_snapshot_index = self._snapshot.metadata.index
            expected_next = self._last_index() + 1
        has_snapshot = snapshot is not None and not snapshot.is_empty
        if snapshot is not None and has_snapshot:
            meta = snapshot.metadata
            if meta.index <= held_snapshot_index:
                raise ValueError(f"snapshot at {meta.index} is older than the held one at "
                                 f"{held_snapshot_index}")
            records.append(self._snapshot_record(meta, snapshot.data))
            # §7: a snapshot from the leader replaces the whole log (etcd-io/raft's ApplySnapshot).
            records.append(LogStart(index=meta.index, term=meta.term, discard_all=True))
            expected_next = meta.index + 1
        if entries:
            first = entries[0].index
            if first > expected_next:
                raise ValueError(f"missing log entries: appending {first} after {expected_next - 1}")
            records.extend(entries)
        if hard_state is not None:
            records.append(hard_state)
        if records:
            self._write(records, sync=sync)
        if has_snapshot:
            self._remove_stale_snapshot_data()

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record that the application's state at `index` is the newest snapshot (no compaction)."""
        with self._lock:
            if index <= self._snapshot.metadata.index:
                raise ValueError(f"snapshot at {index} is not newer than the held one at "
                                 f"{self._snapshot.metadata.index}")
            if index > self._last_index():
                raise UnavailableError(f"snapshot index {index} is beyond the last index "
                                       f"{self._last_index()}")
            term = self.term(index)
        meta = SnapshotMetadata(index=index, term=term, conf_state=conf_state)
        self._write([self._snapshot_record(meta, data)], sync=True)
        self._remove_stale_snapshot_data()
        return Snapshot(metadata=meta, data=data)

    def compact(self, index: int) -> None:
        """Drop entries up to and including `index`, then delete segments holding nothing newer."""
        with self._lock:
            if index <= self._offset:
                raise CompactedError(f"index {index} is already compacted (log starts after {self._offset})")
            if index > self._last_index():
                raise UnavailableError(f"compact index {index} is beyond the last index {self._last_index()}")
            term = self.term(index)
        self._write([LogStart(index=index, term=term)], sync=True)
        self._delete_old_segments()

    def close(self) -> None:
        """Close the tail segment; the caller must not have a `save` in flight."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._closed = True

    # --------------------------------------------------------------- internals

    def _write(self, records: list[Record], *, sync: bool) -> None:
        # Only one thread writes; the lock guards just the in-memory state the readers see,
        # so the disk write and fsync never block the core's reads.
        if self._closed or self._writer is None:
            raise ValueError("the log is closed")
        if self._failed is not None:
            raise OSError(f"an earlier write to the log failed: {self._failed}") from self._failed
        data, starts = encode_batch(records)
        try:
            written_at = self._writer.size
            self._writer.write(data)
            if sync:
                self._sync()
        except OSError as err:
            # Bytes after a half-written record would be dropped as a torn tail on reopen: write no more.
            self._failed = err
            raise
        with self._lock:
            tail = self._segments[-1]
            for record, start in zip(records, starts, strict=True):
                self._apply(record, tail.seq, written_at + start)
                if isinstance(record, Entry):
                    tail.max_entry_index = max(tail.max_entry_index, record.index)
        if self._writer.size >= self.segment_bytes:
            self._start_segment(seq=tail.seq + 1)

    def _apply(self, record: Record, segment: int, start: int) -> None:
        """Fold one record, whose frame starts at byte `start` of segment `segment`, into the in-memory
        state, the same way on replay and on write."""
        if isinstance(record, Entry):
            self._apply_entry(record, segment, start)
        elif isinstance(record, HardState):
            self._hard_state = record
        elif isinstance(record, SnapshotRecord):
            self._snapshot = record
        elif isinstance(record, LogStart):
            self._apply_log_start(record)
        else:
            self._hard_state = record.hard_state
            self._snapshot = record.snapshot
            self._apply_log_start(record.log_start)

    def _apply_entry(self, entry: Entry, segment: int, start: int) -> None:
        last = self._last_index()
        if entry.index <= self._offset:
            return  # below the compacted prefix: already covered by a snapshot
        if entry.index <= last:
            # §5.3: a conflicting entry and all that follow it are replaced.
            del self._entries[entry.index - self._offset - 1:]
            while self._resident and self._resident[-1].log_index >= entry.index:
                self._resident_data -= self._resident.pop().data_len
        elif entry.index > last + 1:
            # Only on replay, after deleted segments: a later LOG_START must cover this gap.
            self._drop_all()
            self._offset = entry.index - 1
            self._offset_term = _UNKNOWN_TERM
        self._entries.append(entry)
        self._resident.append(StoredEntry(entry.term, entry.index, len(entry.data), segment, start))
        self._resident_data += len(entry.data)
        self._evict()

    def _evict(self) -> None:
        """Let the oldest whole entries keep only where they lie on disk, until their data fits the budget
        (the newest entry always stays whole)."""
        while self._resident_data > self.resident_bytes and len(self._resident) > 1:
            stored = self._resident.popleft()
            self._entries[stored.log_index - self._offset - 1] = stored
            self._resident_data -= stored.data_len

    def _drop_all(self) -> None:
        self._entries = []
        self._resident.clear()
        self._resident_data = 0

    def _apply_log_start(self, start: LogStart) -> None:
        if start.discard_all or start.index >= self._last_index():
            self._drop_all()
        elif start.index >= self._offset:
            del self._entries[:start.index - self._offset]
            while self._resident and self._resident[0].log_index <= start.index:
                self._resident_data -= self._resident.popleft().data_len
        else:
            return
        self._offset = start.index
        self._offset_term = start.term

    def _checkpoint(self) -> Checkpoint:
        return Checkpoint(hard_state=self._hard_state, snapshot=self._snapshot,
                          log_start=LogStart(index=self._offset, term=self._offset_term))

    def _start_segment(self, seq: int) -> None:
        """Begin a new tail segment whose first record carries all non-entry state."""
        path = segment_path(self.directory, seq)
        with self._lock:
            checkpoint = self._checkpoint()
        try:
            if self._writer is not None:
                self._writer.close()
            self._writer = SegmentWriter(path)
            self._writer.write(encode(checkpoint))
            self._sync()
            fsync_dir(self.directory)
        except OSError as err:
            self._failed = err
            raise
        with self._lock:
            self._segments.append(SegmentInfo(seq=seq, path=path))

    def _delete_old_segments(self) -> None:
        """Delete the oldest segments whose entries all lie in the compacted prefix."""
        with self._lock:
            doomed = []
            while len(self._segments) > 1 and self._segments[0].max_entry_index <= self._offset:
                doomed.append(self._segments.pop(0))
        for info in doomed:
            info.path.unlink(missing_ok=True)
        if doomed:
            fsync_dir(self.directory)

    def _sync(self) -> None:
        assert self._writer is not None
        started = time.perf_counter()
        self._writer.sync()
        self.fsync_count += 1
        if self.fsync_observer is not None:
            self.fsync_observer(time.perf_counter() - started)

    # ------------------------------------------------------- snapshot data files

    def _snapshot_record(self, meta: SnapshotMetadata, data: bytes) -> SnapshotRecord:
        """Write non-empty snapshot data to its own file first; the record then points at it."""
        if data:
            path = self._snapshot_data_path(meta.index)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                sync_fd(f.fileno())
            os.replace(tmp, path)
            fsync_dir(self.directory)
        return SnapshotRecord(metadata=meta, data_crc=zlib.crc32(data), data_len=len(data))

    def _snapshot_data_path(self, index: int) -> Path:
        return self.directory / f"{index:016x}{_SNAPSHOT_DATA_SUFFIX}"

    def _read_snapshot_data(self, record: SnapshotRecord) -> bytes:
        path = self._snapshot_data_path(record.metadata.index)
        data = path.read_bytes()
        if len(data) != record.data_len or zlib.crc32(data) != record.data_crc:
            raise CorruptLogError(f"{path}: snapshot data does not match its checksum")
        return data

    def _remove_stale_snapshot_data(self) -> None:
        with self._lock:
            held = self._snapshot
        keep = self._snapshot_data_path(held.metadata.index).name if held.data_len else ""
        for child in self.directory.iterdir():
            is_data = child.name.endswith(_SNAPSHOT_DATA_SUFFIX) or child.suffix == ".tmp"
            if is_data and child.name != keep:
                child.unlink(missing_ok=True)
