"""The Cluster service: membership changes and the member list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd import errors
from pyetcd.api.header import fill_header_without_revision
from pyetcd.api.peer_urls import trim_go_space, valid_peer_urls
from pyetcd.api.server_api import EtcdServerApi
from raft.transport import url_to_target

__all__ = ["ClusterServicer", "dialable", "valid_peer_urls"]


def dialable(urls: Sequence[str]) -> bool:
    """Whether the peer transport can name a target for each URL (http, https, unix, unixs).

    A member the transport cannot dial would stop every member's apply loop when its conf
    change is applied, so such URLs are refused up front.
    """
    try:
        for url in urls:
            url_to_target(url)
    except ValueError:
        return False
    return bool(urls)


class ClusterServicer(rpc_pb2_grpc.ClusterServicer):
    """etcdserverpb.Cluster."""

    def __init__(self, etcd: EtcdServerApi) -> None:
        self._etcd = etcd

    async def MemberAdd(self, request: rpc_pb2.MemberAddRequest,  # noqa: N802
                        context: Any) -> rpc_pb2.MemberAddResponse:
        try:
            urls = [trim_go_space(url) for url in request.peerURLs]  # etcd keeps them trimmed too
            if not valid_peer_urls(urls) or not dialable(urls):
                raise errors.ErrGRPCMemberBadURLs
            del request.peerURLs[:]
            request.peerURLs.extend(urls)
            response = await self._etcd.member_add(request)
        except Exception as err:
            await errors.abort_with(context, err)
        fill_header_without_revision(response.header, self._etcd)
        return response

    async def MemberRemove(self, request: rpc_pb2.MemberRemoveRequest,  # noqa: N802
                           context: Any) -> rpc_pb2.MemberRemoveResponse:
        try:
            response = await self._etcd.member_remove(request)
        except Exception as err:
            await errors.abort_with(context, err)
        fill_header_without_revision(response.header, self._etcd)
        return response

    async def MemberUpdate(self, request: rpc_pb2.MemberUpdateRequest,  # noqa: N802
                           context: Any) -> rpc_pb2.MemberUpdateResponse:
        try:
            # etcd checks no URLs here; an unknown member is still "member not found".
            if self._etcd.membership.get(request.ID) is not None and not dialable(request.peerURLs):
                raise errors.ErrGRPCMemberBadURLs
            response = await self._etcd.member_update(request)
        except Exception as err:
            await errors.abort_with(context, err)
        fill_header_without_revision(response.header, self._etcd)
        return response

    async def MemberList(self, request: rpc_pb2.MemberListRequest,  # noqa: N802
                         context: Any) -> rpc_pb2.MemberListResponse:
        try:
            response = await self._etcd.member_list(request)
        except Exception as err:
            await errors.abort_with(context, err)
        fill_header_without_revision(response.header, self._etcd)
        return response

    async def MemberPromote(self, request: rpc_pb2.MemberPromoteRequest,  # noqa: N802
                            context: Any) -> rpc_pb2.MemberPromoteResponse:
        try:
            response = await self._etcd.member_promote(request)
        except Exception as err:
            await errors.abort_with(context, err)
        fill_header_without_revision(response.header, self._etcd)
        return response
