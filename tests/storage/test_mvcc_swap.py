"""Defragment and snapshot install swap the LMDB environment while other threads use the store.

The server defragments in a worker thread while its event loop keeps applying write batches and another
worker fsyncs the store: the swap must wait for an open batch (not fail, not deadlock), hold new batches
back until it is done, and never close the environment under an fsync or a copy. A crash in the middle
leaves a stray copy, which the next open removes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from etcdpb.etcdserverpb import rpc_pb2
from pyetcd import apply_kv
from storage.mvcc import MvccStore
from storage.mvcc import backend as be
from storage.mvcc.kvstore import DEFRAG_DIR

pytestmark = pytest.mark.timeout(60)


def put(store: MvccStore, index: int, key: bytes, value: bytes) -> None:
    with store.write(index) as batch:
        apply_kv.batch_put(batch, rpc_pb2.PutRequest(key=key, value=value))


def value_of(store: MvccStore, key: bytes) -> bytes | None:
    kvs = apply_kv.read_range(store, rpc_pb2.RangeRequest(key=key)).kvs
    return bytes(kvs[0].value) if kvs else None


class Worker(threading.Thread):
    """Runs `work` in a thread and keeps what it raised."""

    def __init__(self, work: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            self.error = err

    def finish(self) -> None:
        self.join(30)
        assert not self.is_alive(), "the worker hangs"
        if self.error is not None:
            raise self.error


def test_defragment_waits_for_a_write_batch_open_in_another_thread(tmp_path: Path) -> None:
    with MvccStore(tmp_path / "db") as store:
        put(store, 1, b"before", b"1")
        with store.write(2) as batch:
            apply_kv.batch_put(batch, rpc_pb2.PutRequest(key=b"during", value=b"2"))
            defragment = Worker(store.defragment)
            defragment.start()
            defragment.join(0.2)
            assert defragment.is_alive(), "the defragment went ahead under an open write batch"
        defragment.finish()
        assert (value_of(store, b"before"), value_of(store, b"during")) == (b"1", b"2")
        put(store, 3, b"after", b"3")
        assert store.current_revision == 4
    with MvccStore(tmp_path / "db") as reopened:
        assert (reopened.consistent_index, value_of(reopened, b"after")) == (3, b"3")


def test_batches_fsyncs_and_copies_run_safely_beside_repeated_defragments(tmp_path: Path) -> None:
    with MvccStore(tmp_path / "db", sync_commits=False) as store:
        stop = threading.Event()

        def defragment() -> None:
            for _ in range(15):
                store.defragment()
            stop.set()

        def sync_and_copy() -> None:
            while not stop.is_set():
                store.sync()
                assert store.snapshot_bytes()

        workers = [Worker(defragment), Worker(sync_and_copy)]
        for worker in workers:
            worker.start()
        index = 0
        while not stop.is_set() or index < 200:
            index += 1
            put(store, index, b"k%04d" % (index % 300), b"v%d" % index)
            assert value_of(store, b"k%04d" % (index % 300)) == b"v%d" % index
        for worker in workers:
            worker.finish()
        assert (store.consistent_index, store.current_revision) == (index, index + 1)
    with MvccStore(tmp_path / "db") as reopened:
        assert reopened.consistent_index == index
        assert value_of(reopened, b"k%04d" % (index % 300)) == b"v%d" % index


def test_open_removes_what_a_crashed_defragment_or_snapshot_left(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    with MvccStore(directory) as store:
        put(store, 1, b"k", b"v")
    (directory / DEFRAG_DIR).mkdir()
    (directory / DEFRAG_DIR / be.DATA_FILE).write_bytes(b"half a copy")
    (directory / "snapshot-x1y2").mkdir()
    (directory / be.INCOMING_FILE).write_bytes(b"half a snapshot")
    with MvccStore(directory) as reopened:
        assert value_of(reopened, b"k") == b"v"
    assert sorted(child.name for child in directory.iterdir()) == [be.DATA_FILE, be.LOCK_FILE]
