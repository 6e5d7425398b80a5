"""The Cluster service: membership changes and the member list."""

from __future__ import annotations

from typing import Any

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd import errors
from pyetcd.api.server_api import EtcdServerApi
from pyetcd.urls import dialable, trim_go_space, valid_peer_urls


class ClusterServicer(rpc_pb2_grpc.ClusterServicer):
    """etcdserverpb.Cluster."""

    def __init__(self, etcd: EtcdServerApi) -> None:
        self._etcd = etcd

    async def MemberAdd(self, request: rpc_pb2.MemberAddRequest,  # noqa: N802
                        context: Any) -> rpc_pb2.MemberAddResponse:
        urls = [trim_go_space(url) for url in request.peerURLs]  # etcd keeps them trimmed too
        if not valid_peer_urls(urls) or not dialable(urls):
            raise errors.ErrGRPCMemberBadURLs
        del request.peerURLs[:]
        request.peerURLs.extend(urls)
        return await self._etcd.member_add(request)

    async def MemberRemove(self, request: rpc_pb2.MemberRemoveRequest,  # noqa: N802
                           context: Any) -> rpc_pb2.MemberRemoveResponse:
        return await self._etcd.member_remove(request)

    async def MemberUpdate(self, request: rpc_pb2.MemberUpdateRequest,  # noqa: N802
                           context: Any) -> rpc_pb2.MemberUpdateResponse:
        # etcd checks no URLs here; an unknown member is still "member not found".
        if self._etcd.membership.get(request.ID) is not None and not dialable(request.peerURLs):
            raise errors.ErrGRPCMemberBadURLs
        return await self._etcd.member_update(request)

    async def MemberList(self, request: rpc_pb2.MemberListRequest,  # noqa: N802
                         context: Any) -> rpc_pb2.MemberListResponse:
        return await self._etcd.member_list(request)

    async def MemberPromote(self, request: rpc_pb2.MemberPromoteRequest,  # noqa: N802
                            context: Any) -> rpc_pb2.MemberPromoteResponse:
        return await self._etcd.member_promote(request)
