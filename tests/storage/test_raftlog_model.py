"""The durable log behaves like MemoryStorage (the model) under any mix of writes, compactions and reopens."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from raft.core.memory_storage import MemoryStorage
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
from storage.raftlog import DurableLog
from storage.raftlog.log import DEFAULT_RESIDENT_BYTES

SEGMENT_BYTES = 200  # tiny, so segments roll over and get deleted often


@dataclass(frozen=True)
class Append:
    back: int  # how far before the tail the new entries start (0: right after it)
    count: int
    term_bump: int
    with_hard_state: bool


@dataclass(frozen=True)
class Compact:
    above_first: int


@dataclass(frozen=True)
class CreateSnapshot:
    above_first: int
    data: bytes


@dataclass(frozen=True)
class InstallSnapshot:
    past_last: int
    term_bump: int


@dataclass(frozen=True)
class Reopen:
    pass


Op = Append | Compact | CreateSnapshot | InstallSnapshot | Reopen

ops_strategy = st.lists(st.one_of(
    st.builds(Append, st.integers(0, 6), st.integers(0, 4), st.integers(1, 5), st.booleans()),
    st.builds(Compact, st.integers(0, 8)),
    st.builds(CreateSnapshot, st.integers(0, 8), st.binary(max_size=8)),
    st.builds(InstallSnapshot, st.integers(1, 6), st.integers(1, 5)),
    st.just(Reopen()),
), max_size=25)


def assert_same(log: DurableLog, model: MemoryStorage) -> None:
    assert log.first_index() == model.first_index()
    assert log.last_index() == model.last_index()
    assert log.initial_state() == model.initial_state()
    assert log.snapshot() == model.snapshot()
    first, last = model.first_index(), model.last_index()
    assert log.entries(first, last + 1) == model.entries(first, last + 1)
    for index in range(first - 1, last + 1):
        assert log.term(index) == model.term(index)
    for lo in range(first, last + 1):  # ranges starting among the entries read back from disk too
        assert log.entries(lo, last + 1, max_bytes=40) == model.entries(lo, last + 1, max_bytes=40)


def outcome(call: Callable[..., object], *args: object) -> str:
    """Run `call(*args)` and say how it ended, so refusals can be compared between the two stores."""
    try:
        call(*args)
    except CompactedError:
        return "compacted"
    except UnavailableError:
        return "unavailable"
    except (ValueError, RaftError):
        return "refused"
    return "ok"


# How much entry data the log may hold in memory: none past the newest entry, a few entries' worth (the
# older ones are read back from their segments), and the default (everything here stays in memory).
resident_strategy = st.sampled_from([0, 8, 20, DEFAULT_RESIDENT_BYTES])


@settings(max_examples=150, deadline=None)
@given(ops=ops_strategy, resident=resident_strategy)
def test_durable_log_matches_memory_storage(ops: list[Op], resident: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        log = DurableLog.open(directory, segment_bytes=SEGMENT_BYTES, resident_bytes=resident)
        model = MemoryStorage()
        commit = 0
        try:
            for step in ops:
                if isinstance(step, Append):
                    start = max(model.first_index(), model.last_index() + 1 - step.back)
                    term = model.term(start - 1) + step.term_bump
                    new = [Entry(term=term, index=i, data=b"d%d" % i)
                           for i in range(start, start + step.count)]
                    commit += 1
                    hs = HardState(term=term, vote=1, commit=commit) if step.with_hard_state else None
                    log.save(hs, new, None)
                    model.save(hs, new, None)
                elif isinstance(step, Compact):
                    index = model.first_index() - 1 + step.above_first
                    assert outcome(log.compact, index) == outcome(model.compact, index)
                elif isinstance(step, CreateSnapshot):
                    index = model.first_index() - 1 + step.above_first
                    cs = ConfState(voters=(1, index % 3 + 2))
                    assert (outcome(log.create_snapshot, index, cs, step.data)
                            == outcome(model.create_snapshot, index, cs, step.data))
                elif isinstance(step, InstallSnapshot):
                    index = model.last_index() + step.past_last
                    term = model.term(model.last_index()) + step.term_bump
                    meta = SnapshotMetadata(index=index, term=term, conf_state=ConfState(voters=(1, 2)))
                    snap = Snapshot(meta, b"leader-state")
                    hs = HardState(term=term, commit=index)
                    assert outcome(log.save, hs, [], snap) == outcome(model.save, hs, [], snap)
                else:
                    log.close()
                    log = DurableLog.open(directory, segment_bytes=SEGMENT_BYTES, resident_bytes=resident)
                assert_same(log, model)
            log.close()
            log = DurableLog.open(directory, segment_bytes=SEGMENT_BYTES, resident_bytes=resident)
            assert_same(log, model)
        finally:
            log.close()


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.integers(1, 4), min_size=1, max_size=6), cut=st.floats(0, 1))
def test_a_crash_anywhere_leaves_exactly_the_saves_that_completed(batches: list[int], cut: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        log = DurableLog.open(directory)
        segment = next(directory.glob("*.wal"))
        ends = [segment.stat().st_size]
        next_index = 1
        for count in batches:
            new = [Entry(term=1, index=i, data=b"x%d" % i) for i in range(next_index, next_index + count)]
            log.save(HardState(term=1, commit=next_index), new, None)
            next_index += count
            ends.append(segment.stat().st_size)
        log.close()
        cut_at = int(cut * ends[-1])
        with open(segment, "r+b") as f:
            f.truncate(cut_at)
        completed = max(i for i, end in enumerate(ends) if end <= cut_at) if cut_at >= ends[0] else 0
        reopened = DurableLog.open(directory)
        try:
            expected_last = sum(batches[:completed])
            assert reopened.last_index() == expected_last
            expected_commit = expected_last - batches[completed - 1] + 1 if completed else 0
            assert reopened.initial_state()[0].commit == expected_commit
        finally:
            reopened.close()
