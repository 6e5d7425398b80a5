"""etcd 3.4's backend layout: which buckets a real etcd keeps in its bbolt file, and what they hold.

``key``              revision (8-byte main, ``_``, 8-byte sub; deletions end in ``t``) -> mvccpb.KeyValue
``meta``             ``consistent_index`` (u64), ``scheduledCompactRev`` / ``finishedCompactRev`` (revision bytes)
``lease``            lease ID (8-byte big-endian) -> leasepb.Lease{ID, TTL}
``members``          member ID in hex -> the member as JSON (id as a number, peerURLs, isLearner, name, clientURLs)
``members_removed``  member ID in hex -> ``removed``
``cluster``          ``clusterVersion`` -> e.g. ``3.4.0``
``auth``             ``authEnabled`` (one byte), ``authRevision`` (u64); ``authUsers`` / ``authRoles`` -> authpb
``alarm``            etcdserverpb.AlarmMember -> empty

(mvcc/kvstore.go, lease/lessor.go, etcdserver/api/membership/store.go, auth/store.go,
etcdserver/api/v3alarm/alarms.go.) The ``key`` and ``meta`` records are the store's own; the rest is
translated to and from the server's tables here.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.message import DecodeError

from etcdpb.etcdserverpb import rpc_pb2
from etcdpb.leasepb import lease_pb2
from etcdpb.mvccpb import kv_pb2
from pyetcd.apply import ALARM_BUCKET, alarm_key
from pyetcd.ids import format_id
from pyetcd.membership import CLUSTER_BUCKET, CLUSTER_VERSION_KEY, MEMBERS_BUCKET, REMOVED_BUCKET, Member
from storage.bbolt import Bucket
from storage.mvcc import backend as be
from storage.mvcc.contents import StoreContents

KEY, META, LEASE = b"key", b"meta", b"lease"
MEMBERS, MEMBERS_REMOVED, CLUSTER = b"members", b"members_removed", b"cluster"
AUTH, AUTH_USERS, AUTH_ROLES, ALARM = b"auth", b"authUsers", b"authRoles", b"alarm"
ETCD_BUCKETS = (ALARM, AUTH, AUTH_ROLES, AUTH_USERS, CLUSTER, KEY, LEASE, MEMBERS, MEMBERS_REMOVED, META)
AUTH_BUCKETS = (AUTH, AUTH_USERS, AUTH_ROLES)
# etcd's auth store writes its revision, 1, the first time it opens (auth/store.go NewAuthStore), so
# every etcd backend holds this key even when auth was never used.
AUTH_REVISION_KEY, FIRST_AUTH_REVISION = b"authRevision", (1).to_bytes(8, "big")
"""Kept as etcd wrote them, byte for byte, so users and roles survive a trip through pyetcd."""

REMOVED_MARK = b"removed"
META_KEYS = (be.CONSISTENT_INDEX, be.SCHEDULED_COMPACT, be.FINISHED_COMPACT)
"""etcd 3.4 has no consistent term (3.5 adds it), so pyetcd's stays behind."""

TOMBSTONE_MARK = b"t"
REVISION_BYTES = 17


class BackendFormatError(ValueError):
    """A bucket of an etcd backend holds a record etcd would not have written."""


def etcd_backend(contents: StoreContents) -> Bucket:
    """The buckets a real etcd 3.4 would hold for this store's data."""
    root = Bucket()
    for name in ETCD_BUCKETS:
        root.bucket(name)
    root.buckets[KEY].items = dict(contents.revisions)
    root.buckets[META].items = {k: v for k, v in contents.meta.items() if k in META_KEYS}
    root.buckets[LEASE].items = {
        be.encode_lease_id(lease_id): lease_pb2.Lease(ID=lease_id, TTL=ttl).SerializeToString()
        for lease_id, ttl in contents.leases.items()}
    for raw in contents.buckets.get(MEMBERS_BUCKET, {}).values():
        member = Member.decode(raw)
        root.buckets[MEMBERS].items[format_id(member.id).encode()] = etcd_member_json(member)
    for key in contents.buckets.get(REMOVED_BUCKET, {}):
        root.buckets[MEMBERS_REMOVED].items[key] = REMOVED_MARK
    # etcd writes the key when the cluster version is set, so a store from before that has none.
    root.buckets[CLUSTER].items = {k: v for k, v in contents.buckets.get(CLUSTER_BUCKET, {}).items()
                                   if k == CLUSTER_VERSION_KEY}
    for key in contents.buckets.get(ALARM_BUCKET, {}):
        member_hex, _, alarm = key.decode().partition(":")
        alarm_member = rpc_pb2.AlarmMember(memberID=int(member_hex, 16), alarm=int(alarm))  # type: ignore[arg-type]
        root.buckets[ALARM].items[alarm_member.SerializeToString()] = b""
    for name in AUTH_BUCKETS:
        root.buckets[name].items = dict(contents.buckets.get(name.decode(), {}))
    root.buckets[AUTH].items.setdefault(AUTH_REVISION_KEY, FIRST_AUTH_REVISION)
    return root


