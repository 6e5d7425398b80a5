"""Member-to-member calls served on the peer URLs beside Raft's own traffic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from etcdpb.serverpb import peer_pb2, peer_pb2_grpc
from pyetcd import errors

if TYPE_CHECKING:
    from pyetcd.server import EtcdServer


class PeerService(peer_pb2_grpc.PeerServicer):
    """Member-to-member calls: the cluster for joiners, and leader-only lease and promote calls."""

    def __init__(self, server: EtcdServer) -> None:
        self.server = server

    async def Cluster(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method name
        membership = self.server.membership
        answer = peer_pb2.ClusterResponse(cluster_id=self.server.cluster_id, removed_ids=sorted(membership.removed))
        for m in membership.members():
            answer.members.add(id=m.id, name=m.name, peer_urls=list(m.peer_urls), client_urls=list(m.client_urls),
                               is_learner=m.is_learner)
        return answer

    async def LeaseRenew(self, request: Any, context: Any) -> Any:  # noqa: N802
        if not self.server.node.is_leader:
            await errors.abort_with(context, errors.ErrNotLeader)
        try:
            ttl = await self.server.lessor.arenew(request.id)
        except Exception as err:  # noqa: BLE001 - every failure goes back as etcd's error
            await errors.abort_with(context, err)
        return peer_pb2.LeaseRenewResponse(ttl=ttl)

    async def LeaseTimeToLive(self, request: Any, context: Any) -> Any:  # noqa: N802
        if not self.server.node.is_leader:
            await errors.abort_with(context, errors.ErrNotLeader)
        return await self.server.lease_time_to_live(request)

    async def MemberPromote(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            return await self.server.member_promote(request)
        except Exception as err:  # noqa: BLE001
            await errors.abort_with(context, err)
