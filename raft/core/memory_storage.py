"""MemoryStorage: a LogStore held in memory, for tests, the simulator and teaching.

Like etcd-io/raft's MemoryStorage, `_entries[0]` is a placeholder standing for the
snapshot point, so its index and term answer `term(first_index - 1)`.
"""

from __future__ import annotations

from raft.core.limits import limit_size
from raft.core.types import (
    CompactedError,
    ConfState,
    Entry,
    HardState,
    RaftError,
    Snapshot,
    SnapshotMetadata,
    UnavailableError,
)


class SnapshotOutOfDate(RaftError):
    """The snapshot given is not newer than the one already held."""


class MemoryStorage:
    """An in-memory LogStore (see raft/core/storage.py); every instance is independent."""

    __slots__ = ("_hard_state", "_snapshot", "_entries", "closed")

    def __init__(self) -> None:
        self._hard_state = HardState()
        self._snapshot = Snapshot()
        self._entries: list[Entry] = [Entry(term=0, index=0)]
        self.closed = False

    # -- Storage ----------------------------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        offset = self._entries[0].index
        if lo <= offset:
            raise CompactedError(f"index {lo} is compacted (first index {offset + 1})")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"entries [{lo}, {hi}) beyond the last index {self.last_index()}")
        return limit_size(self._entries[lo - offset: hi - offset], max_bytes)

    def term(self, index: int) -> int:
        offset = self._entries[0].index
        if index < offset:
            raise CompactedError(f"index {index} is compacted (first index {offset + 1})")
        if index - offset >= len(self._entries):
            raise UnavailableError(f"index {index} beyond the last index {self.last_index()}")
        return self._entries[index - offset].term

    def first_index(self) -> int:
        return self._entries[0].index + 1

    def last_index(self) -> int:
        return self._entries[0].index + len(self._entries) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- LogStore ---------------------------------------------------------------------------------------

    def save(self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None,
             sync: bool = True) -> None:
        """Persist one Ready: the snapshot first (it resets the log), then entries, then the hard state."""
        if snapshot is not None and not snapshot.is_empty:
            self.apply_snapshot(snapshot)
        if entries:
            self.append(entries)
        if hard_state is not None:
            self.set_hard_state(hard_state)

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record the application's state at `index` (which must be in the log) as the snapshot."""
        if index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDate(f"snapshot at {index} is not newer than {self._snapshot.metadata.index}")
        if index > self.last_index():
            raise UnavailableError(f"snapshot index {index} beyond the last index {self.last_index()}")
        term = self.term(index)
        self._snapshot = Snapshot(SnapshotMetadata(index=index, term=term, conf_state=conf_state), data)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Drop the entries up to and including `index`; the caller keeps a snapshot covering them."""
        offset = self._entries[0].index
        if index <= offset:
            raise CompactedError(f"index {index} is already compacted (first index {offset + 1})")
        if index > self.last_index():
            raise UnavailableError(f"compact index {index} beyond the last index {self.last_index()}")
        placeholder = Entry(term=self._entries[index - offset].term, index=index)
        self._entries = [placeholder, *self._entries[index - offset + 1:]]

    def close(self) -> None:
        self.closed = True

    # -- lower-level writes (etcd's MemoryStorage names) ------------------------------------------------

    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log by `snapshot` (a follower installing the leader's snapshot, §7)."""
        if snapshot.metadata.index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDate(
                f"snapshot at {snapshot.metadata.index} is not newer than {self._snapshot.metadata.index}")
        self._snapshot = snapshot
        self._entries = [Entry(term=snapshot.metadata.term, index=snapshot.metadata.index)]

    def append(self, entries: list[Entry]) -> None:
        """Append `entries`; those overlapping the held tail replace it from their first index on."""
        if not entries:
            return
        first = self.first_index()
        last = entries[-1].index
        if last < first:
            return  # all already compacted
        if entries[0].index < first:
            entries = entries[first - entries[0].index:]
        offset = self._entries[0].index
        start = entries[0].index - offset
        if start > len(self._entries):
            raise UnavailableError(
                f"missing log entries: last index {self.last_index()}, appending at {entries[0].index}")
        del self._entries[start:]
        self._entries.extend(entries)
