"""MemoryStorage (the in-memory LogStore) and the ConfChange codec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raft.core import (
    CompactedError,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    HardState,
    MemoryStorage,
    Snapshot,
    SnapshotMetadata,
    SnapshotOutOfDate,
    UnavailableError,
    decode_conf_change,
    encode_conf_change,
)
from raft.core.codec import ConfChangeDecodeError


def filled(n: int, term: int = 1) -> MemoryStorage:
    storage = MemoryStorage()
    storage.save(HardState(term=term, commit=n), [Entry(term=term, index=i) for i in range(1, n + 1)], None)
    return storage


def test_save_persists_entries_and_hard_state() -> None:
    storage = filled(3)
    assert (storage.first_index(), storage.last_index()) == (1, 3)
    assert storage.initial_state()[0] == HardState(term=1, commit=3)
    assert [e.index for e in storage.entries(1, 4)] == [1, 2, 3]


def test_overlapping_entries_replace_the_tail() -> None:
    storage = filled(5)
    storage.save(None, [Entry(term=2, index=3), Entry(term=2, index=4)], None)
    assert storage.last_index() == 4
    assert [storage.term(i) for i in range(1, 5)] == [1, 1, 2, 2]


def test_entries_with_a_gap_are_refused() -> None:
    storage = filled(2)
    with pytest.raises(UnavailableError):
        storage.append([Entry(term=1, index=5)])


def test_compaction_keeps_the_term_of_the_compaction_point() -> None:
    storage = filled(5, term=2)
    storage.create_snapshot(3, ConfState(voters=(1,)), b"state")
    storage.compact(3)
    assert storage.first_index() == 4
    assert storage.term(3) == 2
    with pytest.raises(CompactedError):
        storage.entries(3, 5)
    with pytest.raises(CompactedError):
        storage.term(2)
    with pytest.raises(CompactedError):
        storage.compact(2)


def test_snapshot_records_the_membership_and_restart_sees_it() -> None:
    storage = filled(5)
    snap = storage.create_snapshot(4, ConfState(voters=(1, 2), learners=(3,)), b"state")
    conf_state = ConfState(voters=(1, 2), learners=(3,))
    assert snap.metadata == SnapshotMetadata(index=4, term=1, conf_state=conf_state)
    assert storage.initial_state()[1] == conf_state
    with pytest.raises(SnapshotOutOfDate):
        storage.create_snapshot(4, ConfState(), b"")


def test_saving_a_received_snapshot_replaces_the_whole_log() -> None:
    storage = filled(3)
    snap = Snapshot(SnapshotMetadata(index=10, term=4, conf_state=ConfState(voters=(1,))), b"s")
    storage.save(HardState(term=4, commit=10), [Entry(term=4, index=11)], snap)
    assert (storage.first_index(), storage.last_index()) == (11, 11)
    assert storage.term(10) == 4
    assert storage.snapshot() == snap


def test_entries_respect_max_bytes() -> None:
    storage = MemoryStorage()
    storage.append([Entry(term=1, index=i, data=b"x" * 100) for i in range(1, 6)])
    assert len(storage.entries(1, 6, max_bytes=0)) == 1
    assert len(storage.entries(1, 6, max_bytes=300)) == 2


@given(kind=st.sampled_from(ConfChangeType), node_id=st.integers(0, 2**64 - 1),
       cc_id=st.integers(0, 2**64 - 1), context=st.binary(max_size=64))
def test_conf_change_round_trips_through_the_codec(kind: ConfChangeType, node_id: int, cc_id: int,
                                                   context: bytes) -> None:
    cc = ConfChange(kind, node_id, context=context, id=cc_id)
    assert decode_conf_change(encode_conf_change(cc)) == cc


def test_codec_rejects_garbage() -> None:
    data = encode_conf_change(ConfChange(ConfChangeType.ADD_NODE, 7, context=b"ctx"))
    with pytest.raises(ConfChangeDecodeError):
        decode_conf_change(data[:5])
    with pytest.raises(ConfChangeDecodeError):
        decode_conf_change(b"\x09" + data[1:])
    with pytest.raises(ConfChangeDecodeError):
        decode_conf_change(data + b"extra")
