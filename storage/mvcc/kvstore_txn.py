"""Reads and writes of one etcd transaction over the key index and LMDB (etcd's mvcc/kvstore_txn.go).

A ``TxnRead`` reads keys, revisions and leases at one revision. A ``TxnWrite`` is one etcd write transaction:
every change in it shares main revision ``begin_rev + 1`` and takes the next sub revision. A transaction that
changes nothing leaves the revision where it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from etcdpb.mvccpb import kv_pb2
from storage.mvcc.backend import Backend, encode_lease_id, encode_u64
from storage.mvcc.errors import CompactedError, FutureRevisionError, LeaseExistsError, LeaseNotFoundError
from storage.mvcc.index import TreeIndex, Undo
from storage.mvcc.revision import Revision, rev_to_bytes

KeyValue = kv_pb2.KeyValue
Event = kv_pb2.Event


def range_end_of(range_end: bytes) -> bytes | None:
    """A range_end as the index takes it: empty: the key alone (None); b"\\0": no bound (b"")."""
    if not range_end:
        return None
    if range_end == b"\x00":
        return b""
    return range_end


@dataclass(slots=True)
class RangeResult:
    kvs: list[kv_pb2.KeyValue]
    count: int
    """Keys in the range at the revision read, whatever the limit."""
    rev: int
    """The current revision of the view that answered."""


class LeaseKeys:
    """Which live keys are attached to which lease; rebuilt from the stored KeyValues on open."""

    def __init__(self) -> None:
        self._by_key: dict[bytes, int] = {}
        self._by_lease: dict[int, set[bytes]] = {}

    def lease_of(self, key: bytes) -> int:
        return self._by_key.get(key, 0)

    def keys_of(self, lease_id: int) -> list[bytes]:
        return sorted(self._by_lease.get(lease_id, ()))

    def _set(self, key: bytes, lease_id: int) -> None:
        old = self._by_key.pop(key, 0)
        if old:
            keys = self._by_lease[old]
            keys.discard(key)
            if not keys:
                del self._by_lease[old]
        if lease_id:
            self._by_key[key] = lease_id
            self._by_lease.setdefault(lease_id, set()).add(key)

    def attach(self, key: bytes, lease_id: int) -> Undo:
        """Attach ``key`` to ``lease_id`` (0 detaches it); returns how to take that back."""
        old = self.lease_of(key)
        self._set(key, lease_id)
        return lambda: self._set(key, old)


@dataclass(slots=True)
class MvccCounters:
    """Operations this member's store has seen (etcd's etcd_mvcc_*_total), counted as etcd's mvcc
    counts them: each Range, Put and DeleteRange call, and each Txn request that made more than one."""

    ranges: int = 0
    puts: int = 0
    deletes: int = 0
    txns: int = 0

    @contextmanager
    def txn(self) -> Iterator[None]:
        before = self.ranges + self.puts + self.deletes
        try:
            yield
        finally:
            if self.ranges + self.puts + self.deletes - before > 1:
                self.txns += 1


@dataclass(slots=True)
class KvState:
    """The parts of a store that transactions read and change."""

    backend: Backend
    index: TreeIndex
    lease_keys: LeaseKeys
    counters: MvccCounters = field(default_factory=MvccCounters)


class TxnRead:
    """Reads at or below revision ``rev`` through one LMDB transaction."""

    def __init__(self, state: KvState, txn: Any, rev: int, compact_rev: int) -> None:
        self._state = state
        self._txn = txn
        self._rev = rev
        self.first_rev = compact_rev
        """The compacted revision: reads below it fail (etcd's FirstRev)."""

    @property
    def rev(self) -> int:
        """The newest revision this view sees."""
        return self._rev

    def range_keys(
        self, key: bytes, end: bytes | None, at_rev: int = 0, limit: int = 0, count_only: bool = False
    ) -> RangeResult:
        """KeyValues in [key, end) at ``at_rev`` (0: the newest); ``end`` None is one key, b"" no bound."""
        cur = self.rev
        if at_rev > cur:
            raise FutureRevisionError(cur)
        if at_rev <= 0:
            at_rev = cur
        if at_rev < self.first_rev:
            raise CompactedError(self.first_rev)
        self._state.counters.ranges += 1
        found = self._state.index.range(key, end, at_rev)
        if count_only:
            return RangeResult([], len(found), cur)
        n = len(found) if limit <= 0 else min(limit, len(found))
        return RangeResult([self.kv_at(rev) for _, rev in found[:n]], len(found), cur)

    def kv_at(self, rev: Revision) -> kv_pb2.KeyValue:
        raw = self._txn.get(rev_to_bytes(rev), db=self._state.backend.key_db)
        if raw is None:
            raise KeyError(f"revision {rev} is indexed but not stored")
        return KeyValue.FromString(raw)

    def lease_exists(self, lease_id: int) -> bool:
        return self._txn.get(encode_lease_id(lease_id), db=self._state.backend.lease_db) is not None


class TxnWrite(TxnRead):
    """One etcd write transaction; its reads see its own writes."""

    def __init__(
        self, state: KvState, txn: Any, begin_rev: int, compact_rev: int, journal: list[Undo]
    ) -> None:
        super().__init__(state, txn, begin_rev, compact_rev)
        self.begin_rev = begin_rev
        self.events: list[kv_pb2.Event] = []
        self._journal = journal

    @property
    def rev(self) -> int:
        return self.begin_rev + 1 if self.events else self.begin_rev

    def _next_revision(self) -> Revision:
        return Revision(self.begin_rev + 1, len(self.events))

    def put(self, key: bytes, value: bytes, lease_id: int) -> int:
        """Store a new version of ``key``; returns the revision of the change."""
        state = self._state
        state.counters.puts += 1
        main = self.begin_rev + 1
        created, version = main, 1
        ki = state.index.key_index(key)
        if ki is not None and ki.is_live():
            live = ki.generations[-1]
            created, version = live.created, live.version + 1
        rev = self._next_revision()
        kv = KeyValue(
            key=key, value=value, create_revision=created, mod_revision=main, version=version, lease=lease_id
        )
        self._txn.put(rev_to_bytes(rev), kv.SerializeToString(), db=state.backend.key_db)
        self._journal.append(state.index.put(key, rev))
        if state.lease_keys.lease_of(key) != lease_id:
            self._journal.append(state.lease_keys.attach(key, lease_id))
        self.events.append(Event(type=Event.PUT, kv=kv))
        return main

    def delete_range(self, key: bytes, end: bytes | None) -> int:
        """Delete every live key in [key, end); returns how many were deleted."""
        self._state.counters.deletes += 1
        keys = [k for k, _ in self._state.index.range(key, end, self.rev)]
        for k in keys:
            self._delete(k)
        return len(keys)

    def _delete(self, key: bytes) -> None:
        state = self._state
        rev = self._next_revision()
        self._txn.put(
            rev_to_bytes(rev, tombstone=True), KeyValue(key=key).SerializeToString(), db=state.backend.key_db
        )
        undo = state.index.tombstone(key, rev)
        assert undo is not None, "deleting a key that is not live"
        self._journal.append(undo)
        if state.lease_keys.lease_of(key):
            self._journal.append(state.lease_keys.attach(key, 0))
        self.events.append(Event(type=Event.DELETE, kv=KeyValue(key=key, mod_revision=rev.main)))

    def grant_lease(self, lease_id: int, ttl: int) -> None:
        if lease_id == 0:  # etcd grants negative IDs too; only 0 means "no lease"
            raise ValueError("lease ID 0 means no lease")
        if self.lease_exists(lease_id):
            raise LeaseExistsError(lease_id)
        self._txn.put(encode_lease_id(lease_id), encode_u64(ttl), db=self._state.backend.lease_db)

    def revoke_lease(self, lease_id: int) -> None:
        """Forget the lease and delete every key attached to it, all in this one transaction."""
        if not self.lease_exists(lease_id):
            raise LeaseNotFoundError(lease_id)
        for key in self._state.lease_keys.keys_of(lease_id):
            self.delete_range(key, None)
        self._txn.delete(encode_lease_id(lease_id), db=self._state.backend.lease_db)
