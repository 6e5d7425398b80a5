"""The MVCC store: etcd's keyspace with revisions, over LMDB (etcd's mvcc/kvstore.go and watchable_store.go).

Writes come in batches, one LMDB write transaction each (``with store.write(index, term) as batch: ...``).
Inside a batch every request is one etcd write transaction in its own nested LMDB transaction: a request
that fails leaves nothing behind and the batch goes on. On commit the Raft index and term of the last applied
entry are stored with the data, and the batch's events go out to the watchers.

Reads use LMDB read transactions and never wait for a batch; they see what was committed. The store is meant
to be driven from one thread (the event loop); a lock keeps it consistent if other threads read too, and a
gate (swapgate.py) lets a defragment or snapshot install in another thread swap the LMDB environment without
pulling it from under a write batch, an fsync or a copy.

Revisions start at 1 on a fresh store, as in etcd. ``compact_revision`` is 0 until the first compaction.
Quota: a put, a txn that is not read-only, or a lease grant that leaves more than ``quota_bytes`` of pages in
use is refused with QuotaExceededError and leaves nothing behind; deletes, compactions and lease revokes are
always allowed, so the space can be won back.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import lmdb

from etcdpb.mvccpb import kv_pb2
from storage.mvcc import backend as be
from storage.mvcc.backend import Backend
from storage.mvcc.compaction import BATCH_LIMIT, BATCH_PAUSE_S, CompactionWorker
from storage.mvcc.contents import StoreContents, read_contents
from storage.mvcc.crc32c import Crc32c
from storage.mvcc.errors import (
    CompactedError,
    FutureRevisionError,
    QuotaExceededError,
    StoreClosedError,
)
from storage.mvcc.index import TreeIndex, Undo
from storage.mvcc.kvstore_txn import KvState, LeaseKeys, MvccCounters, TxnRead, TxnWrite, range_end_of
from storage.mvcc.revision import Revision, bytes_to_rev, is_tombstone, rev_to_bytes
from storage.mvcc.swapgate import SwapGate
from storage.mvcc.watchable import HistoryChunk, KeyRange, Watcher, WatcherHub

T = TypeVar("T")

KeyValue = kv_pb2.KeyValue
Event = kv_pb2.Event

DEFRAG_DIR = "defrag.tmp"
SNAPSHOT_DIR_PREFIX = "snapshot-"


def default_map_size(quota_bytes: int) -> int:
    """LMDB's address-space reservation: well above the quota, so the quota is what stops growth."""
    return quota_bytes + max(quota_bytes, 256 * 1024**2)


