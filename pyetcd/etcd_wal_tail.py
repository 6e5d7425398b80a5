"""What an etcd member's WAL holds past its backend: committed writes the db file has not caught up with.

etcd's backend commits in batches, so after a crash ``member/snap/db`` can lag the log: its
consistent index names the last entry that wrote keys, and the WAL's last hard state says how far
the log was committed. etcd replays that tail when it restarts. `pyetcd migrate` reads only the db,
so it must not go ahead while the tail holds a change the db does not show.

Some entries past the consistent index are harmless, and a cleanly stopped etcd always has some:
the leader's empty entries, v2 requests (member attributes, cluster version; etcd's v2 store is not
migrated), membership changes (the new member set comes from the flags), reads. Lease grants,
revocations and compactions write no consistent index, so their effect is looked for in the db
itself. Anything else past the consistent index is a write the db may lack.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from etcdpb.etcdserverpb import raft_internal_pb2
from storage.etcdwal import Entry, EntryType, WalContents
from storage.etcdwal.records import RecordDecodeError, fields
from storage.mvcc import backend as be
from storage.mvcc.contents import StoreContents

READ_ONLY = frozenset({"range", "authenticate", "auth_user_get", "auth_user_list", "auth_role_get",
                       "auth_role_list", "lease_checkpoint"})
"""Requests that change nothing the migration carries (a lease checkpoint only moves a remaining TTL,
which pyetcd does not keep)."""


@dataclass(frozen=True, slots=True)
class UnappliedEntry:
    """A committed entry whose change the db file does not show."""

    index: int
    what: str


def consistent_index(contents: StoreContents) -> int:
    raw = contents.meta.get(be.CONSISTENT_INDEX)
    return be.decode_u64(raw) if raw else 0


def unapplied_entries(contents: StoreContents, wal: WalContents) -> list[UnappliedEntry]:
    """The committed entries past the db's consistent index that change data the db may not hold."""
    applied = consistent_index(contents)
    commit = wal.hard_state.commit
    if commit <= applied:
        return []
    tail = [e for e in wal.entries if applied < e.index <= commit]
    if not tail or tail[0].index != applied + 1 or tail[-1].index != commit:
        return [UnappliedEntry(applied + 1, f"entries {applied + 1} to {commit} are committed but not in the WAL")]
    requests = [(e, request_of(e)) for e in tail]
    lease_exists_after = lease_outcomes(requests)
    missing = []
    for entry, request in requests:
        if entry.type != EntryType.NORMAL or not entry.data:
            continue
        if request == "v2":
            continue
        if not isinstance(request, raft_internal_pb2.InternalRaftRequest):
            missing.append(UnappliedEntry(entry.index, "an entry that is not an etcd request"))
            continue
        kind = request_kind(request)
        if kind in READ_ONLY:
            continue
        if kind in ("lease_grant", "lease_revoke"):
            lease_id = request.lease_grant.ID if kind == "lease_grant" else request.lease_revoke.ID
            if (lease_id in contents.leases) == lease_exists_after[lease_id]:
                continue
        if kind == "compaction" and compacted_to(contents) >= request.compaction.revision:
            continue
        if kind == "txn" and not any(op.WhichOneof("request") != "request_range"
                                     for op in (*request.txn.success, *request.txn.failure)):
            continue
        missing.append(UnappliedEntry(entry.index, kind))
    return missing


def lease_outcomes(requests: list[tuple[Entry, raft_internal_pb2.InternalRaftRequest | str | None]]
                   ) -> dict[int, bool]:
    """Whether each lease the tail grants or revokes exists once the whole tail is applied."""
    exists: dict[int, bool] = {}
    for _, request in requests:
        if not isinstance(request, raft_internal_pb2.InternalRaftRequest):
            continue
        if request.HasField("lease_grant"):
            exists[request.lease_grant.ID] = True
        elif request.HasField("lease_revoke"):
            exists[request.lease_revoke.ID] = False
    return exists


def request_of(entry: Entry) -> raft_internal_pb2.InternalRaftRequest | str | None:
    """The v3 request a normal entry carries; ``"v2"`` for a v2 request (bare, as etcd 3.4 proposes them,
    or in InternalRaftRequest's field 2); None when it parses as neither (counted as a write: an entry
    that cannot be read is never assumed harmless)."""
    try:
        if isinstance(fields(entry.data).get(2), bytes):  # Request.Method, or InternalRaftRequest.v2
            return "v2"
    except RecordDecodeError:
        return None
    request = raft_internal_pb2.InternalRaftRequest()
    try:
        request.ParseFromString(entry.data)
    except DecodeError:
        return None
    return request


def request_kind(request: raft_internal_pb2.InternalRaftRequest) -> str:
    """The request's field name (etcd's InternalRaftRequest has no oneof: one field is set by convention)."""
    names = [f.name for f, _ in request.ListFields() if f.name not in ("header", "ID")]
    return names[0] if names else "an empty request"


def compacted_to(contents: StoreContents) -> int:
    raw = contents.meta.get(be.SCHEDULED_COMPACT)
    return int.from_bytes(raw[:8], "big") if raw else 0
