"""A one-process stand-in for EtcdServer: the real MVCC store and lessor, no Raft.

It lets the gRPC servicers be tested in-process, on a grpc.aio server bound to a port
the kernel picks, without starting a member.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from etcdpb.etcdserverpb import raft_internal_pb2, rpc_pb2, rpc_pb2_grpc
from pyetcd import apply_kv, errors
from pyetcd.api.register import add_services, grpc_server_options
from pyetcd.auth.applying import apply_auth_request
from pyetcd.auth.passwords import hash_password, password_matches
from pyetcd.auth.store import AuthStore
from pyetcd.auth.tokens import SimpleTokens
from pyetcd.lessor import Lessor, check_lease_ttl
from pyetcd.limits import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS
from pyetcd.membership import Member, Membership
from pyetcd.server_auth import AUTH_REQUEST_FIELDS
from storage.mvcc import MvccStore, WriteBatch

MEMBER_ID = 0x8E9E05C52164694D
CLUSTER_ID = 0xCDF818194E3A8C32
RAFT_TERM = 2


@dataclass
class FakeConfig:
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_txn_ops: int = DEFAULT_MAX_TXN_OPS
    watch_progress_notify_interval_s: float = 600.0


def fake_membership(*, is_learner: bool) -> Membership:
    """The fake's one-member cluster; a learner member when `is_learner`."""
    member = Member(MEMBER_ID, ("http://127.0.0.1:2380",), "fake", ("http://127.0.0.1:2379",), is_learner)
    return Membership(CLUSTER_ID, [member])


