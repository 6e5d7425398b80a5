"""Member-to-member calls served on the peer URLs beside Raft's own traffic."""

from __future__ import annotations

from typing import Any, Protocol

import grpc

from etcdpb.etcdserverpb import rpc_pb2
from etcdpb.serverpb import peer_pb2, peer_pb2_grpc
from pyetcd import errors
from pyetcd.lessor import Lessor
from pyetcd.membership import Membership
from raft.node import RaftNode


class PeerMember(Protocol):
    """What the peer service asks of the member that serves it (an EtcdServer)."""

    @property
    def cluster_id(self) -> int: ...

    @property
    def membership(self) -> Membership: ...

    @property
    def node(self) -> RaftNode: ...

    @property
    def lessor(self) -> Lessor: ...

    async def lease_time_to_live(
        self, req: rpc_pb2.LeaseTimeToLiveRequest) -> rpc_pb2.LeaseTimeToLiveResponse: ...

    async def member_promote(self, req: rpc_pb2.MemberPromoteRequest) -> rpc_pb2.MemberPromoteResponse: ...

    def version_answer(self) -> peer_pb2.VersionResponse: ...


class PeerService(peer_pb2_grpc.PeerServicer):
    """Member-to-member calls: the cluster for joiners, leader-only lease and promote calls, and the
    server version the leader asks every member for before it decides the cluster version.

    Each call raises what went wrong; `add_peer_service` wraps them in the one error path
    (errors.answer_or_abort), as the client API's handlers do.
    """

    def __init__(self, member: PeerMember) -> None:
        self.member = member

    async def Cluster(self, request: peer_pb2.ClusterRequest,  # noqa: N802 - gRPC method name
                      context: Any) -> peer_pb2.ClusterResponse:
        membership = self.member.membership
        answer = peer_pb2.ClusterResponse(cluster_id=self.member.cluster_id, removed_ids=sorted(membership.removed))
        for m in membership.members():
            answer.members.add(id=m.id, name=m.name, peer_urls=list(m.peer_urls), client_urls=list(m.client_urls),
                               is_learner=m.is_learner)
        return answer

    async def LeaseRenew(self, request: peer_pb2.LeaseRenewRequest,  # noqa: N802
                         context: Any) -> peer_pb2.LeaseRenewResponse:
        self._require_leader()
        return peer_pb2.LeaseRenewResponse(ttl=await self.member.lessor.arenew(request.id))

    async def LeaseTimeToLive(self, request: rpc_pb2.LeaseTimeToLiveRequest,  # noqa: N802
                              context: Any) -> rpc_pb2.LeaseTimeToLiveResponse:
        self._require_leader()
        return await self.member.lease_time_to_live(request)

    async def MemberPromote(self, request: rpc_pb2.MemberPromoteRequest,  # noqa: N802
                            context: Any) -> rpc_pb2.MemberPromoteResponse:
        return await self.member.member_promote(request)

    async def Version(self, request: peer_pb2.VersionRequest,  # noqa: N802
                      context: Any) -> peer_pb2.VersionResponse:
        return self.member.version_answer()

    def _require_leader(self) -> None:
        if not self.member.node.is_leader:
            raise errors.ErrNotLeader


def add_peer_service(server: grpc.aio.Server, member: PeerMember) -> None:
    """Serve the peer service for `member` on `server` (the transport's listener on the peer URLs)."""
    service = PeerService(member)
    for name in ("Cluster", "LeaseRenew", "LeaseTimeToLive", "MemberPromote", "Version"):
        setattr(service, name, _answering(getattr(service, name)))
    peer_pb2_grpc.add_PeerServicer_to_server(service, server)


def _answering(call: Any) -> Any:
    async def answer(request: Any, context: Any) -> Any:
        return await errors.answer_or_abort(call(request, context), context)

    return answer