def etcd_member_json(member: Member) -> bytes:
    """A member as etcd's json.Marshal writes it (field order and omitempty included)."""
    record: dict[str, Any] = {"id": member.id, "peerURLs": list(member.peer_urls)}
    if member.is_learner:
        record["isLearner"] = True
    if member.name:
        record["name"] = member.name
    if member.client_urls:
        record["clientURLs"] = list(member.client_urls)
    return json.dumps(record, separators=(",", ":")).encode()


def store_contents(root: Bucket) -> StoreContents:
    """The store records for an etcd backend's buckets; records etcd could not have written are refused."""
    for name in (KEY, META):
        if name not in root.buckets:
            raise BackendFormatError(f"not an etcd backend: no {name.decode()!r} bucket")
    contents = StoreContents()
    contents.revisions = [(rev, kv) for rev, kv in root.buckets[KEY].items.items() if check_revision(rev, kv)]
    contents.meta = {k: v for k, v in root.buckets[META].items.items() if k in META_KEYS}
    for name in (be.SCHEDULED_COMPACT, be.FINISHED_COMPACT):
        if name in contents.meta and len(contents.meta[name]) != REVISION_BYTES:
            raise BackendFormatError(f"meta bucket: {name.decode()} is not a revision")
    for key, value in root.buckets.get(LEASE, Bucket()).items.items():
        lease = decode(lease_pb2.Lease, value, "lease bucket")
        if len(key) != 8 or be.decode_lease_id(key) != lease.ID:
            raise BackendFormatError(f"lease bucket: key {key.hex()} does not match lease {lease.ID:x}")
        contents.leases[lease.ID] = lease.TTL
    members = contents.buckets.setdefault(MEMBERS_BUCKET, {})
    for value in root.buckets.get(MEMBERS, Bucket()).items.values():
        member = member_from_json(value)
        members[member.store_key()] = member.encode()
    contents.buckets[REMOVED_BUCKET] = dict.fromkeys(root.buckets.get(MEMBERS_REMOVED, Bucket()).items, b"")
    contents.buckets[CLUSTER_BUCKET] = dict(root.buckets.get(CLUSTER, Bucket()).items)
    alarms = contents.buckets.setdefault(ALARM_BUCKET, {})
    for key in root.buckets.get(ALARM, Bucket()).items:
        alarm = decode(rpc_pb2.AlarmMember, key, "alarm bucket")
        alarms[alarm_key(alarm.memberID, alarm.alarm)] = b""
    for name in AUTH_BUCKETS:
        if name in root.buckets:
            contents.buckets[name.decode()] = dict(root.buckets[name].items)
    return contents


def check_revision(rev: bytes, raw_kv: bytes) -> bool:
    """A ``key`` bucket record is a revision (tombstones marked) holding a KeyValue of that revision."""
    if len(rev) not in (REVISION_BYTES, REVISION_BYTES + 1) or rev[8:9] != b"_" \
            or (len(rev) > REVISION_BYTES and rev[-1:] != TOMBSTONE_MARK):
        raise BackendFormatError(f"key bucket: {rev.hex()} is not a revision")
    kv = decode(kv_pb2.KeyValue, raw_kv, "key bucket")
    if not kv.key:
        raise BackendFormatError(f"key bucket: revision {rev.hex()} holds no key")
    return True


def member_from_json(value: bytes) -> Member:
    try:
        raw = json.loads(value)
        return Member(id=int(raw["id"]), peer_urls=tuple(raw.get("peerURLs") or ()), name=raw.get("name", ""),
                      client_urls=tuple(raw.get("clientURLs") or ()), is_learner=bool(raw.get("isLearner", False)))
    except (ValueError, KeyError, TypeError) as e:
        raise BackendFormatError(f"members bucket: bad member record {value!r}") from e


def decode(message: Any, raw: bytes, where: str) -> Any:
    try:
        return message.FromString(raw)
    except DecodeError as e:
        raise BackendFormatError(f"{where}: bad {message.DESCRIPTOR.name} record") from e
