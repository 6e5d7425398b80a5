"""The durable Raft log: what is saved survives a reopen, and a crash's torn tail is dropped, not misread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from raft.core.types import (
    CompactedError,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMetadata,
    UnavailableError,
)
from storage.raftlog import CorruptLogError, DurableLog
from storage.raftlog.segments import list_segments


def ents(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(term=term, index=i, data=f"e{i}t{term}".encode()) for i in range(first, last + 1)]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "raftlog"


@pytest.fixture
def log(log_dir: Path) -> Iterator[DurableLog]:
    opened = DurableLog.open(log_dir)
    try:
        yield opened
    finally:
        opened.close()


def reopen(log: DurableLog, **kwargs: int) -> DurableLog:
    log.close()
    return DurableLog.open(log.directory, **kwargs)


def test_empty_log_starts_at_index_one(log: DurableLog) -> None:
    assert log.first_index() == 1
    assert log.last_index() == 0
    assert log.term(0) == 0
    assert log.initial_state() == (HardState(), ConfState())
    assert log.snapshot().is_empty


def test_saved_entries_and_hard_state_survive_reopen(log: DurableLog) -> None:
    log.save(HardState(term=2, vote=3, commit=4), ents(1, 5, term=2), None)
    log.save(HardState(term=2, vote=3, commit=5), [Entry(term=2, index=6, type=EntryType.CONF_CHANGE,
                                                         data=b"cc")], None)
    reopened = reopen(log)
    try:
        assert reopened.initial_state()[0] == HardState(term=2, vote=3, commit=5)
        assert reopened.entries(1, 7) == [*ents(1, 5, term=2),
                                          Entry(term=2, index=6, type=EntryType.CONF_CHANGE, data=b"cc")]
        assert reopened.term(6) == 2
    finally:
        reopened.close()


def test_each_save_is_one_fsync(log: DurableLog) -> None:
    before = log.fsync_count
    log.save(HardState(term=1, commit=100), ents(1, 100), None)
    assert log.fsync_count == before + 1


def test_conflicting_entries_replace_the_tail(log: DurableLog) -> None:
    log.save(None, ents(1, 10, term=1), None)
    log.save(None, ents(6, 7, term=2), None)
    assert log.last_index() == 7
    assert log.entries(5, 8) == [*ents(5, 5, term=1), *ents(6, 7, term=2)]
    reopened = reopen(log)
    try:
        assert reopened.last_index() == 7
        assert reopened.entries(1, 8) == [*ents(1, 5, term=1), *ents(6, 7, term=2)]
    finally:
        reopened.close()


def test_appending_past_the_tail_is_refused(log: DurableLog) -> None:
    log.save(None, ents(1, 3), None)
    with pytest.raises(ValueError, match="missing log entries"):
        log.save(None, ents(5, 6), None)


def test_torn_last_save_is_dropped_whole_and_earlier_saves_survive(log: DurableLog) -> None:
    log.save(HardState(term=1, commit=3), ents(1, 3), None)
    log.save(HardState(term=1, commit=4), ents(4, 5), None)
    log.close()
    segment = list_segments(log.directory)[-1][1]
    size = segment.stat().st_size
    with open(segment, "r+b") as f:
        f.truncate(size - 3)  # the crash tore the second save's last bytes
    reopened = DurableLog.open(log.directory)
    try:
        # A save is all or nothing: its intact entries do not survive without its hard state.
        assert reopened.last_index() == 3
        assert reopened.initial_state()[0] == HardState(term=1, commit=3)
        # The torn bytes are gone from disk, so the next write starts on a clean boundary.
        reopened.save(HardState(term=1, commit=5), ents(4, 5), None)
    finally:
        reopened.close()
    again = DurableLog.open(log.directory)
    try:
        assert again.entries(1, 6) == ents(1, 5)
        assert again.initial_state()[0] == HardState(term=1, commit=5)
    finally:
        again.close()


def test_garbled_last_record_is_detected_by_its_checksum(log: DurableLog) -> None:
    log.save(None, ents(1, 3), None)
    log.save(None, [Entry(term=1, index=4, data=b"x" * 64)], None)
    log.close()
    segment = list_segments(log.directory)[-1][1]
    raw = bytearray(segment.read_bytes())
    raw[-10] ^= 0xFF  # inside the last entry's data
    segment.write_bytes(bytes(raw))
    reopened = DurableLog.open(log.directory)
    try:
        assert reopened.last_index() == 3
        assert reopened.entries(1, 4) == ents(1, 3)
    finally:
        reopened.close()


def test_garbled_length_of_last_record_is_dropped(log: DurableLog) -> None:
    log.save(None, ents(1, 1), None)
    log.save(None, ents(2, 2), None)
    log.close()
    segment = list_segments(log.directory)[-1][1]
    record_start = segment.stat().st_size - len(b"e2t1") - 17 - 9  # 9-byte frame, 17-byte entry head
    raw = bytearray(segment.read_bytes())
    raw[record_start] = 0x7F  # a huge length
    segment.write_bytes(bytes(raw))
    reopened = DurableLog.open(log.directory)
    try:
        assert reopened.last_index() == 1
    finally:
        reopened.close()


def test_damage_before_the_last_segment_is_an_error(log_dir: Path) -> None:
    log = DurableLog.open(log_dir, segment_bytes=256)
    log.save(None, ents(1, 40), None)
    log.save(None, ents(41, 80), None)
    log.close()
    segments = list_segments(log_dir)
    assert len(segments) >= 2
    first = segments[0][1]
    raw = bytearray(first.read_bytes())
    raw[-2] ^= 0xFF
    first.write_bytes(bytes(raw))
    with pytest.raises(CorruptLogError):
        DurableLog.open(log_dir, segment_bytes=256)


def test_compaction_drops_old_entries_and_whole_segments(log_dir: Path) -> None:
    log = DurableLog.open(log_dir, segment_bytes=512)
    try:
        for first in range(1, 200, 10):
            log.save(HardState(term=3, vote=1, commit=first + 9), ents(first, first + 9, term=3), None)
        segments_before = len(list_segments(log_dir))
        log.create_snapshot(150, ConfState(voters=(1, 2, 3)), b"")
        log.compact(150)
        assert log.first_index() == 151
        assert log.term(150) == 3
        with pytest.raises(CompactedError):
            log.entries(150, 152)
        with pytest.raises(CompactedError):
            log.term(149)
        assert len(list_segments(log_dir)) < segments_before
    finally:
        log.close()
    reopened = DurableLog.open(log_dir, segment_bytes=512)
    try:
        assert reopened.first_index() == 151
        assert reopened.last_index() == 200
        assert reopened.entries(151, 201) == ents(151, 200, term=3)
        assert reopened.initial_state() == (HardState(term=3, vote=1, commit=200),
                                            ConfState(voters=(1, 2, 3)))
        assert reopened.snapshot().metadata == SnapshotMetadata(index=150, term=3,
                                                                conf_state=ConfState(voters=(1, 2, 3)))
    finally:
        reopened.close()


def test_compacting_twice_or_past_the_tail_is_refused(log: DurableLog) -> None:
    log.save(None, ents(1, 5), None)
    log.compact(3)
    with pytest.raises(CompactedError):
        log.compact(3)
    with pytest.raises(UnavailableError):
        log.compact(6)


def test_created_snapshot_keeps_its_data_across_reopen(log: DurableLog) -> None:
    log.save(HardState(term=1, commit=5), ents(1, 5), None)
    created = log.create_snapshot(4, ConfState(voters=(1,)), b"state-at-4")
    assert created.metadata.term == 1
    log.create_snapshot(5, ConfState(voters=(1,)), b"state-at-5")
    reopened = reopen(log)
    try:
        meta = SnapshotMetadata(index=5, term=1, conf_state=ConfState(voters=(1,)))
        assert reopened.snapshot() == Snapshot(meta, b"state-at-5")
        # The older snapshot's data file is gone; only the newest is kept.
        assert len(list(reopened.directory.glob("*.snapdata"))) == 1
        assert reopened.last_index() == 5  # creating a snapshot does not compact
    finally:
        reopened.close()


def test_installed_snapshot_replaces_the_whole_log(log: DurableLog) -> None:
    log.save(HardState(term=1, commit=2), ents(1, 5, term=1), None)
    snap = Snapshot(SnapshotMetadata(index=20, term=4, conf_state=ConfState(voters=(1, 2))), b"app")
    log.save(HardState(term=4, commit=20), [], snap)
    assert (log.first_index(), log.last_index(), log.term(20)) == (21, 20, 4)
    log.save(None, ents(21, 22, term=4), None)
    reopened = reopen(log)
    try:
        assert reopened.first_index() == 21
        assert reopened.entries(21, 23) == ents(21, 22, term=4)
        assert reopened.snapshot() == snap
        assert reopened.initial_state() == (HardState(term=4, commit=20), ConfState(voters=(1, 2)))
    finally:
        reopened.close()


def test_entries_honour_max_bytes_but_return_at_least_one(log: DurableLog) -> None:
    log.save(None, [Entry(term=1, index=i, data=b"x" * 100) for i in range(1, 6)], None)
    assert len(log.entries(1, 6, max_bytes=1)) == 1
    assert len(log.entries(1, 6, max_bytes=250)) == 2
    assert len(log.entries(1, 6)) == 5
    with pytest.raises(UnavailableError):
        log.entries(1, 7)


def test_torn_segment_checkpoint_is_rewritten(log_dir: Path) -> None:
    log = DurableLog.open(log_dir, segment_bytes=300)
    log.save(HardState(term=2, commit=30), ents(1, 30, term=2), None)
    log.close()
    tail = list_segments(log_dir)[-1][1]
    tail.write_bytes(b"")  # the crash hit while the new segment's checkpoint was written
    reopened = DurableLog.open(log_dir, segment_bytes=300)
    try:
        reopened.compact(30)
        reopened.save(None, ents(31, 31, term=2), None)
    finally:
        reopened.close()
    assert len(list_segments(log_dir)) == 1  # only the rewritten checkpoint holds the hard state now
    again = DurableLog.open(log_dir, segment_bytes=300)
    try:
        assert again.initial_state()[0] == HardState(term=2, commit=30)
        assert (again.first_index(), again.last_index(), again.term(30)) == (31, 31, 2)
    finally:
        again.close()