class MvccStore:
    """etcd's multi-version keyspace in one LMDB environment directory."""

    def __init__(
        self, path: str | os.PathLike[str], *, quota_bytes: int = 2 * 1024**3, map_size: int | None = None,
        sync_commits: bool = True, compaction_batch_limit: int = BATCH_LIMIT,
        compaction_pause_s: float = BATCH_PAUSE_S,
    ) -> None:
        """`sync_commits=False` skips the fsync per write batch; the caller then calls `sync()` itself.
        `compaction_batch_limit`, `compaction_pause_s`: revisions a compaction deletes per LMDB transaction,
        and the pause between two of those transactions (compaction.py)."""
        self.path = Path(path)
        self._sync_commits = sync_commits
        self.path.mkdir(parents=True, exist_ok=True)
        self.quota_bytes = quota_bytes
        self._map_size = map_size if map_size is not None else default_map_size(quota_bytes)
        self._mu = threading.RLock()
        self._gate = SwapGate(self._mu)
        self._batch: WriteBatch | None = None
        self._closed = False
        self._compactor = CompactionWorker(self._with_backend, batch_limit=compaction_batch_limit,
                                           pause_s=compaction_pause_s)
        _remove_leftovers(self.path)
        self._unfinished_compaction: tuple[int, set[Revision]] | None = None
        self._state = self._load(Backend(self.path, self._map_size, self._sync_commits))
        self._resume_compaction()
        self._hub = WatcherHub(self)
        self.commit_observer: Callable[[float], None] | None = None
        """Called with each write batch's commit duration in seconds (etcd_disk_backend_commit_duration_seconds)."""

    def _load(self, backend: Backend) -> KvState:
        """Rebuild the key index and lease attachments from the stored revisions (etcd's restore)."""
        index = TreeIndex()
        lease_keys = LeaseKeys()
        current = 1
        txn = backend.begin()
        try:
            finished = backend.get_revision(txn, be.FINISHED_COMPACT)
            scheduled = backend.get_revision(txn, be.SCHEDULED_COMPACT)
            consistent_index = backend.get_u64(txn, be.CONSISTENT_INDEX)
            consistent_term = backend.get_u64(txn, be.CONSISTENT_TERM)
            for raw_rev, raw_kv in txn.cursor(db=backend.key_db):
                rev = bytes_to_rev(raw_rev)
                kv = KeyValue.FromString(raw_kv)
                tombstone = is_tombstone(raw_rev)
                index.restore(kv.key, rev, kv.create_revision, kv.version, tombstone)
                lease_keys.attach(kv.key, 0 if tombstone else kv.lease)
                current = rev.main
        finally:
            txn.abort()
        compact = max(finished, scheduled)
        if scheduled > finished:
            # A compaction that had not finished deleting when the store closed: the index forgets what it
            # dropped now, and the worker deletes the rest once the state is in place (etcd's restore does
            # the same; see _resume_compaction).
            self._unfinished_compaction = (scheduled, index.compact(scheduled))
        # A compaction can remove the newest changes (deletions at or below it): it bounds the revision too.
        self._current_rev = max(current, compact)
        self._compact_rev = compact
        self._consistent_index = consistent_index
        self._consistent_term = consistent_term
        return KvState(backend, index, lease_keys)

    def _resume_compaction(self) -> None:
        """Hand the compaction `_load` found unfinished to the worker, whose batches use `_state`."""
        if self._unfinished_compaction is not None:
            revision, keep = self._unfinished_compaction
            self._unfinished_compaction = None
            self._compactor.schedule(revision, keep)

    def __enter__(self) -> MvccStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- state ---
    @property
    def current_revision(self) -> int:
        """Revision of the last committed change (1 on a fresh store)."""
        return self._current_rev

    @property
    def compact_revision(self) -> int:
        """Revision of the last compaction; 0 if the store was never compacted."""
        return self._compact_rev

    @property
    def consistent_index(self) -> int:
        """Raft index of the last entry applied in a committed batch."""
        return self._consistent_index

    @property
    def consistent_term(self) -> int:
        return self._consistent_term

    @property
    def watch_buffer_events(self) -> int:
        """Events a watcher may hold before it falls back to catching up from history."""
        return self._hub.buffer_events

    @watch_buffer_events.setter
    def watch_buffer_events(self, value: int) -> None:
        self._hub.buffer_events = value

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError()

    @contextmanager
    def _read_txn(self) -> Iterator[Any]:
        """An LMDB read transaction on the committed state, under the store lock for its whole life (so the
        environment is not swapped from under it)."""
        with self._mu:
            self._check_open()
            txn = self._state.backend.begin()
            try:
                yield txn
            finally:
                txn.abort()

    # --- reads ---
    @contextmanager
    def read(self) -> Iterator[TxnRead]:
        """A read transaction on the committed state (etcd's kv.Read): keys, revisions and leases at the
        current revision, consistent for as long as the ``with`` block lasts."""
        with self._read_txn() as txn:
            yield TxnRead(self._state, txn, self._current_rev, self._compact_rev)

    def kv_at(self, key: bytes, rev: int) -> kv_pb2.KeyValue | None:
        """``key`` as it was at revision ``rev``, or None (absent, compacted away, or in the future)."""
        with self._read_txn() as txn:
            view = TxnRead(self._state, txn, self._current_rev, self._compact_rev)
            if rev < max(view.first_rev, 1) or rev > view.rev:
                return None
            found = self._state.index.get(key, rev)
            return view.kv_at(found) if found is not None else None

    def read_history(
        self, start_rev: int, match: Callable[[bytes], bool], max_events: int, max_scan: int
    ) -> HistoryChunk:
        """Stored events from ``start_rev`` on, of keys ``match`` accepts: a chunk of whole revisions."""
        with self._read_txn() as txn:
            backend = self._state.backend
            compact = max(backend.get_revision(txn, be.FINISHED_COMPACT),
                          backend.get_revision(txn, be.SCHEDULED_COMPACT))
            current = max(1, backend.last_revision(txn), compact)
            chunk = HistoryChunk([], max(start_rev - 1, 0), current, compact)
            cursor = txn.cursor(db=backend.key_db)
            if start_rev > current or not cursor.set_range(rev_to_bytes(Revision(max(start_rev, 0)))):
                chunk.scanned_to = max(chunk.scanned_to, current)
                return chunk
            group: list[kv_pb2.Event] = []
            group_rev = events = scanned = 0
            for raw_rev, raw_kv in cursor:
                main = bytes_to_rev(raw_rev).main
                if main != group_rev:
                    if group_rev:
                        if group:
                            chunk.revisions.append((group_rev, group))
                            events += len(group)
                        chunk.scanned_to = group_rev
                        if events >= max_events or scanned >= max_scan:
                            return chunk
                    group_rev, group = main, []
                scanned += 1
                kv = KeyValue.FromString(raw_kv)
                if not match(kv.key):
                    continue
                if is_tombstone(raw_rev):
                    group.append(Event(type=Event.DELETE, kv=KeyValue(key=kv.key, mod_revision=main)))
                else:
                    group.append(Event(type=Event.PUT, kv=kv))
            if group:
                chunk.revisions.append((group_rev, group))
            chunk.scanned_to = current
            return chunk

    def hash(self) -> int:
        """CRC-32C over each sub-database's name, keys and values but the Raft position (Maintenance.Hash)."""
        with self._read_txn() as txn:
            backend = self._state.backend
            h = Crc32c()
            for name in be.SUB_DBS:
                h.write(name)
                for k, v in txn.cursor(db=backend.dbs[name]):
                    if name == be.META_DB and k in (be.CONSISTENT_INDEX, be.CONSISTENT_TERM):
                        continue
                    h.write(k)
                    h.write(v)
            return h.value

    def hash_kv(self, revision: int) -> tuple[int, int, int]:
        """(hash, compact_revision, hash_revision) of the keyspace up to ``revision`` (0: current).

        As etcd's HashByRev: CRC-32C of "key" and of each stored revision key and value at or below
        ``revision``, leaving out what a compaction at ``revision`` would remove. compact_revision is -1 if
        the store was never compacted (as etcd reports it); hash_revision is the revision hashed.
        """
        with self._read_txn() as txn:
            compact = self._compact_rev if self._compact_rev > 0 else -1
            current = self._current_rev
            if 0 < revision <= compact:
                raise CompactedError(compact)
            if revision > current:
                raise FutureRevisionError(current)
            if revision <= 0:
                revision = current
            keep = self._state.index.keep(revision)
            upper = Revision(revision + 1)
            lower = Revision(compact + 1)
            h = Crc32c()
            h.write(be.KEY_DB)
            for k, v in txn.cursor(db=self._state.backend.key_db):
                rev = bytes_to_rev(k)
                if rev >= upper:
                    break
                # Revisions at or below the compaction that a compaction at `revision` would drop are skipped.
                if rev < lower and keep and rev not in keep:
                    continue
                h.write(k)
                h.write(v)
            return h.value, compact, revision

    @property
    def counters(self) -> MvccCounters:
        """Ranges, puts, deletes and txns seen so far (etcd_mvcc_*_total)."""
        return self._state.counters

    def live_key_count(self) -> int:
        """Keys that exist now (etcd_debugging_mvcc_keys_total)."""
        with self._mu:
            return sum(1 for ki in self._state.index.key_indexes() if ki.is_live())

    def watcher_count(self) -> int:
        """Watchers registered on the store (etcd_debugging_mvcc_watcher_total)."""
        return len(self._hub)

    def db_size(self) -> int:
        """Size of the database file in bytes."""
        self._check_open()
        return self._state.backend.file_size()

    def db_size_in_use(self) -> int:
        """Bytes of the database file holding data (free pages left out)."""
        with self._read_txn() as txn:
            return self._state.backend.in_use_bytes(txn)

    def leases(self) -> list[tuple[int, int]]:
        """(lease_id, granted_ttl) of every stored lease, by ID."""
        with self._read_txn() as txn:
            backend = self._state.backend
            found = [
                (be.decode_lease_id(k), be.decode_u64(v)) for k, v in txn.cursor(db=backend.lease_db)
            ]
        return sorted(found)

    def lease_keys(self, lease_id: int) -> list[bytes]:
        """Live keys attached to ``lease_id``, in key order."""
        self._check_open()
        with self._mu:
            return self._state.lease_keys.keys_of(lease_id)

    def meta_get(self, bucket: str, key: bytes) -> bytes | None:
        with self._read_txn() as txn:
            backend = self._state.backend
            value: bytes | None = txn.get(be.bucket_key(bucket, key), db=backend.bucket_db)
            return value

    def meta_items(self, bucket: str) -> list[tuple[bytes, bytes]]:
        """Every (key, value) of ``bucket``, in key order."""
        prefix = be.bucket_key(bucket, b"")
        with self._read_txn() as txn:
            backend = self._state.backend
            items: list[tuple[bytes, bytes]] = []
            cursor = txn.cursor(db=backend.bucket_db)
            if cursor.set_range(prefix):
                for k, v in cursor:
                    if not k.startswith(prefix):
                        break
                    items.append((k[len(prefix) :], v))
            return items

    # --- watch ---
    def watch(
        self,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        *,
        prev_kv: bool = False,
        filter_put: bool = False,
        filter_delete: bool = False,
    ) -> Watcher:
        """Watch [key, range_end) (empty range_end: the key alone; b"\\0": every key from key on) from
        ``start_revision`` (0: from the next revision). Check ``compacted`` on the returned watcher."""
        self._check_open()
        return self._hub.watch(
            KeyRange(key, range_end_of(range_end)),
            start_revision,
            prev_kv=prev_kv,
            filter_put=filter_put,
            filter_delete=filter_delete,
        )

    # --- whole-store operations ---
    def snapshot_bytes(self) -> bytes:
        """A consistent, compacted point-in-time copy of the whole store (what the last commit left)."""
        with self._gate.using():
            self._check_open()
            with tempfile.TemporaryDirectory(prefix=SNAPSHOT_DIR_PREFIX, dir=self.path) as tmp:
                data_file = self._state.backend.copy_to(Path(tmp))
                return data_file.read_bytes()

    def contents(self) -> StoreContents:
        """Everything the store holds as the last commit left it, as plain records (for exports)."""
        with self._gate.using():
            self._check_open()
            return read_contents(self._state.backend)

    @staticmethod
    def restore(path: str | os.PathLike[str], data: bytes) -> None:
        """Make a store directory at ``path`` from snapshot bytes; refuses to overwrite an existing store."""
        directory = Path(path)
        if (directory / be.DATA_FILE).exists():
            raise FileExistsError(f"{directory} already holds a store")
        tmp = be.write_data_file(directory, data)
        try:
            _check_snapshot(tmp)
        except BaseException:
            tmp.unlink()
            raise
        be.install_data_file(directory, tmp)

    def replace_from_snapshot(self, data: bytes) -> None:
        """Swap the whole store for a snapshot's (a follower installs a Raft snapshot); watchers catch up."""
        self._check_open()
        if self._batch is not None and self._batch.owner == threading.get_ident():
            raise RuntimeError("cannot replace the store while a write batch is open")
        tmp = be.write_data_file(self.path, data)
        try:
            _check_snapshot(tmp)
        except BaseException:
            tmp.unlink()
            raise
        # Watchers read history through the environment being swapped: their lock is held too.
        with self._gate.swapping(), self._hub.lock, self._mu:
            self._check_open()
            offered_through = self._current_rev
            self._compactor.forget()  # the snapshot's own unfinished compaction, if any, is resumed by _load
            self._state.backend.close()
            try:
                be.install_data_file(self.path, tmp)
            finally:
                counters = self._state.counters
                self._state = self._load(Backend(self.path, self._map_size, self._sync_commits))
                self._state.counters = counters
                self._resume_compaction()
        self._hub.resync_all(offered_through)

    def defragment(self) -> None:
        """Rewrite the database compactly and swap it in; the data stays exactly as it was.

        Reads and write batches wait meanwhile, as in etcd. A crash before the swap leaves the old file and a
        stray copy (removed at the next open); the swap itself is a rename of a synced file.
        """
        self._check_open()
        if self._batch is not None and self._batch.owner == threading.get_ident():
            raise RuntimeError("cannot defragment while a write batch is open")
        work = self.path / DEFRAG_DIR
        with self._gate.swapping(), self._hub.lock, self._mu:
            self._check_open()
            be.remove_tree(work)
            try:
                data_file = self._state.backend.copy_to(work)
                self._state.backend.close()
                try:
                    be.install_data_file(self.path, data_file)
                finally:
                    self._state.backend = Backend(self.path, self._map_size, self._sync_commits)
            finally:
                be.remove_tree(work)

    def wait_compacted(self, revision: int, timeout: float | None = None) -> bool:
        """Wait until the compaction at ``revision`` has deleted what it dropped from the disk (etcd's
        physical compaction); False on timeout or when the store closes first."""
        if revision > self._compact_rev:
            return False
        if revision <= self._compactor.finished or not self._compactor.pending():
            return True
        return self._compactor.wait_finished(revision, timeout)

    def _with_backend(self, fn: Callable[[Backend], bool]) -> bool | None:
        """Run ``fn`` on the current backend where no swap can happen; None once the store is closed.
        Takes the gate only, never the store lock (see CompactionWorker)."""
        self._gate.enter()
        try:
            if self._closed:
                return None
            return fn(self._state.backend)
        finally:
            self._gate.leave()

    def sync(self) -> None:
        """Force everything committed onto the disk."""
        with self._gate.using():
            self._check_open()
            self._state.backend.env.sync(True)

    def close(self) -> None:
        if self._closed:
            return
        self._hub.close()
        with self._mu:
            if self._batch is not None:
                self._batch._abort()
        self._compactor.stop()  # after its batch in progress; the rest resumes at the next open
        # An fsync or a copy running in another thread finishes before the environment goes.
        with self._gate.swapping(), self._mu:
            if self._closed:
                return
            self._closed = True
            self._state.backend.close()

    # --- writes ---
    def write(self, consistent_index: int, consistent_term: int = 0) -> WriteBatch:
        """A write batch for the Raft entries up to ``consistent_index``; use it as a context manager."""
        self._check_open()
        return WriteBatch(self, consistent_index, consistent_term)


