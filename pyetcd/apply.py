"""The applier: turns committed Raft entries into store, lease, alarm and membership changes.

Every member runs the same entries through this code in the same order, so it must be
deterministic: no clocks, no randomness, no looking at who is leader. Each entry's outcome
(a response or an etcd error) is returned for the member that proposed it to hand back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from etcdpb.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd import apply_kv, errors
from pyetcd.auth.applying import AUTH_REQUESTS, apply_auth_request, authorize_entry, request_kind
from pyetcd.auth.store import AuthStore
from pyetcd.cluster_version import parse as parse_version
from pyetcd.lessor import Lessor
from pyetcd.membership import (
    CLUSTER_BUCKET,
    CLUSTER_VERSION_KEY,
    MEMBERS_BUCKET,
    REMOVED_BUCKET,
    Member,
    Membership,
    member_key,
)
from raft.core import ConfChange, ConfChangeType, ConfState, Entry, decode_conf_change
from storage.mvcc import MvccStore, WriteBatch

ALARM_BUCKET = "alarm"
RAFT_BUCKET = "raft"
CONF_STATE_KEY = b"conf_state"
NO_NODE = 0

Response = (rpc_pb2.PutResponse | rpc_pb2.DeleteRangeResponse | rpc_pb2.TxnResponse | rpc_pb2.RangeResponse
            | rpc_pb2.CompactionResponse | rpc_pb2.LeaseGrantResponse | rpc_pb2.LeaseRevokeResponse
            | rpc_pb2.AlarmResponse)
"""What applying a request answers its proposer (a conf change answers the member list)."""


@dataclass(slots=True)
class ApplyOutcome:
    """What applying one entry produced: who waits for it, and their answer."""

    request_id: int
    result: Response | list[Member] | None = None
    error: BaseException | None = None


@dataclass(slots=True)
class AppliedBatch:
    """Outcomes of a batch plus the follow-up work that must wait until the batch is durable."""

    outcomes: list[ApplyOutcome] = field(default_factory=list)
    after_commit: list[Callable[[], object]] = field(default_factory=list)
    conf_state: ConfState | None = None


class MembershipChanges:
    """Hooks the server gives the applier for membership side effects outside the store."""

    def __init__(self, apply_to_raft: Callable[[ConfChange], ConfState],
                 on_member_added: Callable[[Member], None],
                 on_member_removed: Callable[[int], None],
                 on_member_updated: Callable[[Member], None],
                 on_cluster_version_set: Callable[[str | None, str], None] = lambda old, new: None) -> None:
        self.apply_to_raft = apply_to_raft
        self.on_member_added = on_member_added
        self.on_member_removed = on_member_removed
        self.on_member_updated = on_member_updated
        self.on_cluster_version_set = on_cluster_version_set
        """Called with the old and new version once a cluster version entry is durable."""


def alarm_key(member_id: int, alarm: int) -> bytes:
    return f"{member_id:x}:{alarm}".encode()


def encode_conf_change_context(member: Member, promote: bool = False) -> bytes:
    """A ConfChange context: the member record, and whether this ADD promotes a learner (etcd's shape)."""
    return json.dumps({"member": json.loads(member.encode()), "isPromote": promote}, sort_keys=True).encode()


def encode_conf_state(conf_state: ConfState) -> bytes:
    return json.dumps({"voters": list(conf_state.voters), "learners": list(conf_state.learners)}).encode()


def decode_conf_change_context(data: bytes) -> tuple[Member, bool]:
    raw = json.loads(data)
    return Member.decode(json.dumps(raw["member"]).encode()), bool(raw.get("isPromote", False))


class Applier:
    """Applies entries to an MvccStore write batch; owns the alarm list and the membership view."""

    def __init__(self, store: MvccStore, membership: Membership, lessor: Lessor,
                 changes: MembershipChanges, auth: AuthStore) -> None:
        self.store = store
        self.auth = auth
        self.membership = membership
        self.lessor = lessor
        self.changes = changes
        self.alarms: set[tuple[int, int]] = set()
        self.reload_alarms()

    # -- state that lives in the store ---------------------------------------------------------

    def reload_alarms(self) -> None:
        self.alarms = set()
        for key, _ in self.store.meta_items(ALARM_BUCKET):
            member_hex, _, alarm = key.decode().partition(":")
            self.alarms.add((int(member_hex, 16), int(alarm)))

    def no_space(self) -> bool:
        return any(alarm == rpc_pb2.NOSPACE for _, alarm in self.alarms)

    # -- entries -------------------------------------------------------------------------------

    def apply_entries(self, entries: list[Entry]) -> AppliedBatch:
        """Apply entries newer than the store's consistent index in one durable write batch."""
        batch = AppliedBatch()
        pending = [e for e in entries if e.index > self.store.consistent_index]
        if not pending:
            return batch
        last = pending[-1]
        with self.store.write(consistent_index=last.index, consistent_term=last.term) as w:
            for entry in pending:
                if entry.type == 1:  # EntryType.CONF_CHANGE
                    batch.outcomes.append(self._apply_conf_change(w, entry, batch))
                elif entry.data:
                    batch.outcomes.append(self._apply_request(w, entry, batch))
            if batch.conf_state is not None:
                # Raft needs the membership as of the applied index when it restarts.
                w.meta_put(RAFT_BUCKET, CONF_STATE_KEY, encode_conf_state(batch.conf_state))
        return batch

    def _apply_request(self, w: WriteBatch, entry: Entry, batch: AppliedBatch) -> ApplyOutcome:
        request = raft_internal_pb2.InternalRaftRequest()
        try:
            request.ParseFromString(entry.data)
        except Exception as err:  # noqa: BLE001 - a foreign entry must not stop the applier
            return ApplyOutcome(0, error=err)
        outcome = ApplyOutcome(request.header.ID or request.ID)
        try:
            kind = request_kind(request)
            # The caller's permissions, checked at the auth revision the proposer saw (etcd's authApplierV3).
            authorize_entry(self.auth, request, kind, self.store.lease_keys)
            if kind in AUTH_REQUESTS:
                outcome.result = apply_auth_request(self.auth, w, request, kind, entry.index)
                return outcome
            outcome.result = self._dispatch(w, request, batch)
        except Exception as err:  # noqa: BLE001 - request-level failures go back to the proposer
            outcome.error = err
        return outcome

    def _dispatch(self, w: WriteBatch, request: raft_internal_pb2.InternalRaftRequest,
                  batch: AppliedBatch) -> Response | None:
        if request.HasField("put"):
            self._refuse_when_no_space()
            return apply_kv.batch_put(w, request.put)
        if request.HasField("delete_range"):
            return apply_kv.batch_delete_range(w, request.delete_range)
        if request.HasField("txn"):
            if not apply_kv.is_txn_read_only(request.txn):
                self._refuse_when_no_space()
            return apply_kv.batch_txn(w, request.txn)
        if request.HasField("range"):
            return apply_kv.batch_range(w, request.range)
        if request.HasField("compaction"):
            w.compact(request.compaction.revision)
            return rpc_pb2.CompactionResponse()
        if request.HasField("lease_grant"):
            return self._lease_grant(w, request.lease_grant, batch)
        if request.HasField("lease_revoke"):
            return self._lease_revoke(w, request.lease_revoke, batch)
        if request.HasField("alarm"):
            return self._alarm(w, request.alarm)
        if request.HasField("member_attributes_set"):
            self._member_attributes(w, request.member_attributes_set, batch)
            return None
        if request.HasField("cluster_version_set"):
            self._cluster_version(w, request.cluster_version_set.ver, batch)
            return None
        raise errors.ErrNotCapable

    def _refuse_when_no_space(self) -> None:
        if self.no_space():
            raise errors.ErrNoSpace

    def _lease_grant(self, w: WriteBatch, req: rpc_pb2.LeaseGrantRequest,
                     batch: AppliedBatch) -> rpc_pb2.LeaseGrantResponse:
        self._refuse_when_no_space()
        ttl = self.lessor.granted_ttl(req.TTL)  # the store refuses an ID already granted (LeaseExistsError)
        w.lease_grant(req.ID, ttl)
        batch.after_commit.append(lambda: self.lessor.on_grant(req.ID, ttl))
        return rpc_pb2.LeaseGrantResponse(ID=req.ID, TTL=ttl)

    def _lease_revoke(self, w: WriteBatch, req: rpc_pb2.LeaseRevokeRequest,
                      batch: AppliedBatch) -> rpc_pb2.LeaseRevokeResponse:
        if self.lessor.lookup(req.ID) is None:
            raise errors.ErrLeaseNotFound
        w.lease_revoke(req.ID)
        batch.after_commit.append(lambda: self.lessor.on_revoke(req.ID))
        return rpc_pb2.LeaseRevokeResponse()

    def _alarm(self, w: WriteBatch, req: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        response = rpc_pb2.AlarmResponse()
        key = (req.memberID, req.alarm)
        if req.action == rpc_pb2.AlarmRequest.ACTIVATE and req.alarm != rpc_pb2.NONE:
            if key not in self.alarms:
                self.alarms.add(key)
                w.meta_put(ALARM_BUCKET, alarm_key(*key), b"")
            response.alarms.add(memberID=req.memberID, alarm=req.alarm)
        elif req.action == rpc_pb2.AlarmRequest.DEACTIVATE and key in self.alarms:
            self.alarms.discard(key)
            w.meta_delete(ALARM_BUCKET, alarm_key(*key))
            response.alarms.add(memberID=req.memberID, alarm=req.alarm)
        return response

    def _member_attributes(self, w: WriteBatch, req: raft_internal_pb2.MemberAttributesSetRequest,
                           batch: AppliedBatch) -> None:
        member = self.membership.set_attributes(req.member_ID, req.name, tuple(req.client_urls))
        if member is not None:
            w.meta_put(MEMBERS_BUCKET, member.store_key(), member.encode())
            batch.after_commit.append(lambda: self.changes.on_member_updated(member))

    def _cluster_version(self, w: WriteBatch, version: str, batch: AppliedBatch) -> None:
        """etcd's RaftCluster.SetVersion: every member records the version the leader decided."""
        parse_version(version)  # a version no member could have decided fails this entry, not the applier
        old = self.membership.version
        self.membership.version = version
        w.meta_put(CLUSTER_BUCKET, CLUSTER_VERSION_KEY, version.encode())
        batch.after_commit.append(lambda: self.changes.on_cluster_version_set(old, version))

    # -- membership (etcd's ValidateConfigurationChange, then the change) ---------------------

    def _apply_conf_change(self, w: WriteBatch, entry: Entry, batch: AppliedBatch) -> ApplyOutcome:
        cc = decode_conf_change(entry.data)
        outcome = ApplyOutcome(cc.id)
        try:
            member, promote = self._validate_conf_change(cc)
        except errors.EtcdError as err:
            outcome.error = err
            # The change is void, but Raft still expects to hear that the entry was applied.
            batch.conf_state = self.changes.apply_to_raft(ConfChange(cc.type, NO_NODE, b"", cc.id))
            return outcome
        if cc.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE):
            assert member is not None
            stored = self.membership.promote(member.id) if promote else None
            if stored is None:
                stored = member
                self.membership.add(stored)
            w.meta_put(MEMBERS_BUCKET, stored.store_key(), stored.encode())
            batch.after_commit.append(lambda: self.changes.on_member_added(stored))
        elif cc.type == ConfChangeType.REMOVE_NODE:
            self.membership.remove(cc.node_id)
            w.meta_delete(MEMBERS_BUCKET, member_key(cc.node_id))
            w.meta_put(REMOVED_BUCKET, member_key(cc.node_id), b"")
            removed_id = cc.node_id
            batch.after_commit.append(lambda: self.changes.on_member_removed(removed_id))
        elif cc.type == ConfChangeType.UPDATE_NODE:
            assert member is not None
            current = self.membership.get(cc.node_id)
            assert current is not None
            updated = Member(current.id, member.peer_urls, current.name, current.client_urls, current.is_learner)
            self.membership.update(updated)
            w.meta_put(MEMBERS_BUCKET, updated.store_key(), updated.encode())
            batch.after_commit.append(lambda: self.changes.on_member_updated(updated))
        batch.conf_state = self.changes.apply_to_raft(cc)
        outcome.result = self.membership.members()
        return outcome

    def _validate_conf_change(self, cc: ConfChange) -> tuple[Member | None, bool]:
        if cc.node_id in self.membership.removed:
            raise errors.ErrMemberRemoved
        member: Member | None = None
        promote = False
        if cc.context:
            member, promote = decode_conf_change_context(cc.context)
        existing = self.membership.get(cc.node_id)
        if cc.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE):
            if member is None:
                # A bootstrap entry written by Raft without a record: nothing to add.
                raise errors.ErrMemberBadURLs
            if promote:
                if existing is None:
                    raise errors.ErrMemberNotFound
                if not existing.is_learner:
                    raise errors.ErrMemberNotLearner
                return member, True
            if existing is not None:
                raise errors.ErrMemberExist
            if self.membership.peer_url_in_use(member.peer_urls):
                raise errors.ErrPeerURLExist
        elif cc.type == ConfChangeType.REMOVE_NODE:
            if existing is None:
                raise errors.ErrMemberNotFound
        elif cc.type == ConfChangeType.UPDATE_NODE:
            if existing is None:
                raise errors.ErrMemberNotFound
            if member is None or self.membership.peer_url_in_use(member.peer_urls, except_id=cc.node_id):
                raise errors.ErrPeerURLExist
        return member, promote

