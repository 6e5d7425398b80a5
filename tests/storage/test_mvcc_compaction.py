"""Physical compaction in the background (storage/mvcc/compaction.py): the batch that applies a compaction
only schedules it; the worker deletes the dropped revisions in small LMDB transactions, and a store closed
part-way finishes the job when it opens again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd import apply_kv
from storage.mvcc import CompactedError, MvccStore
from storage.mvcc import backend as be
from storage.mvcc.revision import bytes_to_rev

KEYS = 5
REWRITES = 6


def fill(store: MvccStore) -> None:
    """KEYS keys written REWRITES times each, then one of them deleted."""
    for round_ in range(REWRITES):
        with store.write(store.consistent_index + 1) as b:
            for k in range(KEYS):
                b.put(f"k{k}".encode(), f"v{round_}".encode())
    with store.write(store.consistent_index + 1) as b:
        b.delete_range(b"k0", None)


def schedule_compaction(store: MvccStore, revision: int) -> None:
    with store.write(store.consistent_index + 1) as b:
        b.compact(revision)


def compacted_reference(path: Path) -> tuple[int, list[tuple[bytes, bytes]], tuple[int, int, int]]:
    """A store filled and compacted at its last revision without interruption: (revision, its stored
    revisions, its HashKV), what every interrupted compaction must end up with."""
    reference = MvccStore(path)
    try:
        fill(reference)
        revision = reference.current_revision
        schedule_compaction(reference, revision)
        assert reference.wait_compacted(revision, timeout=30)
        return revision, reference.contents().revisions, reference.hash_kv(0)
    finally:
        reference.close()


def meta_revision(store: MvccStore, name: bytes) -> int:
    raw = store.contents().meta.get(name)
    return 0 if raw is None else bytes_to_rev(raw).main


def stored(store: MvccStore) -> int:
    return len(store.contents().revisions)


def test_the_worker_deletes_in_batches_while_reads_and_writes_go_on(tmp_path: Path) -> None:
    store = MvccStore(tmp_path / "db", compaction_batch_limit=1, compaction_pause_s=0.05)
    try:
        fill(store)
        total = stored(store)
        revision = store.current_revision
        schedule_compaction(store, revision)
        # Applied: reads below the compaction fail at once, reads at it see every live key.
        assert store.compact_revision == revision
        with pytest.raises(CompactedError):
            apply_kv.read_range(store, rpc_pb2.RangeRequest(key=b"k1", revision=revision - 1))
        live = apply_kv.read_range(store, rpc_pb2.RangeRequest(key=b"k", range_end=b"l")).kvs
        assert [kv.key for kv in live] == [f"k{k}".encode() for k in range(1, KEYS)]
        # One revision per 50 ms: the deletions are still going on, and writes get in between them.
        assert meta_revision(store, be.FINISHED_COMPACT) < revision
        with store.write(store.consistent_index + 1) as b:
            b.put(b"k9", b"during")
        assert store.wait_compacted(revision, timeout=30)
        # Left: each live key's latest revision (k0's deletion went with its history), and the new put.
        assert stored(store) == (KEYS - 1) + 1
        assert total == KEYS * REWRITES + 1
        assert meta_revision(store, be.FINISHED_COMPACT) == revision
        assert meta_revision(store, be.SCHEDULED_COMPACT) == revision
    finally:
        store.close()


def test_a_store_closed_part_way_finishes_the_compaction_when_it_opens(tmp_path: Path) -> None:
    revision, expected, expected_hash = compacted_reference(tmp_path / "reference")

    store = MvccStore(tmp_path / "db", compaction_batch_limit=1, compaction_pause_s=0.2)
    fill(store)
    before = stored(store)
    schedule_compaction(store, revision)
    deadline = time.monotonic() + 30
    while stored(store) == before:  # the first batch of one deletion
        assert time.monotonic() < deadline
        time.sleep(0.01)
    store.close()

    reopened = MvccStore(tmp_path / "db")
    try:
        assert reopened.compact_revision == revision
        middle = reopened.contents()
        assert len(expected) < len(middle.revisions) < before  # the close left work for the next open
        assert reopened.wait_compacted(revision, timeout=30)
        assert reopened.contents().revisions == expected
        assert reopened.hash_kv(0) == expected_hash
    finally:
        reopened.close()


def test_waiting_for_a_compaction_that_was_never_scheduled_says_so(tmp_path: Path) -> None:
    store = MvccStore(tmp_path / "db")
    try:
        fill(store)
        assert not store.wait_compacted(store.current_revision, timeout=0.1)
        schedule_compaction(store, 3)
        assert store.wait_compacted(3, timeout=30)
        assert store.wait_compacted(2, timeout=0)  # an earlier one is done too
    finally:
        store.close()


def test_a_snapshot_installed_during_a_compaction_keeps_all_of_its_history(tmp_path: Path) -> None:
    source = MvccStore(tmp_path / "source")
    try:
        fill(source)  # the same revisions, never compacted
        snapshot = source.snapshot_bytes()
        history = source.contents().revisions
    finally:
        source.close()
    store = MvccStore(tmp_path / "db", compaction_batch_limit=1, compaction_pause_s=0.05)
    try:
        fill(store)
        schedule_compaction(store, store.current_revision)
        store.replace_from_snapshot(snapshot)
        time.sleep(0.3)  # several of the old compaction's batches, had it gone on with the new data
        assert store.compact_revision == 0
        assert store.contents().revisions == history
    finally:
        store.close()


def test_a_snapshot_taken_during_a_compaction_finishes_it_where_it_is_installed(tmp_path: Path) -> None:
    revision, expected, _ = compacted_reference(tmp_path / "reference")
    source = MvccStore(tmp_path / "source", compaction_batch_limit=1, compaction_pause_s=0.5)
    try:
        fill(source)
        schedule_compaction(source, revision)
        snapshot = source.snapshot_bytes()  # scheduled, not (or hardly) deleted yet
    finally:
        source.close()
    store = MvccStore(tmp_path / "db")
    try:
        store.replace_from_snapshot(snapshot)
        assert store.compact_revision == revision
        assert store.wait_compacted(revision, timeout=30)
        assert store.contents().revisions == expected
    finally:
        store.close()
