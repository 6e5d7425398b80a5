"""The Raft log as the core sees it: the stable prefix in Storage plus an unstable tail in memory.

New entries (and a snapshot received from the leader) live in `Unstable` until the
application has persisted them and called `advance`; `RaftLog` stitches both parts
together and tracks the commit index (§5.3) and what the application applied.
"""

from __future__ import annotations

from raft.core.limits import limit_size
from raft.core.storage import Storage
from raft.core.types import CompactedError, Entry, RaftError, Snapshot, UnavailableError


class Unstable:
    """Entries (and maybe a snapshot) not yet persisted; `entries[i]` has index `offset + i`.

    `offset_in_progress` marks what was already handed out in a Ready but not yet
    acknowledged by `advance`, so a second Ready does not hand it out again.
    """

    __slots__ = ("snapshot", "entries", "offset", "offset_in_progress", "snapshot_in_progress")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset
        self.offset_in_progress = offset
        self.snapshot_in_progress = False

    def maybe_first_index(self) -> int | None:
        if self.snapshot is not None:
            return self.snapshot.metadata.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, index: int) -> int | None:
        if index < self.offset:
            if self.snapshot is not None and self.snapshot.metadata.index == index:
                return self.snapshot.metadata.term
            return None
        last = self.maybe_last_index()
        if last is None or index > last:
            return None
        return self.entries[index - self.offset].term

    def next_entries(self) -> list[Entry]:
        """Entries not yet handed out for persisting."""
        start = self.offset_in_progress - self.offset
        return self.entries[start:] if start < len(self.entries) else []

    def next_snapshot(self) -> Snapshot | None:
        if self.snapshot is None or self.snapshot_in_progress:
            return None
        return self.snapshot

    def accept_in_progress(self) -> None:
        """Everything returned by next_entries/next_snapshot is now being persisted."""
        if self.entries:
            self.offset_in_progress = self.offset + len(self.entries)
        if self.snapshot is not None:
            self.snapshot_in_progress = True

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to `index` are persisted, unless they were replaced meanwhile (term differs)."""
        if index < self.offset or self.maybe_term(index) != term:
            return
        del self.entries[: index + 1 - self.offset]
        self.offset = index + 1
        self.offset_in_progress = max(self.offset_in_progress, self.offset)

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.metadata.index == index:
            self.snapshot = None
            self.snapshot_in_progress = False

    def restore(self, snapshot: Snapshot) -> None:
        self.offset = snapshot.metadata.index + 1
        self.offset_in_progress = self.offset
        self.entries = []
        self.snapshot = snapshot
        self.snapshot_in_progress = False

    def truncate_and_append(self, entries: list[Entry]) -> None:
        """Append `entries`, first dropping any unstable entries they replace (§5.3 conflict rule)."""
        first = entries[0].index
        end = self.offset + len(self.entries)
        if first == end:
            self.entries.extend(entries)
        elif first <= self.offset:
            # Replaces the whole unstable tail (and, once saved, the stable entries from `first` on).
            self.offset = first
            self.offset_in_progress = first
            self.entries = list(entries)
        else:
            del self.entries[first - self.offset:]
            self.entries.extend(entries)
            self.offset_in_progress = min(self.offset_in_progress, first)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.offset: hi - self.offset]


class RaftLog:
    """Stable Storage + Unstable tail, with `committed` (§5.3) and `applied` cursors.

    `applying` is the last committed index already handed to the application in a
    Ready; `applied` is the last one it confirmed through `advance`.
    """

    __slots__ = ("storage", "unstable", "committed", "applying", "applied")

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        # Everything up to the snapshot is committed and applied by definition.
        self.committed = first - 1
        self.applying = first - 1
        self.applied = first - 1

    def __repr__(self) -> str:
        return (f"RaftLog(committed={self.committed}, applied={self.applied}, "
                f"unstable.offset={self.unstable.offset}, unstable.len={len(self.unstable.entries)})")

    # -- positions --------------------------------------------------------------------------------------

    def first_index(self) -> int:
        first = self.unstable.maybe_first_index()
        return first if first is not None else self.storage.first_index()

    def last_index(self) -> int:
        last = self.unstable.maybe_last_index()
        return last if last is not None else self.storage.last_index()

    def term(self, index: int) -> int:
        """The term of the entry at `index`; raises CompactedError/UnavailableError outside the log."""
        t = self.unstable.maybe_term(index)
        if t is not None:
            return t
        dummy = self.first_index() - 1
        if index < dummy:
            raise CompactedError(f"index {index} is compacted (first index {dummy + 1})")
        if index > self.last_index():
            raise UnavailableError(f"index {index} is beyond the last index {self.last_index()}")
        return self.storage.term(index)

    def zero_term_on_error(self, index: int) -> int:
        """The term at `index`, or 0 when the log does not hold it (as for index 0)."""
        try:
            return self.term(index)
        except (CompactedError, UnavailableError):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        return self.zero_term_on_error(index) == term

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """§5.4.1 election restriction: is a log ending at (term, last_index) as up to date as ours?"""
        our_term = self.last_term()
        return term > our_term or (term == our_term and last_index >= self.last_index())

    # -- reading entries --------------------------------------------------------------------------------

    def entries(self, lo: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries from `lo` to the end, at most `max_bytes` (at least one)."""
        last = self.last_index()
        if lo > last:
            return []
        return self.slice(lo, last + 1, max_bytes)

    def slice(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi) from storage and/or the unstable tail."""
        if lo > hi:
            raise RaftError(f"invalid slice {lo} > {hi}")
        first = self.first_index()
        if lo < first:
            raise CompactedError(f"index {lo} is compacted (first index {first})")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"slice [{lo}, {hi}) is beyond the last index {self.last_index()}")
        if lo == hi:
            return []
        offset = self.unstable.offset
        result: list[Entry] = []
        if lo < offset:
            stored = self.storage.entries(lo, min(hi, offset), max_bytes)
            # Storage stopped early because of max_bytes: the unstable part would not fit either.
            if len(stored) < min(hi, offset) - lo:
                return stored
            result = stored
        if hi > offset:
            tail = self.unstable.slice(max(lo, offset), hi)
            result = tail if not result else result + tail
        return limit_size(result, max_bytes)

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def has_pending_snapshot(self) -> bool:
        """A snapshot that is not yet persisted and applied blocks handing out committed entries."""
        return self.unstable.snapshot is not None

    # -- committed entries to apply ---------------------------------------------------------------------

    def has_next_committed_entries(self) -> bool:
        if self.has_pending_snapshot():
            return False
        return self.committed > max(self.applying, self.first_index() - 1)

    def next_committed_entries(self, max_bytes: int | None) -> list[Entry]:
        """Committed entries not yet handed to the application (they may be in the same Ready's entries)."""
        if self.has_pending_snapshot():
            return []
        lo = max(self.applying + 1, self.first_index())
        hi = self.committed + 1
        if lo >= hi:
            return []
        return self.slice(lo, hi, max_bytes)

    def accept_applying(self, index: int) -> None:
        self.applying = max(self.applying, index)

    def applied_to(self, index: int) -> None:
        if index == 0 or index <= self.applied:
            return
        if index > self.committed:
            raise RaftError(f"applied index {index} is beyond committed {self.committed}")
        self.applied = index
        self.applying = max(self.applying, index)

    # -- changing the log -------------------------------------------------------------------------------

    def append(self, entries: list[Entry]) -> int:
        """Append entries (the leader's own, or after a conflict check); returns the new last index."""
        if not entries:
            return self.last_index()
        after = entries[0].index - 1
        if after < self.committed:
            raise RaftError(f"appending after {after} would overwrite committed {self.committed}")
        self.unstable.truncate_and_append(entries)
        return self.last_index()

    def find_conflict(self, entries: tuple[Entry, ...]) -> int:
        """Index of the first entry whose term differs from ours (or that we lack); 0 if none."""
        for e in entries:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= `index` whose term is <= `term` (fast backtracking, as etcd does).

        Every entry above the result has a term greater than `term`, so it cannot match a
        log whose entry at `index` has term `term`; the probe may skip straight past them.
        """
        while index > 0:
            try:
                our_term = self.term(index)
            except (CompactedError, UnavailableError):
                return index  # below what we hold: the leader must go there (or send a snapshot)
            if our_term <= term:
                return index
            index -= 1
        return index

    def maybe_append(self, index: int, log_term: int, committed: int,
                     entries: tuple[Entry, ...]) -> int | None:
        """§5.3 AppendEntries: None if our entry at `index` lacks `log_term`, else the new last index."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            if conflict <= self.committed:
                raise RaftError(f"entry {conflict} conflicts with committed index {self.committed}")
            self.append(list(entries[conflict - index - 1:]))
        self.commit_to(min(committed, last_new))
        return last_new

    def commit_to(self, index: int) -> None:
        """Raise the commit index; never lowers it (commit is monotonic)."""
        if index <= self.committed:
            return
        if index > self.last_index():
            raise RaftError(f"commit index {index} is beyond the last index {self.last_index()}: "
                            "the log was truncated, lost or corrupted")
        self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """§5.4.2: only an entry of the leader's current term is committed by counting replicas."""
        if index > self.committed and self.zero_term_on_error(index) == term:
            self.commit_to(index)
            return True
        return False

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the log by `snapshot` (§7); it becomes the commit point."""
        self.committed = snapshot.metadata.index
        self.unstable.restore(snapshot)

    def stable_to(self, index: int, term: int) -> None:
        self.unstable.stable_to(index, term)

    def stable_snap_to(self, index: int) -> None:
        self.unstable.stable_snap_to(index)