@dataclass
class FakeEtcd:
    """Applies every request straight to the store, as a one-member cluster would after commit."""

    store: MvccStore
    config: FakeConfig = field(default_factory=FakeConfig)
    member_id: int = MEMBER_ID
    cluster_id: int = CLUSTER_ID
    lessor: Lessor = field(default_factory=lambda: Lessor(min_ttl=2))
    membership: Membership = field(default_factory=lambda: fake_membership(is_learner=False))
    snapshot_chunk_bytes: int = 1000
    auth: AuthStore = field(default_factory=lambda: AuthStore(SimpleTokens()))
    _index: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lease_ids: Iterator[int] = field(default_factory=lambda: itertools.count(0x1000))

    def __post_init__(self) -> None:
        self.lessor.promote(extend=0.0)
        self.auth.load(self.store)

    def header(self) -> rpc_pb2.ResponseHeader:
        return rpc_pb2.ResponseHeader(cluster_id=self.cluster_id, member_id=self.member_id,
                                      revision=self.store.current_revision, raft_term=RAFT_TERM)

    def _write(self) -> WriteBatch:
        return self.store.write(next(self._index))

    async def range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        return apply_kv.read_range(self.store, req)

    async def put(self, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        with self._write() as batch:
            return apply_kv.batch_put(batch, req)

    async def delete_range(self, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        with self._write() as batch:
            return apply_kv.batch_delete_range(batch, req)

    async def txn(self, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        with self._write() as batch:
            return apply_kv.batch_txn(batch, req)

    async def compact(self, req: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        with self._write() as batch:
            batch.compact(req.revision)
        return rpc_pb2.CompactionResponse()

    async def lease_grant(self, req: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        check_lease_ttl(req.TTL)
        lease_id = req.ID or next(self._lease_ids)
        ttl = self.lessor.on_grant(lease_id, req.TTL)
        with self._write() as batch:
            batch.lease_grant(lease_id, ttl)
        return rpc_pb2.LeaseGrantResponse(ID=lease_id, TTL=ttl)

    async def lease_revoke(self, req: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        self.lessor.on_revoke(req.ID)
        with self._write() as batch:
            batch.lease_revoke(req.ID)
        return rpc_pb2.LeaseRevokeResponse()

    async def lease_renew(self, lease_id: int) -> int:
        return await self.lessor.arenew(lease_id)

    async def lease_time_to_live(
            self, req: rpc_pb2.LeaseTimeToLiveRequest) -> rpc_pb2.LeaseTimeToLiveResponse:
        if req.ID not in self.lessor:
            raise errors.ErrGRPCLeaseNotFound
        granted, remaining = self.lessor.time_to_live(req.ID)
        response = rpc_pb2.LeaseTimeToLiveResponse(ID=req.ID, TTL=remaining, grantedTTL=granted)
        if req.keys:
            response.keys.extend(self.store.lease_keys(req.ID))
        return response

    async def lease_leases(self) -> rpc_pb2.LeaseLeasesResponse:
        return rpc_pb2.LeaseLeasesResponse(leases=[rpc_pb2.LeaseStatus(ID=lease.id)
                                                   for lease in self.lessor.leases()])

    def _members(self) -> list[rpc_pb2.Member]:
        return [rpc_pb2.Member(ID=self.member_id, name="fake", peerURLs=["http://127.0.0.1:2380"],
                               clientURLs=["http://127.0.0.1:2379"])]

    async def member_add(self, req: rpc_pb2.MemberAddRequest) -> rpc_pb2.MemberAddResponse:
        added = rpc_pb2.Member(ID=42, peerURLs=list(req.peerURLs), isLearner=req.isLearner)
        return rpc_pb2.MemberAddResponse(member=added, members=[*self._members(), added])

    async def member_remove(self, req: rpc_pb2.MemberRemoveRequest) -> rpc_pb2.MemberRemoveResponse:
        raise errors.ErrGRPCMemberNotFound

    async def member_update(self, req: rpc_pb2.MemberUpdateRequest) -> rpc_pb2.MemberUpdateResponse:
        raise errors.ErrGRPCMemberNotFound

    async def member_list(self, req: rpc_pb2.MemberListRequest) -> rpc_pb2.MemberListResponse:
        return rpc_pb2.MemberListResponse(header=self.header(), members=self._members())

    async def member_promote(self, req: rpc_pb2.MemberPromoteRequest) -> rpc_pb2.MemberPromoteResponse:
        raise errors.ErrGRPCMemberNotLearner

    async def status(self) -> rpc_pb2.StatusResponse:
        return rpc_pb2.StatusResponse(version="3.4.23", leader=self.member_id, raftTerm=RAFT_TERM)

    async def defragment(self) -> rpc_pb2.DefragmentResponse:
        self.store.defragment()
        return rpc_pb2.DefragmentResponse()

    async def hash(self) -> rpc_pb2.HashResponse:
        return rpc_pb2.HashResponse(hash=self.store.hash())

    async def hash_kv(self, req: rpc_pb2.HashKVRequest) -> rpc_pb2.HashKVResponse:
        value, compact_revision, _ = self.store.hash_kv(req.revision)
        return rpc_pb2.HashKVResponse(header=self.header(), hash=value,
                                      compact_revision=compact_revision)

    async def alarm(self, req: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        return rpc_pb2.AlarmResponse()

    async def move_leader(self, req: rpc_pb2.MoveLeaderRequest) -> rpc_pb2.MoveLeaderResponse:
        raise errors.ErrGRPCBadLeaderTransferee

    async def snapshot_chunks(self) -> AsyncIterator[bytes]:
        data = self.store.snapshot_bytes()
        for offset in range(0, len(data), self.snapshot_chunk_bytes):
            yield data[offset:offset + self.snapshot_chunk_bytes]

    # Auth: the real auth store, changed at once; the caller is not checked (no credentials here).
    async def auth_call(self, req: Any) -> Any:
        kind = AUTH_REQUEST_FIELDS[type(req).__name__]
        request = raft_internal_pb2.InternalRaftRequest()
        getattr(request, kind).CopyFrom(req)
        if kind == "auth_user_add" and not req.options.no_password:
            request.auth_user_add.hashedPassword = hash_password(req.password, 4)
        if kind == "auth_user_change_password":
            request.auth_user_change_password.hashedPassword = hash_password(req.password, 4)
        index = next(self._index)
        with self.store.write(index) as w:
            return apply_auth_request(self.auth, w, request, kind, index)

    async def authenticate(self, req: rpc_pb2.AuthenticateRequest) -> rpc_pb2.AuthenticateResponse:
        check = self.auth.password_check(req.name)
        if not password_matches(check.hashed, req.password):
            raise errors.ErrGRPCAuthFailed
        return self.auth.apply_authenticate(req.name, next(self._index), self.auth.tokens.gen_token_prefix())

    async def check_watch_permitted(self, key: bytes, range_end: bytes) -> None:
        pass


@dataclass
class Api:
    """Stubs for every service of one in-process server, and the fake behind it."""

    etcd: FakeEtcd
    channel: Any
    kv: rpc_pb2_grpc.KVStub
    watch: rpc_pb2_grpc.WatchStub
    lease: rpc_pb2_grpc.LeaseStub
    cluster: rpc_pb2_grpc.ClusterStub
    maintenance: rpc_pb2_grpc.MaintenanceStub
    auth: rpc_pb2_grpc.AuthStub

    async def put(self, key: bytes, value: bytes = b"v") -> int:
        """Put through the KV service; returns the new revision."""
        response = await self.kv.Put(rpc_pb2.PutRequest(key=key, value=value))
        return int(response.header.revision)


@asynccontextmanager
async def serve_api(directory: Path, *, config: FakeConfig | None = None,
                    watch_progress_interval: float | None = None) -> AsyncIterator[Api]:
    """A grpc.aio server with every etcd service over a FakeEtcd, and stubs to call it."""
    store = MvccStore(directory)
    etcd = FakeEtcd(store, config or FakeConfig())
    server = grpc.aio.server(options=grpc_server_options(etcd.config.max_request_bytes))
    add_services(server, etcd, watch_progress_interval=watch_progress_interval)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stubs: Any = rpc_pb2_grpc  # generated stubs are untyped
        yield Api(etcd, channel, stubs.KVStub(channel), stubs.WatchStub(channel), stubs.LeaseStub(channel),
                  stubs.ClusterStub(channel), stubs.MaintenanceStub(channel), stubs.AuthStub(channel))
    finally:
        await channel.close()
        await server.stop(None)
        store.close()
