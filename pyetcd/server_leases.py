"""EtcdServer's leases: grant and revoke through the log; keep-alive and expiry on the leader, as etcd does.

The lease table and its clock are the Lessor (lessor.py); the gRPC service is api/lease.py."""

from __future__ import annotations

import asyncio
import time

import grpc

from etcdpb.etcdserverpb import raft_internal_pb2, rpc_pb2
from etcdpb.serverpb import peer_pb2
from pyetcd import errors
from pyetcd.auth.credentials import REQUEST_CREDENTIALS, ROOT_CREDENTIALS
from pyetcd.lessor import check_lease_ttl
from pyetcd.server_core import ServerCore


class ServerLeases(ServerCore):
    """LeaseGrant/Revoke/KeepAlive/TimeToLive/Leases and the leader's expiry loop."""

    _revoking: dict[int, float]

    async def lease_grant(self, req: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        check_lease_ttl(req.TTL)
        request = raft_internal_pb2.InternalRaftRequest()
        request.lease_grant.CopyFrom(req)
        if request.lease_grant.ID == 0:
            request.lease_grant.ID = self._ids.next() & ((1 << 63) - 1)
        return await self._propose_and_wait(request, rpc_pb2.LeaseGrantResponse)

    async def lease_revoke(self, req: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        request = raft_internal_pb2.InternalRaftRequest()
        request.lease_revoke.CopyFrom(req)
        return await self._propose_and_wait(request, rpc_pb2.LeaseRevokeResponse)

    async def lease_renew(self, lease_id: int) -> int:
        """Keep-alive: only the leader tracks expiry, so followers forward (etcd forwards too)."""
        for _ in range(3):
            if self.node.is_leader:
                try:
                    return await self.lessor.arenew(lease_id)
                except errors.NotPrimaryError:
                    continue  # lost leadership while waiting: ask the new leader
            stub = await self._leader_stub()
            try:
                answer = await stub.LeaseRenew(peer_pb2.LeaseRenewRequest(id=lease_id), timeout=self.request_timeout())
                return int(answer.ttl)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    raise errors.ErrLeaseNotFound from None
                await asyncio.sleep(self.config.heartbeat_ms / 1000)
        raise errors.ErrNoLeader

    async def lease_time_to_live(
            self, req: rpc_pb2.LeaseTimeToLiveRequest) -> rpc_pb2.LeaseTimeToLiveResponse:
        if not self.node.is_leader:
            stub = await self._leader_stub()
            try:
                answer: rpc_pb2.LeaseTimeToLiveResponse = await stub.LeaseTimeToLive(
                    req, timeout=self.request_timeout())
            except grpc.aio.AioRpcError as err:
                raise errors.from_rpc_error(err) from None
            # The leader answers with an empty header (etcd 3.4's leasehttp does too), so the
            # header the client sees is this member's, revision included.
            return answer
        granted, remaining = self.lessor.time_to_live(req.ID)
        response = rpc_pb2.LeaseTimeToLiveResponse(ID=req.ID, TTL=remaining, grantedTTL=granted)
        if granted < 0:
            response.TTL = -1
        elif req.keys:
            response.keys.extend(self.store.lease_keys(req.ID))
        return response

    async def lease_leases(self) -> rpc_pb2.LeaseLeasesResponse:
        response = rpc_pb2.LeaseLeasesResponse()
        for lease_id, _ in sorted(self.store.leases()):
            response.leases.add(ID=lease_id)
        return response

    async def _lease_expiry_loop(self) -> None:
        """The leader alone decides a lease expired, then revokes it through the log so all members agree."""
        while True:
            await asyncio.sleep(0.5)
            if not self.node.is_leader:
                continue
            now = time.monotonic()
            for lease_id in self.lessor.expired():
                if self._revoking.get(lease_id, 0.0) > now:
                    continue
                self._revoking[lease_id] = now + self.request_timeout()
                asyncio.ensure_future(self._revoke_expired(lease_id))

    async def _revoke_expired(self, lease_id: int) -> None:
        # The server revokes expired leases as root (etcd's WithRoot); this task's context only.
        REQUEST_CREDENTIALS.set(ROOT_CREDENTIALS)
        try:
            await self.lease_revoke(rpc_pb2.LeaseRevokeRequest(ID=lease_id))
        except errors.EtcdError:
            pass
        finally:
            self._revoking.pop(lease_id, None)

    def _on_leader_change(self, leader_id: int, term: int) -> None:
        if leader_id == self.member_id:
            self.lessor.promote(extend=self.config.election_ms / 1000)
        else:
            self.lessor.demote()
