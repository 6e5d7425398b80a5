"""RaftLog: stable storage plus unstable tail, conflicts, commit and apply cursors."""

from __future__ import annotations

import pytest

from raft.core.log import RaftLog
from raft.core.memory_storage import MemoryStorage
from raft.core.types import (
    CompactedError,
    ConfState,
    Entry,
    RaftError,
    Snapshot,
    SnapshotMetadata,
    UnavailableError,
)


def entries(*terms: int, start: int = 1, data: bytes = b"") -> list[Entry]:
    return [Entry(term=t, index=start + i, data=data) for i, t in enumerate(terms)]


def stored_log(*terms: int) -> RaftLog:
    storage = MemoryStorage()
    storage.append(entries(*terms))
    return RaftLog(storage)


def test_new_log_starts_after_the_storage() -> None:
    log = stored_log(1, 1, 2)
    assert (log.first_index(), log.last_index(), log.last_term()) == (1, 3, 2)
    assert log.committed == 0 and log.applied == 0


def test_entries_come_from_storage_and_the_unstable_tail_together() -> None:
    log = stored_log(1, 1)
    log.append(entries(2, 2, start=3))
    assert [e.index for e in log.slice(1, 5)] == [1, 2, 3, 4]
    assert [e.index for e in log.entries(2)] == [2, 3, 4]
    assert log.term(4) == 2 and log.term(2) == 1


def test_slice_respects_the_byte_limit_but_returns_at_least_one_entry() -> None:
    log = stored_log()
    log.append(entries(1, 1, 1, data=b"x" * 100))
    assert len(log.slice(1, 4, max_bytes=1)) == 1
    assert len(log.slice(1, 4, max_bytes=250)) == 2


def test_term_outside_the_log_raises() -> None:
    log = stored_log(1, 1)
    assert log.term(0) == 0
    with pytest.raises(UnavailableError):
        log.term(3)
    assert log.zero_term_on_error(3) == 0


def test_find_conflict_returns_the_first_entry_that_differs() -> None:
    log = stored_log(1, 1, 2, 2)
    assert log.find_conflict(tuple(entries(1, 1, 2, start=1))) == 0
    assert log.find_conflict(tuple(entries(2, 3, start=3))) == 4
    # An entry beyond our log is new, which counts as a conflict at its index.
    assert log.find_conflict(tuple(entries(2, 2, start=4))) == 5


def test_maybe_append_truncates_a_conflicting_tail() -> None:
    log = stored_log(1, 1, 2, 2)
    last = log.maybe_append(2, 1, committed=0, entries=tuple(entries(3, 3, start=3)))
    assert last == 4
    assert [e.term for e in log.slice(1, 5)] == [1, 1, 3, 3]


def test_maybe_append_rejects_when_the_previous_entry_does_not_match() -> None:
    log = stored_log(1, 1)
    assert log.maybe_append(2, 2, committed=0, entries=()) is None
    assert log.maybe_append(5, 1, committed=0, entries=()) is None


def test_maybe_append_commits_at_most_the_last_new_entry() -> None:
    log = stored_log(1, 1, 1, 1)
    assert log.maybe_append(1, 1, committed=10, entries=tuple(entries(1, start=2))) == 2
    assert log.committed == 2


def test_a_conflict_with_a_committed_entry_is_an_error() -> None:
    log = stored_log(1, 1, 2)
    log.commit_to(3)
    with pytest.raises(RaftError):
        log.maybe_append(1, 1, committed=3, entries=tuple(entries(3, 3, start=2)))


def test_find_conflict_by_term_skips_entries_of_newer_terms() -> None:
    log = stored_log(1, 2, 2, 4, 4, 4)
    assert log.find_conflict_by_term(6, 3) == 3
    assert log.find_conflict_by_term(6, 4) == 6
    assert log.find_conflict_by_term(6, 1) == 1
    assert log.find_conflict_by_term(6, 0) == 0


def test_only_entries_of_the_current_term_commit_by_counting() -> None:
    # §5.4.2: a leader at term 3 cannot commit index 2 (term 2) even if a majority has it.
    log = stored_log(1, 2, 3)
    assert not log.maybe_commit(2, term=3)
    assert log.committed == 0
    assert log.maybe_commit(3, term=3)
    assert log.committed == 3


def test_commit_never_moves_backwards_or_past_the_log() -> None:
    log = stored_log(1, 1, 1)
    log.commit_to(3)
    log.commit_to(1)
    assert log.committed == 3
    with pytest.raises(RaftError):
        log.commit_to(4)


def test_is_up_to_date_compares_last_term_then_length() -> None:
    log = stored_log(1, 2, 2)
    assert log.is_up_to_date(last_index=1, term=3)
    assert log.is_up_to_date(last_index=3, term=2)
    assert not log.is_up_to_date(last_index=2, term=2)
    assert not log.is_up_to_date(last_index=9, term=1)


def test_committed_entries_come_out_once_and_in_order() -> None:
    log = stored_log(1, 1, 1)
    log.commit_to(2)
    assert [e.index for e in log.next_committed_entries(None)] == [1, 2]
    log.accept_applying(2)
    assert log.next_committed_entries(None) == []
    log.commit_to(3)
    assert [e.index for e in log.next_committed_entries(None)] == [3]
    log.applied_to(3)
    assert not log.has_next_committed_entries()


def test_stable_to_ignores_entries_replaced_since_they_were_handed_out() -> None:
    log = stored_log()
    log.append(entries(1, 1))
    log.unstable.accept_in_progress()
    log.append(entries(2, start=2))  # replaces 1/2 while it is being persisted
    log.stable_to(2, 1)
    assert log.unstable.offset == 1
    assert [e.term for e in log.unstable.next_entries()] == [2]


def test_restore_replaces_the_log_with_a_snapshot() -> None:
    log = stored_log(1, 1)
    snap = Snapshot(SnapshotMetadata(index=10, term=3, conf_state=ConfState(voters=(1,))))
    log.restore(snap)
    assert (log.first_index(), log.last_index(), log.committed) == (11, 10, 10)
    assert log.term(10) == 3
    assert log.has_pending_snapshot()
    with pytest.raises(CompactedError):
        log.slice(5, 11)
