"""The Storage protocol: what the core reads of the stable log, and what the driver writes to it.

The core only *reads* storage (`Storage`). The driver persists each Ready through
`LogStore`, which `storage/raftlog` implements durably and `MemoryStorage`
(in raft/core/memory_storage.py) implements for tests and the simulator.
"""

from __future__ import annotations

from typing import Protocol

from raft.core.types import ConfState, Entry, HardState, Snapshot


class Storage(Protocol):
    """Read access to the stable part of the log (etcd-io/raft's Storage interface)."""

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The hard state and membership saved when the member last stopped."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi); at least one if any, then at most `max_bytes` of data.

        Raises CompactedError when lo <= the snapshot index, UnavailableError when hi > last_index + 1.
        """
        ...

    def term(self, index: int) -> int:
        """The term of the entry at `index` (the snapshot index's term is known too)."""
        ...

    def first_index(self) -> int:
        """The index of the first entry still held (snapshot index + 1)."""
        ...

    def last_index(self) -> int:
        """The index of the last entry held (the snapshot index when the log is empty)."""
        ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot; may raise SnapshotTemporarilyUnavailable."""
        ...


class LogStore(Storage, Protocol):
    """Storage the driver can write: one `save` per Ready, then compaction after snapshots."""

    def save(self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None,
             sync: bool = True) -> None:
        """Persist a Ready's durable parts in one batch (one fsync when sync is true).

        A snapshot replaces everything up to its index; entries that conflict with
        (overlap) the held tail replace it from their first index on.
        """
        ...

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record the application's state at `index` as the current snapshot."""
        ...

    def compact(self, index: int) -> None:
        """Drop entries up to and including `index` (which must be <= the snapshot index... or applied)."""
        ...

    def close(self) -> None:
        ...
