"""Which committed entries past an etcd db's consistent index mean the db lacks a change."""

from __future__ import annotations

from etcdpb.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd.etcd_wal_tail import unapplied_entries
from storage.etcdwal import Entry, EntryType, HardState, WalContents
from storage.mvcc import backend as be
from storage.mvcc.contents import StoreContents

LEASE = 0x42


def db(consistent_index: int, leases: dict[int, int] | None = None) -> StoreContents:
    contents = StoreContents()
    contents.meta[be.CONSISTENT_INDEX] = be.encode_u64(consistent_index)
    contents.leases = dict(leases or {})
    return contents


def wal(*requests: bytes, commit: int | None = None) -> WalContents:
    entries = [Entry(term=2, index=i + 1, type=EntryType.NORMAL, data=r) for i, r in enumerate(requests)]
    return WalContents(entries=entries, hard_state=HardState(term=2, commit=len(entries) if commit is None else commit))


def request(**fields: object) -> bytes:
    return raft_internal_pb2.InternalRaftRequest(header={"ID": 7}, **fields).SerializeToString()  # type: ignore[arg-type]


PUT = request(put=rpc_pb2.PutRequest(key=b"k", value=b"v"))
GRANT = request(lease_grant=rpc_pb2.LeaseGrantRequest(ID=LEASE, TTL=60))
V2_PUT = b"\x08\x01\x12\x03PUT\x1a\x0a/0/version\"\x053.4.0"  # etcd's pb.Request{ID, Method, Path, Val}


def test_entries_the_db_already_holds_or_never_carries_are_not_lost() -> None:
    assert unapplied_entries(db(1), wal(PUT, b"", V2_PUT)) == []
    assert unapplied_entries(db(1, {LEASE: 60}), wal(PUT, GRANT)) == []  # the grant reached the db
    read = request(range=rpc_pb2.RangeRequest(key=b"k"))
    assert unapplied_entries(db(0), wal(read)) == []


def test_writes_past_the_consistent_index_are_lost() -> None:
    lost = unapplied_entries(db(1), wal(PUT, b"", PUT, GRANT))
    assert [(e.index, e.what) for e in lost] == [(3, "put"), (4, "lease_grant")]
    assert unapplied_entries(db(1), wal(PUT, PUT, commit=1)) == []  # appended, never committed
    assert [e.what for e in unapplied_entries(db(0), wal(b"\xff\xff"))] == ["an entry that is not an etcd request"]


def test_a_committed_index_missing_from_the_wal_is_lost() -> None:
    lost = unapplied_entries(db(0), wal(PUT, commit=3))
    assert len(lost) == 1 and "committed but not in the WAL" in lost[0].what