def _remove_leftovers(directory: Path) -> None:
    """Drop what a crash can leave behind in a store directory: a defragment's copy, a snapshot being made or
    being installed. None of it is needed: the data file is only ever replaced by a rename."""
    if not directory.is_dir():
        return
    for child in directory.iterdir():
        if child.name == DEFRAG_DIR or (child.name.startswith(SNAPSHOT_DIR_PREFIX) and child.is_dir()):
            be.remove_tree(child)
        elif child.name == be.INCOMING_FILE:
            child.unlink(missing_ok=True)


def _check_snapshot(data_file: Path) -> None:
    """Refuse bytes that are not an LMDB database holding the store's sub-databases."""
    try:
        env = lmdb.open(str(data_file), subdir=False, readonly=True, lock=False, max_dbs=len(be.SUB_DBS) + 4)
    except lmdb.Error as e:
        raise ValueError(f"not a store snapshot: {e}") from e
    try:
        with env.begin() as txn:
            for name in be.SUB_DBS:
                if txn.get(name) is None:
                    raise ValueError(f"not a store snapshot: no {name.decode()!r} database")
    finally:
        env.close()


class WriteBatch:
    """Writes that commit together on leaving the ``with`` block (and abort on an exception).

    Every request runs as one etcd write transaction in a nested LMDB transaction: if it raises, nothing of
    it stays and the batch can go on. After the commit its events go to the watchers.
    """

    def __init__(self, store: MvccStore, consistent_index: int, consistent_term: int) -> None:
        self._store = store
        self.consistent_index = consistent_index
        self.consistent_term = consistent_term
        self._txn: Any = None
        self._rev = 0
        self._compact_rev = 0
        self._journal: list[Undo] = []
        self._events: list[tuple[int, list[kv_pb2.Event]]] = []
        self._compactions: list[int] = []
        self.owner = 0  # the thread that opened the batch

    def __enter__(self) -> WriteBatch:
        store = self._store
        store._check_open()
        store._gate.enter()  # waits while a defragment or snapshot install swaps the environment
        try:
            with store._mu:
                store._check_open()
                if store._batch is not None:
                    raise RuntimeError("another write batch is open")
                self._txn = store._state.backend.begin(write=True)
                store._batch = self
                self.owner = threading.get_ident()
                self._rev = store._current_rev
                self._compact_rev = store._compact_rev
        except BaseException:
            store._gate.leave()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._txn is None:
            return
        if exc_type is not None:
            self._abort()
            return
        store = self._store
        backend = store._state.backend
        # The watchers' lock is held from the commit until the events are out, so that batches committed by
        # different threads reach the watchers in revision order (lock order: watchers, then store).
        with store._hub.lock, store._mu:
            try:
                self._txn.put(be.CONSISTENT_INDEX, be.encode_u64(self.consistent_index), db=backend.meta_db)
                self._txn.put(be.CONSISTENT_TERM, be.encode_u64(self.consistent_term), db=backend.meta_db)
                started = time.perf_counter()
                self._txn.commit()
                if store.commit_observer is not None:
                    store.commit_observer(time.perf_counter() - started)
            except lmdb.MapFullError as e:  # map_size set too close to the quota: the whole batch is lost
                self._abort()
                raise QuotaExceededError(store.quota_bytes, backend.map_size) from e
            except BaseException:
                self._abort()
                raise
            self._txn = None
            for revision in self._compactions:
                store._compactor.schedule(revision, store._state.index.compact(revision))
            store._current_rev = self._rev
            store._compact_rev = self._compact_rev
            store._consistent_index = self.consistent_index
            store._consistent_term = self.consistent_term
            self._release()
            store._hub.notify(self._events)

    def _abort(self) -> None:
        store = self._store
        with store._mu:
            if self._txn is not None:
                self._txn.abort()
                self._txn = None
            for undo in reversed(self._journal):
                undo()
            self._journal.clear()
            self._events.clear()
            self._release()

    def _release(self) -> None:
        """The batch is over: another may open, and a waiting swap may go (store lock held)."""
        store = self._store
        if store._batch is self:
            store._batch = None
            store._gate.leave_for(self.owner)

    @property
    def revision(self) -> int:
        """The store's revision as this batch has left it so far."""
        return self._rev

    def _check_active(self) -> None:
        if self._txn is None:
            raise RuntimeError("the write batch is not open (use it in a with block)")

    def write_txn(self, fn: Callable[[TxnWrite], T], *, check_quota: bool) -> T:
        """Run ``fn`` as one etcd write transaction (etcd's kv.Write), all or nothing.

        With ``check_quota``, a transaction that leaves more than the quota in use is undone and refused.
        """
        self._check_active()
        store = self._store
        backend = store._state.backend
        child = backend.begin(write=True, parent=self._txn)
        journal: list[Undo] = []
        tw = TxnWrite(store._state, child, self._rev, self._compact_rev, journal)
        try:
            with store._mu:
                result = fn(tw)
            if check_quota:
                in_use = backend.in_use_bytes(child)
                if in_use > store.quota_bytes:
                    raise QuotaExceededError(store.quota_bytes, in_use)
        except BaseException as e:
            child.abort()
            with store._mu:
                for undo in reversed(journal):
                    undo()
            if isinstance(e, lmdb.MapFullError):
                raise QuotaExceededError(store.quota_bytes, backend.map_size) from e
            raise
        child.commit()
        self._journal.extend(journal)
        if tw.events:
            self._rev = tw.rev
            self._events.append((tw.rev, tw.events))
        return result

    @property
    def counters(self) -> MvccCounters:
        """The store's operation counts (a txn of several operations counts once more, as etcd's)."""
        return self._store._state.counters

    @contextmanager
    def read(self) -> Iterator[TxnRead]:
        """A read transaction on the store as this batch has left it so far."""
        self._check_active()
        store = self._store
        with store._mu:
            yield TxnRead(store._state, self._txn, self._rev, self._compact_rev)

    def put(self, key: bytes, value: bytes, lease_id: int = 0) -> int:
        """Store a new version of ``key`` in a write transaction of its own; returns its revision."""
        return self.write_txn(lambda tw: tw.put(key, value, lease_id), check_quota=True)

    def delete_range(self, key: bytes, end: bytes | None) -> int:
        """Delete the live keys in [key, end) (``end`` None: the key alone); returns how many."""
        return self.write_txn(lambda tw: tw.delete_range(key, end), check_quota=False)

    def lease_grant(self, lease_id: int, ttl: int) -> None:
        self.write_txn(lambda tw: tw.grant_lease(lease_id, ttl), check_quota=True)

    def lease_revoke(self, lease_id: int) -> None:
        """Forget the lease and delete every key attached to it, all at one new revision."""
        self.write_txn(lambda tw: tw.revoke_lease(lease_id), check_quota=False)

    def compact(self, revision: int) -> None:
        """Drop history below ``revision``: what each key was at ``revision`` stays, deleted keys go.

        This batch records the compaction as scheduled; once it commits, the key index forgets the dropped
        revisions and the store's compaction worker deletes them from the disk in batches (compaction.py).
        """
        self._check_active()
        if revision <= self._compact_rev:
            raise CompactedError(self._compact_rev)
        if revision > self._rev:
            raise FutureRevisionError(self._rev)
        self._store._state.backend.put_revision(self._txn, be.SCHEDULED_COMPACT, revision)
        # Until the batch commits, reads at or above `revision` still find every revision in the index,
        # and reads below it fail on the new compact revision.
        self._compact_rev = revision
        self._compactions.append(revision)

    def meta_put(self, bucket: str, key: bytes, value: bytes) -> None:
        """Store a value in one of the server's buckets (never refused for quota: alarms must get in)."""
        self._check_active()
        try:
            self._txn.put(be.bucket_key(bucket, key), value, db=self._store._state.backend.bucket_db)
        except lmdb.BadValsizeError as e:
            raise ValueError(f"bucket key too long: {len(key)} bytes") from e

    def meta_delete(self, bucket: str, key: bytes) -> None:
        self._check_active()
        self._txn.delete(be.bucket_key(bucket, key), db=self._store._state.backend.bucket_db)
